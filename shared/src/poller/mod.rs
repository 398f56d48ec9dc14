//! The poller: one order sync for every marketplace (new, modified, care,
//! incomplete), on each marketplace's schedule or on request, never two runs of
//! one (marketplace, type) at once across every poller instance, every run
//! recorded in `sync_runs`.

mod commands;
mod fetch;
mod kinds;
mod outcome;
mod page;
mod reread;
mod run;
mod schedule;
pub mod store;
mod syncer;

pub use commands::SyncCommandHandler;
pub use kinds::{SyncKind, SyncType};
pub use outcome::{RunOptions, RunOutcome, RunSummary, Trigger};
pub use run::run;
pub use schedule::schedule;
pub use syncer::Syncer;

use crate::bus::{self, QueueSpec};
use crate::marketplace::directory;
use crate::worker::Worker;
use std::sync::Arc;

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
