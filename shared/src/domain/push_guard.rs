//! When the publisher may push a quantity without giving back units the
//! marketplace already sold (the oversell guard).
//!
//! Pushes are absolute. A marketplace that decrements its own listing when an
//! order is placed (every marketplace we serve) shows, at any moment, what we
//! last pushed minus the units of the orders placed on it after that push
//! landed (an order placed before it was overwritten by it). A push above that count
//! gives those units back: an oversell unless our buffer covers them. So:
//!
//! 1. **Estimate what the marketplace shows now**: the quantity last pushed
//!    minus the units of its orders placed after that push landed
//!    ([`estimate_shown`]; the SQL is publisher/estimate.rs). Orders not
//!    learned yet make the real count lower still, never higher.
//! 2. **A push at or below the estimate** (a decrease) always goes: it only
//!    takes units off the marketplace compared with what we know.
//! 3. **A push above the estimate is an increase** and goes only when a
//!    new-orders poll covers it ([`PollCover::covers`]): the latest succeeded
//!    one started after the last push, is younger than
//!    `increase_freshness_seconds`, brought no order of the row (none was
//!    learned after it started) and left none for the locker to apply. Then
//!    every order placed on the row before that poll started is in our levels
//!    and in the estimate, and only orders placed between that poll's start
//!    and the push can be given back: the buffer the target keeps is for them.
//!
//! 4. **Before an increase, read what a decrementing marketplace shows**:
//!    less than the estimate means orders placed after the covering poll
//!    started that we have not learned yet; the increase would give them
//!    back, so it waits for the poll that brings them
//!    ([`PollCover::covers_read`]). Only orders placed between the read and
//!    the push landing (a round trip or two) are left to the buffer. A chaos
//!    run oversold a unit without it: a 2-unit order placed 3 s after the
//!    poll started, a 1-unit buffer, and the corrective decrease held up by
//!    a 429 storm while the SKU sold out. More than the estimate means a
//!    push we did not record (a crash between the call and its commit):
//!    the orders since it are unknown, so the increase waits too.
//!
//! A marketplace that keeps what we pushed (no decrement of its own) has
//! nothing to give back: there an increase needs only a fresh poll whose
//! orders the locker has applied.
//!
//! While a SKU keeps selling, each poll brings orders of it, so an increase
//! waits until a poll finds the row quiet (for a sell-out: once the
//! marketplace shows 0 and takes no more orders).

use chrono::{DateTime, Duration, Utc};

/// What the marketplace shows now, as far as we know: `None` before the
/// first push. `taken_since_push` is the units of this row's orders placed
/// after the last push landed; a marketplace that does not decrement
/// its own quantity still shows what we pushed.
pub fn estimate_shown(
    last_pushed: Option<i32>,
    taken_since_push: i32,
    decrements_on_order: bool,
) -> Option<i32> {
    let taken = if decrements_on_order {
        taken_since_push.max(0)
    } else {
        0
    };
    last_pushed.map(|pushed| (pushed - taken).max(0))
}

/// The facts that decide whether a new-orders poll covers an increase.
#[derive(Debug, Clone, Copy)]
pub struct PollCover {
    /// The start of the marketplace's latest succeeded new-orders poll.
    pub poll_started_at: Option<DateTime<Utc>>,
    /// When the last push of this row was recorded (after the marketplace answered).
    pub last_push_at: Option<DateTime<Utc>>,
    /// When the row's latest order was learned (its newest lock row).
    pub order_learned_at: Option<DateTime<Utc>>,
    /// Orders stored for this row that the locker has not applied yet.
    pub orders_unapplied: bool,
    /// The marketplace decrements its own quantity when an order is placed.
    pub decrements_on_order: bool,
    pub now: DateTime<Utc>,
    /// `marketplaces.increase_freshness_seconds`.
    pub freshness: Duration,
}

