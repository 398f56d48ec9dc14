//! Stock reconciliation (design §6): every row whose last push is older than
//! its marketplace's `sync_interval_hours` (or every row, forced) is sent
//! through the same publisher path as any change: a `stock.changed.<mp>`
//! with change type `reconciliation`, through the outbox.
//!
//! The marketplace's own quantity is read by the publisher when it handles
//! that message, not here: the publisher's queue has a single active consumer
//! and its rate gate, so the reads count against the same limit as the pushes
//! wherever reconciliation was started from (the schedule in a publisher, or
//! `stockfleet sync --type stock` on an operator's machine). The drift it sees
//! is recorded there as a `reconciliation` history row.
//!
//! One run per marketplace at a time across every process (a PostgreSQL
//! advisory lock keyed by the marketplace, held for the run); each run is
//! recorded in `sync_runs` with sync type `stock`. The schedule runs a
//! marketplace at `k × sync_interval_hours + sync_offset_minutes` (UTC), so
//! marketplaces with different offsets never reconcile at once; each slot runs
//! once however many publishers watch the clock (`sync_runs.scheduled_for` is
//! unique per marketplace).

use crate::bus::Envelope;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::trigger::Trigger;
use crate::events::{RECONCILIATION, STOCK_CHANGED, StockChanged};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// First key of the advisory locks of reconciliation runs (the second is the
/// marketplace id), apart from any other advisory lock of the fleet.
const LOCK_NAMESPACE: i32 = 0x5354_4b52; // "STKR"

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub marketplace: String,
    /// The `sync_runs` row; None when the run did not take place.
    pub run_id: Option<i64>,
    /// Another run of this marketplace was under way (or this slot already ran).
    pub skipped: bool,
    /// Rows sent through the publisher.
    pub enqueued: usize,
    /// Rows of unknown stock left out (never pushed; `stockfleet validate` lists them).
    pub unknown_stock: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("unknown marketplace {0:?}")]
    UnknownMarketplace(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Reconciles one marketplace now: enqueues every stale row (all known rows
/// with `force`). Returns at once with `skipped` when a run of that
/// marketplace is under way elsewhere. This is what `stockfleet sync --type
/// stock [--force]` calls.
pub async fn run(
    pool: &PgPool,
    marketplace: &str,
    force: bool,
    trigger: Trigger,
) -> Result<Summary, ReconcileError> {
    run_slot(pool, marketplace, force, trigger, None).await
}

/// One reconciliation, in its own trace: the pushes it causes are its children.
#[tracing::instrument(name = "sync", skip_all, fields(
    otel.name = format!("sync {marketplace} stock"),
    marketplace,
    sync_type = "stock",
    trace_id = tracing::field::Empty,
))]
async fn run_slot(
    pool: &PgPool,
    marketplace: &str,
    force: bool,
    trigger: Trigger,
    slot: Option<DateTime<Utc>>,
) -> Result<Summary, ReconcileError> {
    crate::telemetry::record_trace_id(&tracing::Span::current());
    let marketplace_id: i32 = sqlx::query_scalar("SELECT id FROM marketplaces WHERE code = $1")
        .bind(marketplace)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ReconcileError::UnknownMarketplace(marketplace.to_owned()))?;
    let mut summary = Summary {
        marketplace: marketplace.to_owned(),
        run_id: None,
        skipped: true,
        enqueued: 0,
        unknown_stock: 0,
    };
    // Session-level lock: held on this connection until unlocked below. The
    // connection is closed rather than pooled when dropped, so a run cancelled
    // mid-way cannot leave the lock behind on a pooled connection.
    let mut conn = pool.acquire().await?;
    conn.close_on_drop();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(LOCK_NAMESPACE)
        .bind(marketplace_id)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(summary);
    }
    let result = locked_run(
        &mut conn,
        marketplace_id,
        force,
        trigger,
        slot,
        &mut summary,
    )
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
        .bind(LOCK_NAMESPACE)
        .bind(marketplace_id)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // A lock we cannot release must not outlive this connection.
        conn.detach();
    }
    result?;
    Ok(summary)
}

