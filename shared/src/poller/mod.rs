//! The poller: one order sync for every marketplace (new, modified, care,
//! incomplete), on each marketplace's schedule or on request, never two runs of
//! one (marketplace, type) at once across every poller instance, every run
//! recorded in `sync_runs`.

pub mod store;

use crate::bus::{self, Handler, HandlerError, Incoming, QueueSpec};
use crate::events::SyncRequest;
use crate::marketplace::budget::{self, Priority};
use crate::marketplace::directory::{self, MarketplaceRow};
use crate::marketplace::{self, Budget, Marketplace, MarketplaceError, OrderQuery, PageToken};
use crate::worker::Worker;
use chrono::{DateTime, Duration as Span, Utc};
use sqlx::{PgPool, Row};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The order syncs the poller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncType {
    New,
    Modified,
    Care,
    Incomplete,
}

impl SyncType {
    pub const ALL: [SyncType; 4] = [
        SyncType::New,
        SyncType::Modified,
        SyncType::Care,
        SyncType::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncType::New => "new",
            SyncType::Modified => "modified",
            SyncType::Care => "care",
            SyncType::Incomplete => "incomplete",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        SyncType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Second key of the run's PostgreSQL advisory lock (the first is the marketplace id).
    fn lock_key(self) -> i32 {
        match self {
            SyncType::New => 1,
            SyncType::Modified => 2,
            SyncType::Care => 3,
            SyncType::Incomplete => 4,
        }
    }
}

impl fmt::Display for SyncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sync request (`stockfleet sync`, `sync.<mp>.<type>`, the API) names:
/// one of the poller's order syncs, or the publisher's stock reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Orders(SyncType),
    Stock,
}

impl SyncKind {
    /// The names [`SyncKind::select`] takes, for error messages.
    pub const CHOICES: &str = "new, modified, care, incomplete, stock or all";
    const STOCK: &str = "stock";

    pub fn name(self) -> &'static str {
        match self {
            SyncKind::Orders(sync_type) => sync_type.as_str(),
            SyncKind::Stock => Self::STOCK,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            Self::STOCK => Some(SyncKind::Stock),
            name => SyncType::parse(name).map(SyncKind::Orders),
        }
    }

    /// One kind by name, or every kind for `all`.
    pub fn select(name: &str) -> Option<Vec<Self>> {
        match name {
            "all" => Some(
                SyncType::ALL
                    .into_iter()
                    .map(SyncKind::Orders)
                    .chain([SyncKind::Stock])
                    .collect(),
            ),
            name => Self::parse(name).map(|kind| vec![kind]),
        }
    }
}

/// Why a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    /// `stockfleet sync`, inline.
    Manual,
    /// A `sync.<mp>.<type>` command on the bus.
    Fleet,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Fleet => "fleet",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub trigger: Trigger,
    /// Modified and care syncs: read from this many days back instead of the cursor.
    pub days_back: Option<u32>,
    /// Skip the run when a successful run of the same type started after this
    /// time (the request it answers is already satisfied).
    pub satisfied_after: Option<DateTime<Utc>>,
    /// Stop between pages when cancelled.
    pub shutdown: CancellationToken,
}

impl RunOptions {
    pub fn new(trigger: Trigger, shutdown: CancellationToken) -> Self {
        Self {
            trigger,
            days_back: None,
            satisfied_after: None,
            shutdown,
        }
    }
}

/// The record of one run, as in `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: i64,
    pub fetched: u32,
    pub created: u32,
    pub updated: u32,
    pub events: u32,
    pub errors: u32,
    pub pages: u32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded(RunSummary),
    /// Cut short by the marketplace's rate limit or the request budget: what
    /// was fetched is stored, `error` says where it stopped, the next run
    /// catches up.
    Partial(RunSummary),
    Failed(RunSummary),
    /// Another run of this (marketplace, type) is under way.
    Busy,
    /// A run since the request already covered it.
    Satisfied,
}

/// How long the first modified or care sync looks back when no cursor exists.
const FIRST_LOOKBACK: Span = Span::days(1);
/// Re-reads of open orders stop after half the poll interval, and never
/// before this: the rest, least recently checked first, wait for the next run.
const MIN_REREAD_TIME: Duration = Duration::from_secs(10);

/// How a run's fetching ended when nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finished {
    Complete,
    /// Stopped early by the rate limit or the budget: why, for `error_text`.
    Partial(String),
}

