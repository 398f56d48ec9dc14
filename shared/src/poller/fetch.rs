//! Fetching a run's pages and storing them, and the modified walk's cursor.

use super::kinds::SyncType;
use super::outcome::{Finished, RunOptions, RunSummary, cut};
use super::page::store_page;
use super::reread::{reread_open_orders, with_retries};
use super::store;
use crate::marketplace::directory::MarketplaceRow;
use crate::marketplace::{Marketplace, OrderQuery, PageToken};
use chrono::{DateTime, Duration as Span, Utc};
use sqlx::PgPool;
use std::collections::HashSet;

/// How long the first modified or care sync looks back when no cursor exists.
const FIRST_LOOKBACK: Span = Span::days(1);

/// Fetches every page of the run and stores it; the error text on failure.
/// A walk cut by the rate limit or a shutdown keeps the cursor where it was,
/// so the next run reads the same span again.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_all(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    adapter: &dyn Marketplace,
    sync_type: SyncType,
    options: &RunOptions,
    started_at: DateTime<Utc>,
    summary: &mut RunSummary,
    progress: &(dyn Fn(&RunSummary) + Sync),
) -> Result<Finished, String> {
    let since = match sync_type {
        SyncType::Modified | SyncType::Care => Some(
            since(pool, marketplace, sync_type, options.days_back, started_at)
                .await
                .map_err(|e| format!("reading the cursor: {e}"))?,
        ),
        _ => None,
    };
    let mut seen = HashSet::new();
    let mut page: Option<PageToken> = None;
    loop {
        if options.shutdown.is_cancelled() {
            // Like a cut by the rate limit: what was fetched is stored, the
            // cursor stays, the next run (after the deploy) reads on.
            return Ok(Finished::Partial(format!(
                "stopped by shutdown after {} pages; the next run reads the same span again",
                summary.pages
            )));
        }
        if sync_type == SyncType::Care {
            let care = match with_retries(|| adapter.list_care(since, page.clone())).await {
                Ok(care) => care,
                Err(error) => return cut(error, summary),
            };
            summary.fetched += care.cases.len() as u32;
            summary.updated += store::store_care(pool, marketplace, &care.cases)
                .await
                .map_err(|e| format!("storing care cases: {e}"))?;
            page = care.next;
        } else {
            let query = match sync_type {
                SyncType::New => OrderQuery::New,
                SyncType::Incomplete => OrderQuery::Incomplete,
                _ => OrderQuery::ModifiedSince(since.unwrap_or(started_at)),
            };
            let orders = match with_retries(|| adapter.list_orders(&query, page.clone())).await {
                Ok(orders) => orders,
                Err(error) => return cut(error, summary),
            };
            seen.extend(orders.orders.iter().map(|o| o.external_id.clone()));
            store_page(pool, marketplace, &orders.orders, summary).await?;
            page = orders.next;
        }
        summary.pages += 1;
        progress(summary);
        if page.is_none() {
            break;
        }
    }
    let finished = if sync_type == SyncType::Modified && !adapter.filters_modified_since() {
        // The walk is complete, so the cursor moves even when re-reads are cut:
        // the orders not re-read stay open here and go first next run.
        reread_open_orders(
            pool,
            marketplace,
            adapter,
            (&seen, since.unwrap_or(started_at)),
            options,
            summary,
            progress,
        )
        .await?
    } else {
        Finished::Complete
    };
    if let SyncType::Modified | SyncType::Care = sync_type {
        sqlx::query(
            "INSERT INTO sync_cursors (marketplace_id, sync_type, cursor_at) VALUES ($1, $2, $3)
             ON CONFLICT (marketplace_id, sync_type) DO UPDATE SET cursor_at = EXCLUDED.cursor_at, updated_at = now()",
        )
        .bind(marketplace.id)
        .bind(sync_type.as_str())
        .bind(started_at)
        .execute(pool)
        .await
        .map_err(|e| format!("saving the cursor: {e}"))?;
    }
    Ok(finished)
}

/// Where a modified or care sync starts: the cursor minus the overlap window,
/// or `days_back` when asked.
pub(super) async fn since(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    sync_type: SyncType,
    days_back: Option<u32>,
    now: DateTime<Utc>,
) -> sqlx::Result<DateTime<Utc>> {
    if let Some(days) = days_back {
        // Bounded at every edge; never an overflow here.
        let days = days.min(crate::domain::input::MAX_DAYS_BACK);
        return Ok(now - Span::days(i64::from(days)));
    }
    let cursor: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT cursor_at FROM sync_cursors WHERE marketplace_id = $1 AND sync_type = $2",
    )
    .bind(marketplace.id)
    .bind(sync_type.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(match cursor {
        Some(cursor) => cursor - Span::seconds(i64::from(marketplace.modified_overlap_seconds)),
        None => now - FIRST_LOOKBACK,
    })
}
