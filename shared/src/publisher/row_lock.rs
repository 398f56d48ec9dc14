//! One push of a stock row at a time in this process, across the batches a
//! stock queue works at once (`batches_in_flight`).
//!
//! A push is absolute and computed from the row as it is once it may be
//! sent; two pushes of one row under way at once could land in the wrong
//! order (the older quantity last) or decide from a `last_api_quantity` the
//! other is about to change. So a row's work, from reading its state to
//! committing what the marketplace was shown, holds the row's lock. A
//! publisher queue has a single active consumer, so this process is the
//! only one pushing its rows.
//!
//! A batch reads its rows once, up front; that view may only decide "no
//! call needed" while no other batch has worked the row since it was read
//! (a version per lock, bumped as each holder lets go, tells). Otherwise
//! the row's lock is taken and the row read again first.
//!
//! Striped: a fixed set of locks, a row's taken by its id. Unrelated rows
//! share one rarely and only for one call's round trip; nothing to clean up.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 1024;

pub(super) struct RowLocks(Vec<Stripe>);

#[derive(Default)]
struct Stripe {
    lock: Mutex<()>,
    /// How many times the lock was let go.
    version: AtomicU64,
}

/// A row's lock, held until its work is committed.
pub(super) struct RowGuard<'a> {
    _held: MutexGuard<'a, ()>,
    version: &'a AtomicU64,
}

impl Drop for RowGuard<'_> {
    fn drop(&mut self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

impl Default for RowLocks {
    fn default() -> Self {
        Self((0..STRIPES).map(|_| Stripe::default()).collect())
    }
}

impl RowLocks {
    fn stripe(&self, stock_id: i64) -> &Stripe {
        &self.0[stock_id.rem_euclid(STRIPES as i64) as usize]
    }

    /// Waits until no other batch of this process works `stock_id`.
    pub(super) async fn lock(&self, stock_id: i64) -> RowGuard<'_> {
        let stripe = self.stripe(stock_id);
        RowGuard {
            _held: stripe.lock.lock().await,
            version: &stripe.version,
        }
    }

    /// Taken before a batch reads its rows: see [`Self::untouched_since`].
    pub(super) fn version(&self, stock_id: i64) -> u64 {
        self.stripe(stock_id).version.load(Ordering::SeqCst)
    }

    /// Whether no batch has worked `stock_id` since `version` was taken
    /// (and none works it now): a view of the row read after `version`
    /// is still what the row is.
    pub(super) fn untouched_since(&self, stock_id: i64, version: u64) -> bool {
        let stripe = self.stripe(stock_id);
        let free = stripe.lock.try_lock().is_ok();
        free && stripe.version.load(Ordering::SeqCst) == version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_row_is_worked_by_one_batch_at_a_time_and_other_rows_go_on() {
        let locks = RowLocks::default();
        let held = locks.lock(7).await;
        let same = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(7)).await;
        assert!(same.is_err(), "a second lock of row 7 waits");
        let other = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(8)).await;
        assert!(other.is_ok(), "row 8 does not wait for row 7");
        drop(other);
        drop(held);
        let after = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(7)).await;
        assert!(after.is_ok(), "row 7 is free once released");
        let negative = locks.lock(-7).await;
        drop(negative);
    }

    #[tokio::test]
    async fn a_view_read_before_another_batch_worked_the_row_is_not_trusted() {
        let locks = RowLocks::default();
        let before = locks.version(3);
        assert!(locks.untouched_since(3, before));
        let held = locks.lock(3).await;
        assert!(!locks.untouched_since(3, before), "worked now");
        drop(held);
        assert!(!locks.untouched_since(3, before), "worked since");
        assert!(locks.untouched_since(3, locks.version(3)));
    }
}