impl PollCover {
    pub fn covers(&self) -> bool {
        let Some(started) = self.poll_started_at else {
            return false;
        };
        let fresh = !self.orders_unapplied && started > self.now - self.freshness;
        // What a decrementing marketplace took after the last push must all be counted.
        let counted = !self.decrements_on_order
            || (self.last_push_at.is_none_or(|pushed| started > pushed)
                && self
                    .order_learned_at
                    .is_none_or(|learned| started > learned));
        fresh && counted
    }

    /// [`covers`](Self::covers), knowing what the marketplace shows now
    /// (`reported`, a read) against our `estimate` (nothing pushed: 0). On a
    /// decrementing marketplace, less than the estimate means orders we have
    /// not learned; more means a push we did not record (a publisher killed
    /// between the call and its commit), and orders placed since it are
    /// unknown too. Either way the read becomes the baseline, and the
    /// increase waits for a poll started after it.
    pub fn covers_read(&self, estimate: Option<i32>, reported: Option<i32>) -> bool {
        let unexplained = self.decrements_on_order
            && reported.is_some_and(|reported| reported != estimate.unwrap_or(0));
        self.covers() && !unexplained
    }
}

/// Whether a push that landed is read back later to prove it (sold-outs
/// confirmed, crate::sold_out): one across zero, a sold-out or a listing
/// back in stock (`shown` before it: 0, or nothing pushed yet). A listing at
/// 0 takes no orders, so no later change of its row corrects a write the
/// marketplace acknowledged and dropped; any other listing keeps selling,
/// and the push that follows corrects it.
pub fn read_back_after_push(shown: Option<i32>, pushed: i32) -> bool {
    pushed == 0 || shown.is_none_or(|shown| shown == 0)
}

/// What to do with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushDecision {
    /// The marketplace shows the target already (as far as we know).
    Unchanged,
    /// At or below what the marketplace shows: goes at once, high priority.
    Decrease,
    /// Above what the marketplace shows, covered by a poll: goes, low priority.
    Increase,
    /// Above what the marketplace shows, not covered: wait for a poll.
    WaitForPoll,
}

