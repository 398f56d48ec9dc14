//! One sync run: exclusive across the fleet by advisory lock, recorded in
//! `sync_runs`, succeeded, partial (cut by the budget) or failed (the
//! outcomes are in [`super::outcome`]).

use super::fetch::fetch_all;
use super::kinds::SyncType;
use super::outcome::{Finished, RunOptions, RunOutcome, RunSummary};
use crate::marketplace::Marketplace;
use crate::marketplace::budget::{self, Priority};
use crate::marketplace::directory::MarketplaceRow;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use std::time::Instant;

/// Runs one sync of `sync_type` on `marketplace` if no other run of it is in
/// progress anywhere. `progress` sees the summary after each page.
#[tracing::instrument(name = "sync", skip_all, fields(
    otel.name = format!("sync {} {}", marketplace.code, sync_type.as_str()),
    marketplace = %marketplace.code,
    sync_type = sync_type.as_str(),
    trace_id = tracing::field::Empty,
))]
pub async fn run(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    adapter: &dyn Marketplace,
    sync_type: SyncType,
    options: &RunOptions,
    progress: &(dyn Fn(&RunSummary) + Sync),
) -> anyhow::Result<RunOutcome> {
    crate::telemetry::record_trace_id(&tracing::Span::current());
    // The transaction-scoped advisory lock is the run's exclusivity: it dies
    // with the transaction, so a crashed or killed run leaves no lock behind.
    let mut guard = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
        .bind(marketplace.id)
        .bind(sync_type.lock_key())
        .fetch_one(&mut *guard)
        .await?;
    if !locked {
        return Ok(RunOutcome::Busy);
    }
    // Runs left `running` by a dead process can be closed now: we hold the lock.
    sqlx::query(
        "UPDATE sync_runs SET status = 'failed', finished_at = now(),
                error_text = 'the run died before finishing (process killed or crashed)'
         WHERE marketplace_id = $1 AND sync_type = $2 AND status = 'running'",
    )
    .bind(marketplace.id)
    .bind(sync_type.as_str())
    .execute(pool)
    .await?;
    if let Some(after) = options.satisfied_after {
        let satisfied: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sync_runs WHERE marketplace_id = $1 AND sync_type = $2
                            AND status = 'succeeded' AND started_at >= $3)",
        )
        .bind(marketplace.id)
        .bind(sync_type.as_str())
        .bind(after)
        .fetch_one(pool)
        .await?;
        if satisfied {
            return Ok(RunOutcome::Satisfied);
        }
    }

    let started = Instant::now();
    let row = sqlx::query(
        "INSERT INTO sync_runs (marketplace_id, sync_type, trigger) VALUES ($1, $2, $3)
         RETURNING id, started_at",
    )
    .bind(marketplace.id)
    .bind(sync_type.as_str())
    .bind(options.trigger.as_str())
    .fetch_one(pool)
    .await?;
    let mut summary = RunSummary {
        run_id: row.get("id"),
        ..RunSummary::default()
    };
    let started_at: DateTime<Utc> = row.get("started_at");
    // New-orders polls are the sale's way in: high priority. The other syncs
    // run on their schedules at low priority, behind order commands and polls.
    let priority = match sync_type {
        SyncType::New => Priority::High,
        SyncType::Modified | SyncType::Care | SyncType::Incomplete => Priority::Low,
    };
    let fetch = fetch_all(
        pool,
        marketplace,
        adapter,
        sync_type,
        options,
        started_at,
        &mut summary,
        progress,
    );
    let fetched = budget::with_priority(priority, fetch).await;
    match &fetched {
        Err(error) => {
            summary.errors += 1;
            summary.error = Some(error.clone());
        }
        Ok(Finished::Partial(reason)) => summary.error = Some(reason.clone()),
        Ok(Finished::Complete) => {}
    }
    let status = Finished::status(&fetched);
    sqlx::query(
        "UPDATE sync_runs SET status = $2, finished_at = now(), fetched = $3, created = $4,
                updated = $5, errors = $6, duration_ms = $7, error_text = $8
         WHERE id = $1",
    )
    .bind(summary.run_id)
    .bind(status)
    .bind(summary.fetched as i32)
    .bind(summary.created as i32)
    .bind(summary.updated as i32)
    .bind(summary.errors as i32)
    .bind(started.elapsed().as_millis() as i64)
    .bind(&summary.error)
    .execute(pool)
    .await?;
    guard.commit().await?;
    metrics::counter!("stockfleet_sync_runs_total", "marketplace" => marketplace.code.clone(),
        "type" => sync_type.as_str(), "status" => status)
    .increment(1);
    Ok(match fetched {
        Ok(Finished::Complete) => RunOutcome::Succeeded(summary),
        Ok(Finished::Partial(_)) => RunOutcome::Partial(summary),
        Err(_) => RunOutcome::Failed(summary),
    })
}
