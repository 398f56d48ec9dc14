//! The per-marketplace request gate: every HTTP call an adapter makes waits
//! here first, so the marketplace's limit holds for all of them (a Back
//! Market stock write that first resolves the SKU costs two requests, and both
//! count).
//!
//! A GCRA limiter (governor) without bursts spaces requests evenly, at a
//! little under the configured rate: marketplaces count requests in their own
//! windows when they *arrive*, and network jitter moves arrivals around. A 429
//! closes the gate for its Retry-After, for every caller, so one throttled
//! call does not let the next ones run into the same wall.

use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Share of the published rate actually used: keeps a margin for jitter.
const HEADROOM: f64 = 0.95;

pub struct RateGate {
    code: String,
    limiter: DefaultDirectRateLimiter,
    /// Closed until this instant after a 429.
    blocked_until: Mutex<Option<Instant>>,
}

impl RateGate {
    /// At most `requests` per `window` (spaced evenly, no burst).
    pub fn new(code: &str, requests: u32, window: Duration) -> Self {
        let requests = requests.max(1);
        let period = window.div_f64(f64::from(requests) * HEADROOM);
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))
            .expect("a positive period")
            .allow_burst(NonZeroU32::MIN);
        Self {
            code: code.to_owned(),
            limiter: DefaultDirectRateLimiter::direct(quota),
            blocked_until: Mutex::new(None),
        }
    }

    /// Waits until a request may be sent.
    pub async fn wait(&self) {
        let started = Instant::now();
        loop {
            let blocked = *self.blocked_until.lock().expect("poisoned");
            match blocked {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        self.limiter.until_ready().await;
        let waited = started.elapsed();
        if !waited.is_zero() {
            metrics::histogram!("stockfleet_rate_limit_wait_seconds", "marketplace" => self.code.clone())
                .record(waited.as_secs_f64());
        }
    }

    /// Closes the gate for `retry_after` (a 429's Retry-After).
    pub fn block_for(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut blocked = self.blocked_until.lock().expect("poisoned");
        if blocked.is_none_or(|current| current < until) {
            *blocked = Some(until);
        }
        metrics::counter!("stockfleet_rate_limited_total", "marketplace" => self.code.clone())
            .increment(1);
    }
}

impl std::fmt::Debug for RateGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateGate")
            .field("code", &self.code)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_requests_under_the_rate() {
        let gate = RateGate::new("t", 20, Duration::from_secs(1));
        let started = Instant::now();
        for _ in 0..11 {
            gate.wait().await;
        }
        // 10 intervals of 1/19 s each.
        assert!(started.elapsed() >= Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_429_closes_the_gate_for_its_retry_after() {
        let gate = RateGate::new("t", 1000, Duration::from_secs(1));
        gate.wait().await;
        gate.block_for(Duration::from_millis(200));
        let started = Instant::now();
        gate.wait().await;
        assert!(started.elapsed() >= Duration::from_millis(190));
    }
}