/// The rule: `shown` from [`estimate_shown`] (or a fresh read), `covered` from
/// [`PollCover::covers`]. A first push (nothing shown yet) of 0 is a decrease.
pub fn decide(target: i32, shown: Option<i32>, covered: bool) -> PushDecision {
    match shown {
        Some(shown) if shown == target => PushDecision::Unchanged,
        Some(shown) if target < shown => PushDecision::Decrease,
        None if target == 0 => PushDecision::Decrease,
        _ if covered => PushDecision::Increase,
        _ => PushDecision::WaitForPoll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn cover() -> PollCover {
        PollCover {
            poll_started_at: Some(at(10)),
            last_push_at: Some(at(5)),
            order_learned_at: Some(at(6)),
            orders_unapplied: false,
            decrements_on_order: true,
            now: at(11),
            freshness: Duration::seconds(60),
        }
    }

    #[test]
    fn the_estimate_takes_off_the_orders_learned_since_the_push() {
        assert_eq!(estimate_shown(Some(18), 5, true), Some(13));
        assert_eq!(estimate_shown(Some(3), 5, true), Some(0));
        assert_eq!(estimate_shown(None, 5, true), None);
    }

    #[test]
    fn pushes_across_zero_are_read_back() {
        assert!(read_back_after_push(Some(9), 0), "a sold-out");
        assert!(read_back_after_push(Some(0), 9), "back in stock");
        assert!(read_back_after_push(None, 9), "a first push");
        assert!(!read_back_after_push(Some(9), 4), "it keeps selling");
    }

    #[test]
    fn a_marketplace_that_does_not_decrement_shows_what_we_pushed() {
        assert_eq!(estimate_shown(Some(18), 5, false), Some(18));
    }

    #[test]
    fn our_own_sales_need_no_push_when_the_marketplace_counted_them() {
        // 20 in stock, 18 shown; 5 sold there: 15 left shows 13, as it does.
        let shown = estimate_shown(Some(18), 5, true);
        assert_eq!(decide(13, shown, false), PushDecision::Unchanged);
    }

    #[test]
    fn a_push_below_our_last_push_but_above_the_marketplace_is_an_increase() {
        // 18 pushed, 10 sold there since: it shows 8. Our target 9 (buffer
        // shrank) gives a unit back: it waits for a poll.
        let shown = estimate_shown(Some(18), 10, true);
        assert_eq!(decide(9, shown, false), PushDecision::WaitForPoll);
        assert_eq!(decide(9, shown, true), PushDecision::Increase);
        assert_eq!(decide(7, shown, false), PushDecision::Decrease);
    }

    #[test]
    fn a_first_push_above_zero_is_an_increase() {
        assert_eq!(decide(5, None, false), PushDecision::WaitForPoll);
        assert_eq!(decide(0, None, false), PushDecision::Decrease);
    }

    #[test]
    fn a_poll_covers_when_it_started_after_the_push_and_brought_no_order() {
        assert!(cover().covers());
    }

    #[test]
    fn a_poll_before_the_last_push_or_that_brought_an_order_of_the_row_does_not_cover() {
        let stale = PollCover {
            last_push_at: Some(at(10)),
            ..cover()
        };
        let busy = PollCover {
            order_learned_at: Some(at(12)),
            ..cover()
        };
        assert!(!stale.covers() && !busy.covers());
    }

    #[test]
    fn a_read_below_the_estimate_means_orders_not_learned_yet() {
        // We estimate 3 shown; the marketplace shows 1: an order of 2 came
        // after the poll started. An increase would give it back.
        assert!(!cover().covers_read(Some(3), Some(1)));
        assert!(cover().covers_read(Some(3), Some(3)));
        assert!(cover().covers_read(Some(3), None));
        assert!(cover().covers_read(None, Some(0)));
    }

    #[test]
    fn a_read_above_the_estimate_means_a_push_we_did_not_record() {
        // A chaos run, as far as its history tells: the publisher pushed 18 and was killed before its
        // commit; 14 units sold; the new process read 4 where it knew of
        // nothing pushed, and its increase to 18 gave the 14 back.
        assert!(!cover().covers_read(None, Some(4)));
        assert!(!cover().covers_read(Some(3), Some(5)));
    }

    #[test]
    fn a_marketplace_that_keeps_what_we_pushed_gives_nothing_back() {
        // A marketplace that keeps what we pushed: someone else changed it,
        // no order of ours is given back.
        let keeps = PollCover {
            decrements_on_order: false,
            ..cover()
        };
        assert!(keeps.covers_read(Some(3), Some(1)));
    }

    #[test]
    fn a_marketplace_that_keeps_what_we_pushed_needs_only_a_fresh_poll() {
        let keeps = PollCover {
            last_push_at: Some(at(10)),
            order_learned_at: Some(at(12)),
            decrements_on_order: false,
            ..cover()
        };
        assert!(keeps.covers());
        let lagging = PollCover {
            orders_unapplied: true,
            ..keeps
        };
        assert!(!lagging.covers());
    }

    #[test]
    fn orders_the_locker_has_not_applied_do_not_cover() {
        let lagging = PollCover {
            orders_unapplied: true,
            ..cover()
        };
        assert!(!lagging.covers());
    }

    #[test]
    fn an_old_poll_or_none_does_not_cover() {
        let old = PollCover {
            now: at(100),
            ..cover()
        };
        assert!(!old.covers());
        let none = PollCover {
            poll_started_at: None,
            ..cover()
        };
        assert!(!none.covers());
        let first = PollCover {
            last_push_at: None,
            order_learned_at: None,
            ..cover()
        };
        assert!(first.covers());
    }
}
