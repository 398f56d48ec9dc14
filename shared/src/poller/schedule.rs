//! The schedule: every marketplace's syncs when they are due.

use super::kinds::SyncType;
use super::outcome::{RunOptions, RunOutcome, Trigger};
use super::syncer::Syncer;
use crate::marketplace::directory::{self, MarketplaceRow};
use sqlx::{PgPool, Row};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Starts every due sync of every enabled marketplace, each in its own task,
/// until `shutdown`; then waits for runs in progress to stop at a page boundary.
pub async fn schedule(syncer: Arc<Syncer>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut runs = tokio::task::JoinSet::new();
    let running: Arc<Mutex<HashSet<(i32, SyncType)>>> = Arc::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Some(_) = runs.join_next(), if !runs.is_empty() => continue,
        }
        let due = match due_syncs(&syncer.pool).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the sync schedule; retrying next tick");
                continue;
            }
        };
        for (marketplace, sync_type) in due {
            let key = (marketplace.id, sync_type);
            if !running.lock().expect("running set").insert(key) {
                continue;
            }
            let (syncer, running, shutdown) = (syncer.clone(), running.clone(), shutdown.clone());
            runs.spawn(async move {
                let options = RunOptions::new(Trigger::Schedule, shutdown);
                let outcome = syncer.run(&marketplace, sync_type, &options, &|_| {}).await;
                log_outcome(&marketplace.code, sync_type, &outcome);
                running.lock().expect("running set").remove(&key);
            });
        }
    }
    while runs.join_next().await.is_some() {}
}

pub(super) fn log_outcome(code: &str, sync_type: SyncType, outcome: &anyhow::Result<RunOutcome>) {
    match outcome {
        Ok(RunOutcome::Succeeded(s)) => {
            tracing::info!(marketplace = code, %sync_type, fetched = s.fetched,
            created = s.created, updated = s.updated, events = s.events, "sync succeeded")
        }
        Ok(RunOutcome::Partial(s)) => tracing::info!(marketplace = code, %sync_type,
            fetched = s.fetched, reason = s.error.as_deref().unwrap_or_default(),
            "sync partly done; the next run catches up"),
        Ok(RunOutcome::Failed(s)) => tracing::warn!(marketplace = code, %sync_type,
            error = s.error.as_deref().unwrap_or_default(), "sync failed"),
        Ok(RunOutcome::Busy | RunOutcome::Satisfied) => {
            tracing::debug!(marketplace = code, %sync_type, "sync skipped")
        }
        Err(error) => {
            tracing::error!(marketplace = code, %sync_type, error = format!("{error:#}"), "sync could not run")
        }
    }
}

/// Enabled marketplaces' syncs whose last run started longer ago than their interval.
async fn due_syncs(pool: &PgPool) -> sqlx::Result<Vec<(MarketplaceRow, SyncType)>> {
    let marketplaces = directory::load_all(pool).await?;
    let latest: HashMap<(i32, String), f64> = sqlx::query(
        "SELECT DISTINCT ON (marketplace_id, sync_type) marketplace_id, sync_type,
                EXTRACT(EPOCH FROM now() - started_at)::float8 AS age
         FROM sync_runs WHERE sync_type <> 'stock'
         ORDER BY marketplace_id, sync_type, started_at DESC",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| {
        (
            (row.get("marketplace_id"), row.get("sync_type")),
            row.get("age"),
        )
    })
    .collect();
    let mut due = Vec::new();
    for marketplace in marketplaces.into_iter().filter(|m| m.sync_enabled) {
        for sync_type in SyncType::ALL {
            let interval = match sync_type {
                SyncType::New | SyncType::Modified => marketplace.order_poll_interval_seconds,
                SyncType::Care => marketplace.care_poll_interval_seconds,
                SyncType::Incomplete => marketplace.incomplete_poll_interval_seconds,
            };
            let age = latest.get(&(marketplace.id, sync_type.as_str().to_owned()));
            if age.is_none_or(|age| *age >= f64::from(interval)) {
                due.push((marketplace.clone(), sync_type));
            }
        }
    }
    Ok(due)
}