async fn locked_run(
    conn: &mut PgConnection,
    marketplace_id: i32,
    force: bool,
    trigger: Trigger,
    slot: Option<DateTime<Utc>>,
    summary: &mut Summary,
) -> Result<(), ReconcileError> {
    let run_id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sync_runs (marketplace_id, sync_type, trigger, scheduled_for)
         VALUES ($1, 'stock', $2, $3) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(marketplace_id)
    .bind(trigger.as_str())
    .bind(slot)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run_id) = run_id else {
        return Ok(()); // this slot already ran
    };
    summary.run_id = Some(run_id);
    summary.skipped = false;
    match enqueue_stale(conn, marketplace_id, &summary.marketplace, force).await {
        Ok((enqueued, unknown)) => {
            summary.enqueued = enqueued;
            summary.unknown_stock = unknown;
            sqlx::query(
                "UPDATE sync_runs SET status = 'succeeded', finished_at = now(),
                     fetched = $2, updated = $3,
                     duration_ms = (EXTRACT(EPOCH FROM now() - started_at) * 1000)::bigint
                 WHERE id = $1",
            )
            .bind(run_id)
            .bind((enqueued + unknown) as i32)
            .bind(enqueued as i32)
            .execute(&mut *conn)
            .await?;
            tracing::info!(marketplace = %summary.marketplace, enqueued, unknown, "reconciliation enqueued");
            Ok(())
        }
        Err(error) => {
            sqlx::query(
                "UPDATE sync_runs SET status = 'failed', finished_at = now(), errors = 1, error_text = $2,
                     duration_ms = (EXTRACT(EPOCH FROM now() - started_at) * 1000)::bigint
                 WHERE id = $1",
            )
            .bind(run_id)
            .bind(error.to_string())
            .execute(&mut *conn)
            .await?;
            Err(error.into())
        }
    }
}

/// Enqueues the stale rows in one transaction; returns (enqueued, unknown stock).
async fn enqueue_stale(
    conn: &mut PgConnection,
    marketplace_id: i32,
    code: &str,
    force: bool,
) -> sqlx::Result<(usize, usize)> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let rows = sqlx::query(
        "SELECT s.id, s.variation_id, v.sku, s.listed_stock, s.locked_stock, s.available_stock,
                s.stock_known
         FROM marketplace_stock s
         JOIN variations v ON v.id = s.variation_id
         JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE s.marketplace_id = $1
           AND ($2 OR s.last_synced_at IS NULL
                OR s.last_synced_at < now() - make_interval(hours => m.sync_interval_hours))
         ORDER BY s.id",
    )
    .bind(marketplace_id)
    .bind(force)
    .fetch_all(&mut *tx)
    .await?;
    let mut messages = Vec::with_capacity(rows.len());
    let mut unknown = 0;
    for row in rows {
        if !row.get::<bool, _>("stock_known") {
            unknown += 1;
            continue;
        }
        messages.push(reconciliation_message(&row, code));
    }
    for chunk in messages.chunks(1000) {
        outbox::enqueue(&mut tx, chunk).await?;
    }
    tx.commit().await?;
    Ok((messages.len(), unknown))
}

/// A reconciliation of one row (`id, variation_id, sku, listed_stock,
/// locked_stock, available_stock`) for the publisher of `code`: it reads what
/// the marketplace shows, records a difference and pushes ours.
pub(crate) fn reconciliation_message(row: &sqlx::postgres::PgRow, code: &str) -> OutboxMessage {
    let payload = StockChanged {
        stock_id: row.get("id"),
        variation_id: row.get("variation_id"),
        sku: row.get("sku"),
        listed: row.get("listed_stock"),
        locked: row.get("locked_stock"),
        available: row.get("available_stock"),
        change_type: RECONCILIATION.to_owned(),
        origin: None,
    };
    OutboxMessage::event(Envelope::new(STOCK_CHANGED, code, &payload), None)
}

