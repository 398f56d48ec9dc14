//! When a marketplace is down rather than failing now and then: the rule
//! that pauses its publisher queues (outage mode).
//!
//! Every request that fails transiently (timeout, connection refused, 5xx,
//! 429) counts here as it ends, each try of a call's in-process retries
//! included. A marketplace is in an outage when such failures have gone on
//! for at least `after` with no success between them, and at least `calls`
//! requests failed. Both: a burst of parallel requests failing in the same
//! second is one moment, and a single slow failure is not a streak. Any answer (a success, or a permanent 4xx
//! that shows the marketplace is there) ends the streak.

use std::time::{Duration, Instant};

/// The threshold of an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageRule {
    /// How long calls must have kept failing (`OUTAGE_PAUSE_AFTER_SECONDS`, 30 s).
    pub after: Duration,
    /// How many requests must have failed in that time (`OUTAGE_PAUSE_AFTER_CALLS`, 3).
    pub calls: u32,
}

impl Default for OutageRule {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(30),
            calls: 3,
        }
    }
}

/// A run of failed requests, with no answer between them.
#[derive(Debug, Default)]
pub struct FailureStreak {
    since: Option<Instant>,
    calls: u32,
}

impl FailureStreak {
    /// The marketplace answered: the streak is over.
    pub fn answered(&mut self) {
        *self = Self::default();
    }

    /// A request started at `started` failed at `now`; the reason to pause,
    /// once the rule is met. The streak runs from its first request's start.
    pub fn failed(
        &mut self,
        rule: &OutageRule,
        (started, now): (Instant, Instant),
        error: &str,
    ) -> Option<String> {
        let since = *self.since.get_or_insert(started.min(now));
        self.calls += 1;
        let lasted = now.saturating_duration_since(since);
        (lasted >= rule.after && self.calls >= rule.calls).then(|| {
            format!(
                "{} requests failed over {} s with no answer between them; last: {error}",
                self.calls,
                lasted.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: OutageRule = OutageRule {
        after: Duration::from_secs(30),
        calls: 3,
    };

    #[test]
    fn calls_failing_for_the_whole_window_pause() {
        let start = Instant::now();
        let mut streak = FailureStreak::default();
        assert_eq!(streak.failed(&RULE, (start, start), "503"), None);
        assert_eq!(
            streak.failed(
                &RULE,
                (
                    start + Duration::from_secs(12),
                    start + Duration::from_secs(12)
                ),
                "503"
            ),
            None
        );
        let reason = streak
            .failed(
                &RULE,
                (
                    start + Duration::from_secs(31),
                    start + Duration::from_secs(31),
                ),
                "HTTP 503",
            )
            .expect("an outage");
        assert_eq!(
            reason,
            "3 requests failed over 31 s with no answer between them; last: HTTP 503"
        );
    }

    #[test]
    fn the_streak_runs_from_the_first_failing_request_s_start() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let mut streak = FailureStreak::default();
        // Requests that hung for 10 s each before they timed out.
        assert_eq!(streak.failed(&RULE, (start, at(10)), "503"), None);
        assert_eq!(streak.failed(&RULE, (at(11), at(21)), "503"), None);
        assert!(streak.failed(&RULE, (at(26), at(36)), "503").is_some());
    }

    #[test]
    fn many_requests_in_one_moment_are_not_an_outage() {
        let start = Instant::now();
        let mut streak = FailureStreak::default();
        for _ in 0..50 {
            assert_eq!(streak.failed(&RULE, (start, start), "timeout"), None);
        }
    }

    #[test]
    fn one_slow_failure_is_not_an_outage() {
        let start = Instant::now();
        let mut streak = FailureStreak::default();
        streak.failed(&RULE, (start, start), "timeout");
        assert_eq!(
            streak.failed(
                &RULE,
                (
                    start + Duration::from_secs(600),
                    start + Duration::from_secs(600)
                ),
                "timeout"
            ),
            None
        );
    }

    #[test]
    fn an_answer_between_failures_starts_the_streak_again() {
        let start = Instant::now();
        let mut streak = FailureStreak::default();
        streak.failed(&RULE, (start, start), "503");
        streak.failed(
            &RULE,
            (
                start + Duration::from_secs(20),
                start + Duration::from_secs(20),
            ),
            "503",
        );
        streak.answered();
        assert_eq!(
            streak.failed(
                &RULE,
                (
                    start + Duration::from_secs(40),
                    start + Duration::from_secs(40)
                ),
                "503"
            ),
            None
        );
        assert_eq!(
            streak.failed(
                &RULE,
                (
                    start + Duration::from_secs(60),
                    start + Duration::from_secs(60)
                ),
                "503"
            ),
            None,
            "two calls since the answer"
        );
        assert!(
            streak
                .failed(
                    &RULE,
                    (
                        start + Duration::from_secs(70),
                        start + Duration::from_secs(70)
                    ),
                    "503"
                )
                .is_some()
        );
    }
}
