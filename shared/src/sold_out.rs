//! Sold-outs confirmed: a push that took a listing to 0 is read back once
//! its marketplace's `zero_confirm_seconds` have passed, as a reconciliation
//! of that row (a low-priority read; a difference is recorded and our 0 sent
//! again). A marketplace that answered 200 without applying the write then
//! stops showing the unit within a minute or so, not at the next 6-hourly
//! reconciliation. The publisher pushes the 0 and sets
//! `marketplace_stock.zero_confirm_due_at` in the same transaction
//! (`publisher/commit.rs`); this sweep takes the due rows and enqueues their
//! reconciliations in one transaction, so neither a crash nor two publishers
//! lose or double one (`FOR UPDATE SKIP LOCKED`).

use crate::bus::outbox;
use crate::reconcile::reconciliation_message;
use sqlx::{PgPool, Row};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The sweep's name among the publisher's tasks.
pub const CONFIRM_TASK: &str = "sold-out confirmations";

/// How often due confirmations are looked for.
const SWEEP: Duration = Duration::from_secs(5);

/// Rows taken per sweep at most: a burst of sold-outs is read back over a
/// few sweeps, paced by the listings budget anyway.
const PER_SWEEP: i64 = 500;

/// Enqueues every due confirmation until `shutdown`.
pub async fn confirm(pool: PgPool, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP) => {}
        }
        match enqueue_due(&pool).await {
            Ok(0) => {}
            Ok(rows) => {
                metrics::counter!("stockfleet_sold_out_confirmations_total").increment(rows as u64);
                tracing::info!(rows, "reading back listings pushed to 0");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot enqueue sold-out confirmations; trying again in 5 s")
            }
        }
    }
}

/// Takes the due rows (clearing their due time) and enqueues a
/// reconciliation of each, in one transaction; returns how many.
pub async fn enqueue_due(pool: &PgPool) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "WITH due AS (
             SELECT id FROM marketplace_stock
             WHERE zero_confirm_due_at <= now()
             ORDER BY zero_confirm_due_at LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE marketplace_stock s SET zero_confirm_due_at = NULL
         FROM due, variations v, marketplaces m
         WHERE s.id = due.id AND v.id = s.variation_id AND m.id = s.marketplace_id
         RETURNING s.id, s.variation_id, v.sku, s.listed_stock, s.locked_stock,
                   s.available_stock, m.code",
    )
    .bind(PER_SWEEP)
    .fetch_all(&mut *tx)
    .await?;
    let messages: Vec<_> = rows
        .iter()
        .map(|row| reconciliation_message(row, row.get::<&str, _>("code")))
        .collect();
    outbox::enqueue(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok(messages.len())
}
