//! Rate limits, and what the guard decides for one request under them and
//! the faults (faults.rs).

use super::{Inner, Marketplace};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub requests: u32,
    pub window_ms: u64,
}

/// Fixed windows: `general` counts every request, `listings` the stock
/// endpoints, `quantity_updates` the requests that change a quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub general: Option<RateLimit>,
    pub listings: Option<RateLimit>,
    pub quantity_updates: Option<RateLimit>,
}

#[derive(Debug, Default)]
pub(super) struct Window {
    started: Option<Instant>,
    count: u32,
}

impl Window {
    /// Counts a request; Err(wait) when the window is full.
    pub(super) fn admit(&mut self, limit: RateLimit, now: Instant) -> Result<u32, Duration> {
        let length = Duration::from_millis(limit.window_ms);
        let started = *self.started.get_or_insert(now);
        if now.duration_since(started) >= length {
            self.started = Some(now);
            self.count = 0;
        }
        let left = length.saturating_sub(now.duration_since(self.started.unwrap_or(now)));
        if self.count >= limit.requests {
            return Err(left);
        }
        self.count += 1;
        Ok(limit.requests - self.count)
    }
}

/// What the guard does with one request, decided under the lock.
pub enum Admission {
    Down,
    /// A timed outage (`outage_secs`), until then.
    Outage {
        until: DateTime<Utc>,
    },
    TooMany {
        retry_after_secs: u64,
    },
    Pass {
        latency: Duration,
        answer_delay: Duration,
        hang: Option<Duration>,
        server_error: bool,
        malformed: bool,
        /// Refurbed's X-RateLimit-* headers: limit, remaining, reset (unix).
        rate_headers: Option<(u32, u32, i64)>,
    },
}
impl Inner {
    pub fn admit(
        &mut self,
        mp: Marketplace,
        listing_path: bool,
        quantity_write: bool,
    ) -> Admission {
        let roll: f64 = self.rng.random();
        let state = self.mp(mp);
        if let Some(outage) = state.faults.outage.as_mut()
            && outage.refuses(Instant::now())
        {
            return Admission::Outage {
                until: outage.until,
            };
        }
        let faults = state.faults.clone();
        if faults.down {
            return Admission::Down;
        }
        if let Some(retry_after_secs) = faults.rate_limit_storm_secs {
            return Admission::TooMany { retry_after_secs };
        }
        let now = Instant::now();
        let mut rate_headers = None;
        let buckets = [
            (state.limits.general, &mut state.general_window),
            (
                state.limits.listings.filter(|_| listing_path),
                &mut state.listings_window,
            ),
            (
                state.limits.quantity_updates.filter(|_| quantity_write),
                &mut state.quantity_window,
            ),
        ];
        for (limit, window) in buckets {
            let Some(limit) = limit else { continue };
            match window.admit(limit, now) {
                Ok(remaining) => {
                    let reset = Utc::now().timestamp() + (limit.window_ms / 1000) as i64;
                    rate_headers.get_or_insert((limit.requests, remaining, reset));
                }
                Err(wait) => {
                    state.violations += 1;
                    return Admission::TooMany {
                        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                    };
                }
            }
        }
        Admission::Pass {
            latency: Duration::from_millis(faults.latency_ms),
            answer_delay: Duration::from_millis(faults.answer_delay_ms),
            hang: faults.timeout_ms.map(Duration::from_millis),
            server_error: roll < faults.error_rate,
            malformed: faults.malformed,
            rate_headers: rate_headers.filter(|_| mp == Marketplace::Refurbed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_windows_count_and_reset() {
        let limit = RateLimit {
            requests: 2,
            window_ms: 1000,
        };
        let mut window = Window::default();
        let start = Instant::now();
        assert_eq!(window.admit(limit, start), Ok(1));
        assert_eq!(window.admit(limit, start), Ok(0));
        assert!(
            window
                .admit(limit, start + Duration::from_millis(10))
                .is_err()
        );
        assert_eq!(
            window.admit(limit, start + Duration::from_millis(1000)),
            Ok(1)
        );
    }
}
