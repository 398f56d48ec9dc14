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
    /// What it paces, for metrics: `requests` or `quantity_updates`.
    paces: &'static str,
    limiter: DefaultDirectRateLimiter,
    /// Closed until this instant after a 429.
    blocked_until: Mutex<Option<Instant>>,
}

impl RateGate {
    /// At most `requests` per `window` (spaced evenly, no burst).
    pub fn new(code: &str, requests: u32, window: Duration) -> Self {
        let requests = requests.max(1);
        let period = window.div_f64(f64::from(requests) * HEADROOM);
        Self::with_quota(code, "requests", period, NonZeroU32::MIN)
    }

    /// A budget of `limit` operations in any `window` (Back Market's hourly
    /// cap on listing updates): a quarter of it may go at once, the rest is
    /// spread over the window. A burst b and a rate r admit at most
    /// b + r x window in any window, so r = (limit - b) / window keeps it.
    pub fn budget(code: &str, limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let burst = (limit / 4).max(1);
        let period = window.div_f64(f64::from((limit - burst).max(1)));
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self::with_quota(code, "quantity_updates", period, burst)
    }

    fn with_quota(code: &str, paces: &'static str, period: Duration, burst: NonZeroU32) -> Self {
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))
            .expect("a positive period")
            .allow_burst(burst);
        Self {
            code: code.to_owned(),
            paces,
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
            metrics::histogram!("stockfleet_rate_limit_wait_seconds",
                "marketplace" => self.code.clone(), "paces" => self.paces)
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
    async fn a_budget_never_admits_more_than_its_limit_in_any_window() {
        // 8 per 200 ms: 2 at once, then one every 200/6 ms.
        let window = Duration::from_millis(200);
        let gate = RateGate::budget("t", 8, window);
        let started = Instant::now();
        let mut admitted = Vec::new();
        for _ in 0..26 {
            gate.wait().await;
            admitted.push(started.elapsed());
        }
        assert!(
            admitted[1] < Duration::from_millis(20),
            "the burst goes at once"
        );
        // Measured a little inside the window: a late wake-up only delays an admission.
        let measured = window.mul_f64(0.9);
        for (i, at) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|later| **later < *at + measured)
                .count();
            assert!(
                in_window <= 8,
                "{in_window} admitted in the window from {at:?}"
            );
        }
        // Without the budget's spacing all 26 would pass at once.
        assert!(
            admitted[25] >= Duration::from_millis(600),
            "{:?}",
            admitted[25]
        );
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