/// The latest slot at or before `now` of a schedule of `interval` shifted by
/// `offset`, counted from the Unix epoch.
pub fn latest_slot(now: DateTime<Utc>, interval: Duration, offset: Duration) -> DateTime<Utc> {
    let interval_ms = interval.as_millis().max(1) as i64;
    let offset_ms = (offset.as_millis() as i64) % interval_ms;
    let since = now.timestamp_millis() - offset_ms;
    let slot = since.div_euclid(interval_ms) * interval_ms + offset_ms;
    DateTime::from_timestamp_millis(slot).unwrap_or(now)
}

/// The schedule's name among the publisher's tasks.
pub const SCHEDULE_TASK: &str = "reconciliation schedule";

/// Runs each marketplace's reconciliation at its slots until `shutdown`.
/// `hour` is the length of an hour of the schedule (shorter in demos and tests).
/// A slot missed while no publisher ran is not caught up: the next one comes
/// within the interval, and catching up would make marketplaces run at once.
pub async fn schedule(pool: PgPool, hour: Duration, shutdown: CancellationToken) {
    let tick = (hour / 240).clamp(Duration::from_millis(20), Duration::from_secs(15));
    let mut last_tick = Utc::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let now = Utc::now();
        let due = match due_marketplaces(&pool, hour, last_tick, now).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the reconciliation schedule");
                continue;
            }
        };
        last_tick = now;
        if let Err(error) = crate::admin::oversold::record(&pool).await {
            tracing::warn!(%error, "cannot count oversold units");
        }
        for (code, slot) in due {
            match run_slot(&pool, &code, false, Trigger::Schedule, Some(slot)).await {
                Ok(summary) if !summary.skipped => {
                    metrics::counter!("stockfleet_reconciliation_rows_total", "marketplace" => code)
                        .increment(summary.enqueued as u64);
                }
                Ok(_) => {}
                Err(error) => tracing::error!(marketplace = %code, %error, "reconciliation failed"),
            }
        }
    }
}

/// Marketplaces whose slot fell in `(after, now]`, with that slot.
async fn due_marketplaces(
    pool: &PgPool,
    hour: Duration,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    let rows = sqlx::query(
        "SELECT code, sync_interval_hours, sync_offset_minutes FROM marketplaces
         WHERE sync_enabled ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let interval = hour * row.get::<i32, _>("sync_interval_hours").max(1) as u32;
            let offset = hour * row.get::<i32, _>("sync_offset_minutes").max(0) as u32 / 60;
            let slot = latest_slot(now, interval, offset);
            (slot > after).then(|| (row.get("code"), slot))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn slots_follow_the_interval_and_offset() {
        let six_hours = Duration::from_secs(6 * 3600);
        let two_hours = Duration::from_secs(2 * 3600);
        assert_eq!(
            latest_slot(at("2026-11-22T05:59:00Z"), six_hours, Duration::ZERO),
            at("2026-11-22T00:00:00Z")
        );
        assert_eq!(
            latest_slot(at("2026-11-22T05:59:00Z"), six_hours, two_hours),
            at("2026-11-22T02:00:00Z")
        );
        assert_eq!(
            latest_slot(at("2026-11-22T01:59:00Z"), six_hours, two_hours),
            at("2026-11-21T20:00:00Z")
        );
        assert_eq!(
            latest_slot(at("2026-11-22T08:00:00Z"), six_hours, two_hours),
            at("2026-11-22T08:00:00Z")
        );
    }

    #[test]
    fn different_offsets_never_share_a_slot() {
        let interval = Duration::from_secs(6 * 3600);
        let mut now = at("2026-11-22T00:00:00Z");
        for _ in 0..(48 * 4) {
            let slots: Vec<_> = [0u64, 120, 240]
                .iter()
                .map(|minutes| latest_slot(now, interval, Duration::from_secs(minutes * 60)))
                .collect();
            assert_ne!(slots[0], slots[1]);
            assert_ne!(slots[1], slots[2]);
            assert_ne!(slots[0], slots[2]);
            now += chrono::Duration::minutes(15);
        }
    }
}
