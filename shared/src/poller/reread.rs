//! Finding where the orders we hold as open went, when the marketplace
//! cannot list orders by modification time (Refurbed): the modified walk
//! brings every open order, so one it did not bring has left the open
//! states. The closed orders released since the oldest of them are listed a
//! page at a time; the oldest few are read one by one where that costs less
//! than listing everything released since them.

use super::outcome::{Finished, RunOptions, RunSummary, describe};
use super::page::store_page;
use super::store;
use crate::marketplace::budget::{self, Priority};
use crate::marketplace::directory::MarketplaceRow;
use crate::marketplace::{Marketplace, MarketplaceError, MarketplaceOrder, PageToken};
use chrono::{DateTime, Timelike, Utc};
use sqlx::{PgPool, Row};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The search stops after half the poll interval, and never before this:
/// the rest, least recently checked first, wait for the next run.
const MIN_REREAD_TIME: Duration = Duration::from_secs(10);

/// Orders a listing page holds (Refurbed's maximum), to price a listing.
const LISTING_PAGE: u64 = 100;

/// An order we hold as open that the modified walk did not bring.
struct LeftOpen {
    external_id: String,
    released_at: Option<DateTime<Utc>>,
    /// Orders of the marketplace released at or after it (itself included)
    /// and before the walk's cursor.
    released_after: i64,
}

/// How many of the orders that left the open states, oldest release first,
/// to read one by one (a request each) before listing the closed orders
/// released since the next one (a request per page of every order released
/// since then): the cheapest split.
fn reads_before_listing(released_after: &[i64]) -> usize {
    let pages = |orders: i64| (orders.max(1) as u64).div_ceil(LISTING_PAGE) as usize;
    (0..=released_after.len())
        .min_by_key(|&reads| reads + released_after.get(reads).map_or(0, |&orders| pages(orders)))
        .unwrap_or(0)
}

/// Where the orders we hold as open that the walk did not bring (`seen`)
/// went: listed, or read one by one, within a bounded time (the run is then
/// partial and the rest go first next run). The walk brought every order
/// released since `walked_from`, so the listing stops there.
pub(super) async fn reread_open_orders(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    adapter: &dyn Marketplace,
    (seen, walked_from): (&HashSet<String>, DateTime<Utc>),
    options: &RunOptions,
    summary: &mut RunSummary,
    progress: &(dyn Fn(&RunSummary) + Sync),
) -> Result<Finished, String> {
    // The walk split on whole seconds (adapters send whole seconds).
    let walked_from = walked_from.with_nanosecond(0).unwrap_or(walked_from);
    let left = left_open(pool, marketplace, seen, walked_from)
        .await
        .map_err(|e| format!("reading open orders: {e}"))?;
    let total = left.len();
    // Orders without a release time, or released where the walk looked
    // already, can only be read one by one.
    let (undated, dated): (Vec<_>, Vec<_>) = left
        .into_iter()
        .partition(|o| o.released_at.is_none_or(|at| at >= walked_from));
    let counts: Vec<i64> = dated.iter().map(|o| o.released_after).collect();
    let split = reads_before_listing(&counts);
    let mut reads: Vec<String> = undated.into_iter().map(|o| o.external_id).collect();
    let mut listed = dated.into_iter();
    reads.extend(listed.by_ref().take(split).map(|o| o.external_id));
    let listed: Vec<LeftOpen> = listed.collect();

    let interval = Duration::from_secs(marketplace.order_poll_interval_seconds.max(1) as u64);
    let budget_time = (interval / 2).max(MIN_REREAD_TIME);
    let search = Search {
        pool,
        marketplace,
        adapter,
        options,
        deadline: Instant::now() + budget_time,
        total,
    };
    let mut found = 0;
    if let Some(since) = listed.first().and_then(|o| o.released_at) {
        let mut wanted: HashSet<String> = listed.into_iter().map(|o| o.external_id).collect();
        if let Some(stop) = search
            .list_closed(
                since..walked_from,
                &mut wanted,
                &mut found,
                summary,
                progress,
            )
            .await?
        {
            return Ok(Finished::Partial(stop));
        }
        // Not among the closed ones after all (it changed meanwhile): read it.
        reads.extend(wanted);
    }
    match search
        .read_each(&reads, &mut found, summary, progress)
        .await?
    {
        Some(stop) => Ok(Finished::Partial(stop)),
        None => Ok(Finished::Complete),
    }
}

