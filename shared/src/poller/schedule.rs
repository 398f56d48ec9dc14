//! The schedule: every marketplace's syncs when they are due.

use super::kinds::SyncType;
use super::outcome::{RunOptions, RunOutcome, Trigger};
use super::syncer::Syncer;
use crate::domain::poll_pace::{self, PollPace, PollState};
use crate::marketplace::directory::{self, MarketplaceRow};
use sqlx::{PgPool, Row};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the schedule looks for due syncs: well under the fastest
/// new-orders interval (1 s), so a poll due after 1 s starts then, not at
/// the next whole second (a 1 s tick made it every 1.4 s on average).
const TICK: Duration = Duration::from_millis(250);

/// Starts every due sync of every enabled marketplace, each in its own task,
/// until `shutdown`; then waits for runs in progress to stop at a page boundary.
pub async fn schedule(syncer: Arc<Syncer>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
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

/// Enabled marketplaces' syncs that are due: new-orders polls by their pace
/// ([`PollPace`]: the budget's headroom, between the fastest and the slowest
/// interval), the others when their last run started longer ago than their interval.
async fn due_syncs(pool: &PgPool) -> sqlx::Result<Vec<(MarketplaceRow, SyncType)>> {
    let marketplaces = directory::load_all(pool).await?;
    let types: Vec<&str> = SyncType::ALL.iter().map(|t| t.as_str()).collect();
    // The latest few runs of each (marketplace, type) through the
    // `sync_runs_latest` index, and the orders budget's headroom as the
    // next lease would find it (refilled to now, without taking anything).
    let rows = sqlx::query(
        "SELECT m.id AS marketplace_id, t.sync_type, r.age, r.statuses,
                COALESCE((b.blocked_until IS NULL OR b.blocked_until <= clock_timestamp())
                    AND LEAST(GREATEST(1.0, 0.1 * b.requests),
                              b.tokens + 0.75 * b.requests / b.window_seconds
                                  * GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at)))
                        >= 0.5 * GREATEST(1.0, 0.1 * b.requests), true) AS headroom
         FROM marketplaces m
         CROSS JOIN unnest($1::text[]) AS t(sync_type)
         CROSS JOIN LATERAL (
             SELECT EXTRACT(EPOCH FROM now() - max(started_at))::float8 AS age,
                    array_agg(status ORDER BY started_at DESC) AS statuses
             FROM (SELECT status, started_at FROM sync_runs s
                   WHERE s.marketplace_id = m.id AND s.sync_type = t.sync_type
                   ORDER BY started_at DESC LIMIT 8) latest
         ) r
         LEFT JOIN request_budgets b ON b.marketplace_id = m.id AND b.class = 'orders'
         WHERE m.sync_enabled",
    )
    .bind(&types)
    .fetch_all(pool)
    .await?;
    let mut states: HashMap<(i32, String), PollState> = HashMap::new();
    for row in rows {
        let statuses: Vec<String> = row
            .get::<Option<Vec<String>>, _>("statuses")
            .unwrap_or_default();
        let age: Option<f64> = row.get("age");
        states.insert(
            (row.get("marketplace_id"), row.get("sync_type")),
            PollState {
                age: age.map(|age| Duration::from_secs_f64(age.max(0.0))),
                setbacks: poll_pace::setbacks(statuses.iter().map(String::as_str)),
                headroom: row.get("headroom"),
            },
        );
    }
    let mut due = Vec::new();
    for marketplace in marketplaces.into_iter().filter(|m| m.sync_enabled) {
        for sync_type in SyncType::ALL {
            let Some(state) = states.get(&(marketplace.id, sync_type.as_str().to_owned())) else {
                continue;
            };
            let seconds = |s: i32| Duration::from_secs(s.max(1) as u64);
            let is_due = match sync_type {
                SyncType::New => PollPace::from_seconds(
                    marketplace.order_poll_fastest_seconds,
                    marketplace.order_poll_interval_seconds,
                )
                .due(*state),
                SyncType::Modified => {
                    older_than(state, seconds(marketplace.order_poll_interval_seconds))
                }
                SyncType::Care => {
                    older_than(state, seconds(marketplace.care_poll_interval_seconds))
                }
                SyncType::Incomplete => {
                    older_than(state, seconds(marketplace.incomplete_poll_interval_seconds))
                }
            };
            if is_due {
                due.push((marketplace.clone(), sync_type));
            }
        }
    }
    Ok(due)
}

/// A sync on a fixed interval: due when none ran or the last started `interval` ago.
fn older_than(state: &PollState, interval: Duration) -> bool {
    state.age.is_none_or(|age| age >= interval)
}
