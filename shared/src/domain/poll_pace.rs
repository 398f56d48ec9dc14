//! When a new-orders poll is due: as often as the marketplace's request
//! budget allows, between a fastest and a slowest interval.
//!
//! A poll is the window in which a sale on one marketplace is not yet known
//! to the others (for a pooled variation, the oversell window), so it runs
//! as soon as the fastest interval has passed, if the budget has headroom:
//! its orders class is not blocked by a 429 and holds at least half its
//! bucket. The other half is what order commands (high priority, same class)
//! always find, so polls never starve them. Runs that failed or were cut
//! short (a 429, a budget that ran dry) back off: each one in a row doubles
//! the interval, up to the slowest. The slowest interval holds whatever the
//! budget says: a marketplace is never left unpolled longer than it.

use std::time::Duration;

/// A marketplace's bounds on the new-orders poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPace {
    pub fastest: Duration,
    pub slowest: Duration,
}

/// What the schedule knows of a marketplace's new-orders polls now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollState {
    /// Since the latest run started; None when none ever ran.
    pub age: Option<Duration>,
    /// The latest finished runs that failed or were partial, in a row.
    pub setbacks: u32,
    /// The orders budget is not blocked and holds at least half its bucket
    /// (or the marketplace has no budget: no limit).
    pub headroom: bool,
}

impl PollPace {
    /// From the marketplace's columns; a fastest above the slowest is the slowest.
    pub fn from_seconds(fastest: i32, slowest: i32) -> Self {
        let slowest = Duration::from_secs(slowest.max(1) as u64);
        let fastest = Duration::from_secs(fastest.max(1) as u64).min(slowest);
        Self { fastest, slowest }
    }

    /// The least time between two polls after `setbacks` bad runs in a row.
    pub fn interval(self, setbacks: u32) -> Duration {
        self.fastest
            .saturating_mul(2u32.saturating_pow(setbacks.min(16)))
            .min(self.slowest)
    }

    pub fn due(self, state: PollState) -> bool {
        let Some(age) = state.age else {
            return true;
        };
        age >= self.slowest || (age >= self.interval(state.setbacks) && state.headroom)
    }
}

/// Bad runs in a row from the latest finished run back (`partial`, `failed`);
/// runs still under way are passed over.
pub fn setbacks<'a>(statuses_newest_first: impl IntoIterator<Item = &'a str>) -> u32 {
    statuses_newest_first
        .into_iter()
        .filter(|status| *status != "running")
        .take_while(|status| matches!(*status, "partial" | "failed"))
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn state(age: u64, setbacks: u32, headroom: bool) -> PollState {
        PollState {
            age: Some(Duration::from_secs(age)),
            setbacks,
            headroom,
        }
    }

    #[test]
    fn with_headroom_a_poll_is_due_every_fastest_interval() {
        let pace = PollPace::from_seconds(1, 120);
        assert!(pace.due(state(1, 0, true)));
        assert!(!pace.due(PollState {
            age: Some(SECOND / 2),
            setbacks: 0,
            headroom: true
        }));
        assert!(pace.due(PollState {
            age: None,
            setbacks: 9,
            headroom: false
        }));
    }

    #[test]
    fn without_headroom_it_waits_but_never_past_the_slowest_interval() {
        let pace = PollPace::from_seconds(1, 120);
        assert!(!pace.due(state(5, 0, false)));
        assert!(!pace.due(state(119, 0, false)));
        assert!(pace.due(state(120, 0, false)));
    }

    #[test]
    fn bad_runs_in_a_row_double_the_interval_up_to_the_slowest() {
        let pace = PollPace::from_seconds(1, 120);
        assert_eq!(pace.interval(0), SECOND);
        assert_eq!(pace.interval(3), 8 * SECOND);
        assert_eq!(pace.interval(7), 120 * SECOND);
        assert_eq!(pace.interval(u32::MAX), 120 * SECOND);
        assert!(!pace.due(state(7, 3, true)));
        assert!(pace.due(state(8, 3, true)));
    }

    #[test]
    fn a_fastest_above_the_slowest_is_the_slowest() {
        let pace = PollPace::from_seconds(3600, 60);
        assert_eq!(pace.interval(0), 60 * SECOND);
        assert_eq!(PollPace::from_seconds(0, 0).slowest, SECOND);
    }

    #[test]
    fn setbacks_count_bad_runs_from_the_newest_finished_one() {
        assert_eq!(
            setbacks(["running", "partial", "failed", "succeeded", "failed"]),
            2
        );
        assert_eq!(setbacks(["succeeded", "failed"]), 0);
        assert_eq!(setbacks([]), 0);
    }
}