/// The open orders the walk did not bring, oldest release first.
async fn left_open(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    seen: &HashSet<String>,
    walked_from: DateTime<Utc>,
) -> sqlx::Result<Vec<LeftOpen>> {
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    let rows = sqlx::query(
        "WITH left_open AS (
             SELECT id, external_id, placed_at, rechecked_at FROM orders
             WHERE marketplace_id = $1 AND status IN ('unpaid', 'pending', 'accepted')
               AND NOT (external_id = ANY($2))),
         released AS (
             SELECT o.external_id, count(*) OVER (ORDER BY o.placed_at DESC) AS released_after
             FROM orders o
             WHERE o.marketplace_id = $1
               AND o.placed_at >= (SELECT min(placed_at) FROM left_open)
               AND o.placed_at < $3)
         SELECT l.external_id, l.placed_at, COALESCE(r.released_after, 0) AS released_after
         FROM left_open l LEFT JOIN released r ON r.external_id = l.external_id
         ORDER BY l.placed_at NULLS FIRST, l.rechecked_at NULLS FIRST, l.id",
    )
    .bind(marketplace.id)
    .bind(&seen)
    .bind(walked_from)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| LeftOpen {
            external_id: row.get("external_id"),
            released_at: row.get("placed_at"),
            released_after: row.get("released_after"),
        })
        .collect())
}

/// One run's search for the orders that left the open states.
struct Search<'a> {
    pool: &'a PgPool,
    marketplace: &'a MarketplaceRow,
    adapter: &'a dyn Marketplace,
    options: &'a RunOptions,
    deadline: Instant,
    /// Orders to find in all.
    total: usize,
}

impl Search<'_> {
    /// Why the search stops now, if it must: a shutdown or its time is up.
    fn stopped(&self, found: usize) -> Option<String> {
        if self.options.shutdown.is_cancelled() {
            return Some(format!(
                "stopped by shutdown after finding {found} of {} orders that left the open states; the rest go first next run",
                self.total
            ));
        }
        (Instant::now() >= self.deadline).then(|| {
            format!(
                "found {found} of {} orders that left the open states in the time allowed; the rest go first next run",
                self.total
            )
        })
    }

    /// Lists the closed orders released in `released`, page by page, until
    /// every wanted one is found; the reason when the search must stop.
    async fn list_closed(
        &self,
        released: Range<DateTime<Utc>>,
        wanted: &mut HashSet<String>,
        found: &mut usize,
        summary: &mut RunSummary,
        progress: &(dyn Fn(&RunSummary) + Sync),
    ) -> Result<Option<String>, String> {
        let mut page: Option<PageToken> = None;
        while !wanted.is_empty() {
            if let Some(stop) = self.stopped(*found) {
                return Ok(Some(stop));
            }
            let list = with_retries(|| {
                self.adapter
                    .list_orders_closed(released.start, released.end, page.clone())
            });
            let listed = match budget::with_priority(Priority::Low, list).await {
                Ok(listed) => listed,
                Err(error) => return self.cut(error, *found).map(Some),
            };
            summary.pages += 1;
            let orders: Vec<MarketplaceOrder> = listed
                .orders
                .into_iter()
                .filter(|order| wanted.remove(&order.external_id))
                .collect();
            *found += orders.len();
            self.store(&orders, summary).await?;
            progress(summary);
            match listed.next {
                Some(next) => page = Some(next),
                None => break,
            }
        }
        Ok(None)
    }

    /// Reads each order on its own, in chunks stored as they come; the
    /// reason when the search must stop.
    async fn read_each(
        &self,
        ids: &[String],
        found: &mut usize,
        summary: &mut RunSummary,
        progress: &(dyn Fn(&RunSummary) + Sync),
    ) -> Result<Option<String>, String> {
        for chunk in ids.chunks(50) {
            let mut orders = Vec::with_capacity(chunk.len());
            let mut gone = Vec::new();
            let mut stop = None;
            for id in chunk {
                if let Some(reason) = self.stopped(*found) {
                    stop = Some(reason);
                    break;
                }
                let read = with_retries(|| self.adapter.get_order(id));
                match budget::with_priority(Priority::Low, read).await {
                    Ok(order) => orders.push(order),
                    // Gone from the marketplace: count it, keep going with the others.
                    Err(MarketplaceError::Permanent {
                        status: Some(404), ..
                    }) => {
                        tracing::warn!(marketplace = %self.marketplace.code, order = %id, "open order not found on the marketplace");
                        summary.errors += 1;
                        gone.push(id.as_str());
                    }
                    Err(error) => {
                        stop = Some(self.cut(error, *found)?);
                        break;
                    }
                }
                *found += 1;
            }
            self.store(&orders, summary).await?;
            store::mark_rechecked(self.pool, self.marketplace, &gone)
                .await
                .map_err(|e| format!("recording re-reads: {e}"))?;
            progress(summary);
            if stop.is_some() {
                return Ok(stop);
            }
        }
        Ok(None)
    }

    /// A call that gave up: a rate limit stops the search (the run is
    /// partial), any other error fails the run.
    fn cut(&self, error: MarketplaceError, found: usize) -> Result<String, String> {
        match error {
            MarketplaceError::RateLimited { .. } => Ok(format!(
                "found {found} of {} orders that left the open states, then cut by the rate limit: {error}",
                self.total
            )),
            error => Err(describe(&error)),
        }
    }

    /// Stores found orders and notes them as checked.
    async fn store(
        &self,
        orders: &[MarketplaceOrder],
        summary: &mut RunSummary,
    ) -> Result<(), String> {
        store_page(self.pool, self.marketplace, orders, summary).await?;
        let ids: Vec<&str> = orders.iter().map(|o| o.external_id.as_str()).collect();
        store::mark_rechecked(self.pool, self.marketplace, &ids)
            .await
            .map_err(|e| format!("recording re-reads: {e}"))
    }
}

