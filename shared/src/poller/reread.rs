//! Re-reading open orders the modified walk did not bring: once each,
//! least recently checked first, within a bounded time per run.

use super::fetch::{describe, store_page};
use super::run::{Finished, RunOptions, RunSummary};
use super::store;
use crate::marketplace::budget::{self, Priority};
use crate::marketplace::directory::MarketplaceRow;
use crate::marketplace::{Marketplace, MarketplaceError};
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Re-reads of open orders stop after half the poll interval, and never
/// before this: the rest, least recently checked first, wait for the next run.
const MIN_REREAD_TIME: Duration = Duration::from_secs(10);

/// Orders we hold as open that the open-orders walk did not return have left
/// the open states: read each one, once, to learn where it went. The least
/// recently checked go first; the re-reads stop at a rate limit or after
/// half the poll interval (the run is then partial), so a short budget
/// spreads them over runs.
pub(super) async fn reread_open_orders(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    adapter: &dyn Marketplace,
    seen: &HashSet<String>,
    options: &RunOptions,
    summary: &mut RunSummary,
    progress: &(dyn Fn(&RunSummary) + Sync),
) -> Result<Finished, String> {
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT external_id FROM orders
         WHERE marketplace_id = $1 AND status IN ('unpaid', 'pending', 'accepted')
         ORDER BY rechecked_at NULLS FIRST, id",
    )
    .bind(marketplace.id)
    .fetch_all(pool)
    .await
    .map_err(|e| format!("reading open orders: {e}"))?;
    let missing: Vec<String> = open.into_iter().filter(|id| !seen.contains(id)).collect();
    let interval = Duration::from_secs(marketplace.order_poll_interval_seconds.max(1) as u64);
    let deadline = Instant::now() + (interval / 2).max(MIN_REREAD_TIME);
    let mut reread = 0;
    for chunk in missing.chunks(50) {
        if options.shutdown.is_cancelled() {
            return Err("stopped by shutdown".into());
        }
        let mut orders = Vec::with_capacity(chunk.len());
        let mut checked = Vec::with_capacity(chunk.len());
        let mut stop = None;
        for id in chunk {
            if Instant::now() >= deadline {
                stop = Some(format!(
                    "re-read {reread} of {} open orders within {}s; the rest go first next run",
                    missing.len(),
                    (interval / 2).max(MIN_REREAD_TIME).as_secs()
                ));
                break;
            }
            let read = with_retries(|| adapter.get_order(id));
            match budget::with_priority(Priority::Low, read).await {
                Ok(order) => orders.push(order),
                // Gone from the marketplace: count it, keep going with the others.
                Err(MarketplaceError::Permanent {
                    status: Some(404), ..
                }) => {
                    tracing::warn!(marketplace = %marketplace.code, order = %id, "open order not found on the marketplace");
                    summary.errors += 1;
                }
                Err(error @ MarketplaceError::RateLimited { .. }) => {
                    stop = Some(format!(
                        "re-read {reread} of {} open orders, then cut by the rate limit: {error}",
                        missing.len()
                    ));
                    break;
                }
                Err(error) => return Err(describe(&error)),
            }
            checked.push(id.as_str());
            reread += 1;
        }
        store_page(pool, marketplace, &orders, summary).await?;
        store::mark_rechecked(pool, marketplace, &checked)
            .await
            .map_err(|e| format!("recording re-reads: {e}"))?;
        progress(summary);
        if let Some(reason) = stop {
            return Ok(Finished::Partial(reason));
        }
    }
    Ok(Finished::Complete)
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
