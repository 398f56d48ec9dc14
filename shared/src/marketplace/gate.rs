//! The cap on quantity updates in front of each quantity write, for a
//! marketplace that caps them on top of its request rate (Back Market's
//! ~2,000 listing updates an hour, `marketplaces.quantity_update_*`). The
//! publisher is its only caller and each publisher queue has a single active
//! consumer, so one process's limiter holds the fleet's cap; the request
//! rate itself is the fleet's [`super::Budget`].
//!
//! A GCRA limiter (governor): a quarter of the cap may go at once, the rest
//! is spread over the window.

use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

pub struct RateGate {
    code: String,
    limiter: DefaultDirectRateLimiter,
}

impl RateGate {
    /// A budget of `limit` operations in any `window` (Back Market's hourly
    /// cap on listing updates): a quarter of it may go at once, the rest is
    /// spread over the window. A burst b and a rate r admit at most
    /// b + r x window in any window, so r = (limit - b) / window keeps it.
    pub fn budget(code: &str, limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let burst = (limit / 4).max(1);
        let period = window.div_f64(f64::from((limit - burst).max(1)));
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))
            .expect("a positive period")
            .allow_burst(burst);
        Self {
            code: code.to_owned(),
            limiter: DefaultDirectRateLimiter::direct(quota),
        }
    }

    /// Waits until a quantity update may be sent.
    pub async fn wait(&self) {
        let started = Instant::now();
        self.limiter.until_ready().await;
        let waited = started.elapsed();
        if !waited.is_zero() {
            metrics::histogram!("stockfleet_rate_limit_wait_seconds",
                "marketplace" => self.code.clone(), "paces" => "quantity_updates")
            .record(waited.as_secs_f64());
        }
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
}