/// A marketplace call with a few in-process retries for transient errors,
/// honouring Retry-After; the last error otherwise.
pub(super) async fn with_retries<T, F, Fut>(call: F) -> Result<T, MarketplaceError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, MarketplaceError>>,
{
    let policy = crate::retry::Policy {
        initial: Duration::from_millis(200),
        max_interval: Duration::from_secs(5),
        max_elapsed: Duration::from_secs(10),
    };
    crate::retry::retry(
        &policy,
        || async {
            let result = call().await;
            if let Err(error) = &result
                && let Some(wait) = error.retry_after()
            {
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
            }
            result
        },
        MarketplaceError::is_transient,
        |error, wait| tracing::info!(%error, ?wait, "marketplace call failed; retrying"),
    )
    .await
}

pub(super) type BuiltAdapter = (MarketplaceRow, Arc<dyn Marketplace>);

#[cfg(test)]
mod tests {
    use super::reads_before_listing;

    #[test]
    fn many_recent_orders_are_listed_not_read() {
        // 30 orders left the open states among the last 40 released: one page.
        let released_after: Vec<i64> = (0..30).map(|n| 40 - n).collect();
        assert_eq!(reads_before_listing(&released_after), 0);
    }

    #[test]
    fn an_old_straggler_is_read_and_the_recent_ones_listed() {
        // One order released 5,000 orders ago, then 20 among the last 150.
        let mut released_after = vec![5_000];
        released_after.extend((0..20).map(|n| 150 - n));
        assert_eq!(reads_before_listing(&released_after), 1);
    }

    #[test]
    fn a_few_old_orders_are_read_one_by_one() {
        // Three orders with 1,000 released after each: three reads beat ten pages.
        assert_eq!(reads_before_listing(&[1_000, 999, 998]), 3);
        assert_eq!(reads_before_listing(&[]), 0);
    }

    #[test]
    fn a_tie_lists() {
        // One order with 100 released after it: a read or a page; the page.
        assert_eq!(reads_before_listing(&[100]), 0);
    }
}