impl Finished {
    fn status(result: &Result<Finished, String>) -> &'static str {
        match result {
            Ok(Finished::Complete) => "succeeded",
            Ok(Finished::Partial(_)) => "partial",
            Err(_) => "failed",
        }
    }
}

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
    // New-orders polls (and the modified walk) before care and incomplete syncs.
    let priority = match sync_type {
        SyncType::New | SyncType::Modified => Priority::High,
        SyncType::Care | SyncType::Incomplete => Priority::Low,
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

/// Fetches every page of the run and stores it; the error text on failure.
/// A walk cut by the rate limit keeps the cursor where it was, so the next
/// run reads the same span again.
#[allow(clippy::too_many_arguments)]
async fn fetch_all(
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
            return Err("stopped by shutdown before the last page".into());
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
            &seen,
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

/// A list call that gave up: a rate limit cuts the run (partial), any other
/// error fails it.
fn cut(error: MarketplaceError, summary: &RunSummary) -> Result<Finished, String> {
    match error {
        MarketplaceError::RateLimited { .. } => Ok(Finished::Partial(format!(
            "cut by the rate limit after {} pages: {error}",
            summary.pages
        ))),
        error => Err(describe(&error)),
    }
}

fn describe(error: &MarketplaceError) -> String {
    format!("{} error: {error}", error.kind())
}

async fn store_page(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    orders: &[marketplace::MarketplaceOrder],
    summary: &mut RunSummary,
) -> Result<(), String> {
    summary.fetched += orders.len() as u32;
    let counts = store::store_orders(pool, marketplace, orders)
        .await
        .map_err(|e| format!("storing orders: {e}"))?;
    summary.created += counts.created;
    summary.updated += counts.updated;
    summary.events += counts.events;
    // Left out, not lost: each is logged with its field, and counted here.
    summary.errors += counts.refused;
    Ok(())
}

/// Where a modified or care sync starts: the cursor minus the overlap window,
/// or `days_back` when asked.
async fn since(
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

/// Orders we hold as open that the open-orders walk did not return have left
/// the open states: read each one, once, to learn where it went. The least
/// recently checked go first; the re-reads stop at a rate limit or after
/// half the poll interval (the run is then partial), so a short budget
/// spreads them over runs.
async fn reread_open_orders(
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
async fn with_retries<T, F, Fut>(call: F) -> Result<T, MarketplaceError>
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

type BuiltAdapter = (MarketplaceRow, Arc<dyn Marketplace>);

/// Runs syncs for one process: adapters per marketplace, built on first use
/// from the marketplaces table, and a bound on concurrent runs. Each run holds
/// one pooled connection for its lock and uses one more for its writes, so at
/// most half the pool's connections run at once and runs never starve each other.
pub struct Syncer {
    pool: PgPool,
    /// Per code: the row an adapter was built for, and the adapter.
    adapters: Mutex<HashMap<String, BuiltAdapter>>,
    permits: tokio::sync::Semaphore,
    /// Who takes the request budget's permits (`poller`, `cli`), for metrics.
    caller: &'static str,
}

impl Syncer {
    pub fn new(pool: PgPool, caller: &'static str) -> Self {
        let concurrent = (pool.options().get_max_connections() as usize / 2).max(1);
        Self {
            caller,
            pool,
            adapters: Mutex::default(),
            permits: tokio::sync::Semaphore::new(concurrent),
        }
    }

    fn adapter(&self, row: &MarketplaceRow) -> Result<Arc<dyn Marketplace>, MarketplaceError> {
        let mut built = self.adapters.lock().expect("adapters lock");
        if let Some((built_for, adapter)) = built.get(&row.code)
            && built_for.same_connection(row)
        {
            return Ok(adapter.clone());
        }
        // First use, or the row changed (`stockfleet marketplace set`): rebuild.
        let mut config = directory::adapter_config(row)?;
        config.budget = Some(Arc::new(Budget::new(
            self.pool.clone(),
            row.id,
            &row.code,
            self.caller,
        )));
        let adapter = marketplace::connect(config)?;
        built.insert(row.code.clone(), (row.clone(), adapter.clone()));
        Ok(adapter)
    }

    /// Runs a sync; records a failed run when the adapter cannot even be built
    /// (missing credential, unknown kind), so the failure shows in `sync_runs`.
    pub async fn run(
        &self,
        marketplace: &MarketplaceRow,
        sync_type: SyncType,
        options: &RunOptions,
        progress: &(dyn Fn(&RunSummary) + Sync),
    ) -> anyhow::Result<RunOutcome> {
        let _permit = self.permits.acquire().await?;
        let pool = &self.pool;
        match self.adapter(marketplace) {
            Ok(adapter) => {
                run(
                    pool,
                    marketplace,
                    adapter.as_ref(),
                    sync_type,
                    options,
                    progress,
                )
                .await
            }
            Err(error) => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO sync_runs (marketplace_id, sync_type, trigger, status, finished_at, errors, duration_ms, error_text)
                     VALUES ($1, $2, $3, 'failed', now(), 1, 0, $4) RETURNING id",
                )
                .bind(marketplace.id)
                .bind(sync_type.as_str())
                .bind(options.trigger.as_str())
                .bind(error.to_string())
                .fetch_one(pool)
                .await?;
                Ok(RunOutcome::Failed(RunSummary {
                    run_id: id,
                    errors: 1,
                    error: Some(error.to_string()),
                    ..RunSummary::default()
                }))
            }
        }
    }
}

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

fn log_outcome(code: &str, sync_type: SyncType, outcome: &anyhow::Result<RunOutcome>) {
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

/// `sync.<mp>.<type>` commands: run the sync unless a run since the request covered it.
pub struct SyncCommandHandler {
    syncer: Arc<Syncer>,
    marketplaces: directory::MarketplaceDirectory,
    shutdown: CancellationToken,
}

impl SyncCommandHandler {
    async fn handle_one(&self, incoming: &Incoming) -> Result<(), HandlerError> {
        let envelope = &incoming.envelope;
        let request: SyncRequest = envelope
            .payload()
            .map_err(|e| HandlerError::Permanent(format!("malformed sync request: {e}")))?;
        if let Some(days) = request.days_back {
            crate::domain::input::days_back("days_back", days)
                .map_err(|invalid| HandlerError::Permanent(invalid.to_string()))?;
        }
        let kind = SyncKind::parse(&request.sync_type).ok_or_else(|| {
            HandlerError::Permanent(format!("unknown sync type {:?}", request.sync_type))
        })?;
        let sync_type = match kind {
            SyncKind::Orders(sync_type) => sync_type,
            SyncKind::Stock => {
                return crate::reconcile::run(
                    &self.syncer.pool,
                    &envelope.marketplace,
                    request.force,
                    Trigger::Fleet,
                )
                .await
                .map(drop)
                .map_err(|e| HandlerError::Transient(e.to_string()));
            }
        };
        let marketplace = self
            .marketplaces
            .get(&envelope.marketplace)
            .await?
            .ok_or_else(|| {
                HandlerError::Permanent(format!("unknown marketplace {:?}", envelope.marketplace))
            })?;
        let mut options = RunOptions::new(Trigger::Fleet, self.shutdown.clone());
        options.days_back = request.days_back;
        if !request.force {
            options.satisfied_after = Some(envelope.occurred_at);
        }
        let outcome = self
            .syncer
            .run(&marketplace, sync_type, &options, &|_| {})
            .await
            .map_err(|e| HandlerError::Transient(format!("{e:#}")))?;
        log_outcome(&marketplace.code, sync_type, &Ok(outcome.clone()));
        match outcome {
            // A partial run stored what it could; the schedule catches up.
            RunOutcome::Succeeded(_) | RunOutcome::Partial(_) | RunOutcome::Satisfied => Ok(()),
            // Retried later: the run under way may have started before the request.
            RunOutcome::Busy => Err(HandlerError::Transient(format!(
                "a {sync_type} sync of {} is under way",
                marketplace.code
            ))),
            RunOutcome::Failed(summary) => Err(HandlerError::Transient(
                summary.error.unwrap_or_else(|| "the sync failed".into()),
            )),
        }
    }
}

impl Handler for SyncCommandHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        futures::future::join_all(batch.iter().map(|incoming| self.handle_one(incoming))).await
    }
}

/// The sync schedule's name among the poller's tasks.
const SCHEDULER_TASK: &str = "sync schedule";

/// Runs the poller on a started worker: the scheduler and the command
/// consumer side by side until shutdown (a scheduler that fails stops it).
pub async fn run_worker(worker: Worker) -> anyhow::Result<()> {
    let syncer = Arc::new(Syncer::new(worker.db.clone(), "poller"));
    worker.tasks.ready(SCHEDULER_TASK);
    let scheduler = worker.tasks.spawn(SCHEDULER_TASK, {
        let (syncer, shutdown) = (syncer.clone(), worker.shutdown.clone());
        async move {
            schedule(syncer, shutdown).await;
            Ok(())
        }
    });
    let handler = SyncCommandHandler {
        syncer,
        marketplaces: directory::MarketplaceDirectory::new(worker.db.clone()),
        shutdown: worker.shutdown.clone(),
    };
    let consumed = bus::consumer::run(
        worker.bus.clone(),
        QueueSpec::poller(),
        worker.settings.consumer.clone(),
        Arc::new(handler),
        worker.tasks.clone(),
        worker.shutdown.clone(),
    )
    .await;
    scheduler.await.ok();
    worker.stop(consumed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_requests_name_one_kind_or_all() {
        assert_eq!(
            SyncKind::select("new"),
            Some(vec![SyncKind::Orders(SyncType::New)])
        );
        assert_eq!(SyncKind::select("stock"), Some(vec![SyncKind::Stock]));
        let all = SyncKind::select("all").unwrap();
        let names: Vec<&str> = all.iter().map(|kind| kind.name()).collect();
        assert_eq!(names, ["new", "modified", "care", "incomplete", "stock"]);
        assert!(
            all.iter()
                .all(|kind| SyncKind::parse(kind.name()) == Some(*kind))
        );
        assert_eq!(SyncKind::select("weekly"), None);
    }
}
