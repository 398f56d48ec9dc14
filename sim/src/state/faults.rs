//! Faults injected into one marketplace's API, as `PUT /control/faults/{mp}`
//! sets them, and the state the timed and counted ones keep: the outage's
//! end and its refusals, the writes still to be acked without being applied.

use super::{Inner, Marketplace};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The longest outage the control API takes: longer is a test's mistake
/// (and would overflow the clock with absurd values).
pub const MAX_OUTAGE_SECS: u64 = 86_400;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every answer.
    pub latency_ms: u64,
    /// The request is carried out, then its answer held back this long: a
    /// client that dies meanwhile never learns that its write was applied.
    pub answer_delay_ms: u64,
    /// Share of requests answered 500, 0..1.
    pub error_rate: f64,
    /// Every request answered 429 with this Retry-After (seconds).
    pub rate_limit_storm_secs: Option<u64>,
    /// Requests hang this long (beyond the client's timeout), then 504.
    pub timeout_ms: Option<u64>,
    /// 2xx bodies replaced by truncated JSON.
    pub malformed: bool,
    /// Every request answered 503.
    pub down: bool,
    /// The next this many quantity writes (one per SKU a write names) are
    /// answered as if applied but not stored, as a lying backend would;
    /// counts down as they are used.
    pub ack_without_apply_writes: u64,
    /// Once the counted ones are used, this share of quantity writes is
    /// acked without being applied, 0..1.
    pub ack_without_apply_rate: f64,
    /// Every request answered 503 for this many seconds from when the
    /// faults are set; then the marketplace recovers by itself.
    pub outage_secs: Option<u64>,
    /// The outage `outage_secs` started (shown, never set directly).
    #[serde(skip_deserializing)]
    pub outage: Option<Outage>,
}

/// A timed full outage: when it ends and how many requests it refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub until: DateTime<Utc>,
    /// Requests answered 503 because of it.
    pub refused_requests: u64,
    /// The end on the monotonic clock, which decides (the wall clock may jump).
    #[serde(skip)]
    ends: Instant,
}

impl Outage {
    pub fn starting_now(secs: u64) -> Self {
        let length = Duration::from_secs(secs);
        Outage {
            until: Utc::now() + length,
            refused_requests: 0,
            ends: Instant::now() + length,
        }
    }

    /// Whether the outage refuses a request arriving at `now`; counts it if so.
    pub(super) fn refuses(&mut self, now: Instant) -> bool {
        let running = now < self.ends;
        if running {
            self.refused_requests += 1;
        }
        running
    }
}

impl Faults {
    /// Refuses values out of range, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("error_rate", self.error_rate),
            ("ack_without_apply_rate", self.ack_without_apply_rate),
        ];
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{field} must be between 0 and 1"));
            }
        }
        if let Some(secs) = self.outage_secs
            && !(1..=MAX_OUTAGE_SECS).contains(&secs)
        {
            return Err(format!(
                "outage_secs must be between 1 and {MAX_OUTAGE_SECS}"
            ));
        }
        Ok(())
    }
}

impl Inner {
    /// Whether the ack-without-apply fault takes this quantity write on
    /// `mp`: the counted writes first, then the rate.
    pub(super) fn acks_without_applying(&mut self, mp: Marketplace) -> bool {
        let faults = &mut self.mp(mp).faults;
        if faults.ack_without_apply_writes > 0 {
            faults.ack_without_apply_writes -= 1;
            return true;
        }
        let rate = faults.ack_without_apply_rate;
        // No roll without the fault, so the 500 dice stay as they were per seed.
        rate > 0.0 && self.rng.random::<f64>() < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_refuses_and_counts_until_it_ends() {
        let mut outage = Outage::starting_now(10);
        let now = Instant::now();
        assert!(outage.refuses(now));
        assert!(outage.refuses(now + Duration::from_secs(9)));
        assert!(!outage.refuses(now + Duration::from_secs(11)));
        assert_eq!(outage.refused_requests, 2);
    }

    #[test]
    fn out_of_range_values_are_named() {
        let bad = [
            (
                Faults {
                    error_rate: 1.5,
                    ..Faults::default()
                },
                "error_rate",
            ),
            (
                Faults {
                    ack_without_apply_rate: -0.1,
                    ..Faults::default()
                },
                "ack_without_apply_rate",
            ),
            (
                Faults {
                    outage_secs: Some(0),
                    ..Faults::default()
                },
                "outage_secs",
            ),
            (
                Faults {
                    outage_secs: Some(MAX_OUTAGE_SECS + 1),
                    ..Faults::default()
                },
                "outage_secs",
            ),
        ];
        for (faults, field) in bad {
            let message = faults.validate().unwrap_err();
            assert!(message.starts_with(field), "{message}");
        }
        let fine = Faults {
            outage_secs: Some(1200),
            ack_without_apply_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(fine.validate(), Ok(()));
    }
}
