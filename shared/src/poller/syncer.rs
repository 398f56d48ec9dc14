//! The adapters a poller process builds per marketplace, and a run through them.

use super::kinds::SyncType;
use super::outcome::{RunOptions, RunOutcome, RunSummary};
use super::reread::BuiltAdapter;
use super::run::run;
use crate::marketplace::directory::{self, MarketplaceRow};
use crate::marketplace::{self, Budget, Marketplace, MarketplaceError};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Runs syncs for one process: adapters per marketplace, built on first use
/// from the marketplaces table, and a bound on concurrent runs. Each run holds
/// one pooled connection for its lock and uses one more for its writes, so at
/// most half the pool's connections run at once and runs never starve each other.
pub struct Syncer {
    pub(super) pool: PgPool,
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
