//! The publisher: buffered quantities and order commands out to one
//! marketplace per queue (`<prefix>.publisher.<mp>`).
//!
//! - **Coalescing.** A `stock.changed` message only says "this row changed".
//!   At send time the handler reads the row's *current* state and pushes
//!   `buffered(available)` once per row per batch; a later message for a row
//!   already showing that quantity costs no call (`last_api_quantity`). Of the
//!   messages of one row in a batch, one carries the outcome (retry or dead
//!   letter) and the others are acknowledged: the one left re-reads the row
//!   when it is handled again, so it stands for all of them.
//! - **Unknown stock** (never counted) is never pushed (design §4).
//! - **Oversell guard** ([`crate::domain::push_guard`]). A marketplace that
//!   decrements its own quantity when an order is placed shows what we last
//!   pushed minus the orders placed after it landed ([`shown_estimates`]); a push above that estimate would
//!   give sold units back. A push at or below it always goes; one above it
//!   goes only when the latest new-orders poll started after the last push,
//!   is fresh, brought no order of the row and left none unlocked. Otherwise
//!   the handler asks the poller for a poll (`sync.<mp>.new` through the
//!   outbox, at most every [`POLL_REQUEST_INTERVAL`]) and defers the
//!   message: it comes back through the shortest retry queue without
//!   counting an attempt, so a late poll never dead-letters it.
//! - **Rate limit.** Every HTTP call takes a permit from the fleet's request
//!   budget of its endpoint class ([`Budget`](crate::marketplace::Budget), shared with the pollers); a
//!   429 blocks the class for its Retry-After. Order commands go first in a
//!   batch, then decreases, then increases: commands are the orders class,
//!   pushes the listings class, and a decrease is high priority while
//!   increases and reconciliation reads are low ([`Priority`](crate::marketplace::budget::Priority)). A
//!   marketplace that also caps quantity updates
//!   (`marketplaces.quantity_update_*`, Back Market's ~2,000 an hour) has a
//!   [`RateGate`](crate::marketplace::RateGate) in front of each quantity write; each publisher queue has a
//!   single active consumer, so one gate holds that cap.
//! - **Failures.** Transient errors are retried in process ([`crate::retry`]);
//!   if they persist the message goes to the retry queues, then the
//!   dead-letter queue. After one call gave up transiently, the rest of the
//!   batch is not tried (the marketplace is down or throttling): those
//!   messages go to the retry queue at once. Permanent errors (unknown
//!   listing, another 4xx) dead-letter at once with the marketplace's reason.
//! - **Reconciliation** messages (`change_type = "reconciliation"`, see
//!   [`crate::reconcile`]) first read the marketplace's quantity; a
//!   difference from what we last pushed is recorded as a `reconciliation`
//!   history row, then the row is pushed like any other.

mod batch;
mod commands;
mod commit;
mod consumers;
mod estimate;
mod handler;
mod push;
mod row_lock;
mod rows;

pub use estimate::shown_estimates;
pub use handler::PublisherHandler;

use crate::marketplace::directory::{self, MarketplaceRow};
use crate::marketplace::{MarketplaceConfig, MarketplaceError};
use crate::supervise::TaskState;
use consumers::Consumers;
use std::sync::Arc;
use std::time::Duration;

/// At most one poll request per marketplace in this interval while increases wait.
pub const POLL_REQUEST_INTERVAL: Duration = Duration::from_secs(10);

/// The publisher's name among the tasks until it has read the marketplaces table.
const MARKETPLACES_TASK: &str = "publisher marketplaces";

/// How soon a marketplace whose consumers could not be started is tried again.
const FOLLOW_RETRY: Duration = Duration::from_secs(2);

/// Calls of one class under way at once per marketplace: enough to keep a
/// budget of tens of requests a second busy over a round trip of a few
/// hundred milliseconds, few enough for a small database pool.
pub const DEFAULT_CALLS_IN_FLIGHT: usize = 8;

/// A stock queue's batch: a backlog's messages of one row coalesce into one
/// push only within a batch, and a batch's pushes wait for the listings
/// budget (Back Market: 1.5 a second). With batches of 100, a backlog of a
/// few thousand messages over 300 rows was pushed row by row again in every
/// batch; a batch of 1,000 takes each row of such a backlog once. Order
/// commands have their own queue, so a long stock batch holds none up.
pub const DEFAULT_STOCK_BATCH: usize = 1000;

/// A stock queue's batches under way at once. One batch at a time, a batch
/// whose increases waited for low-priority permits (5 s each at most) held
/// every decrease behind it: at 1 order/s on pooled SKUs, Back Market's
/// decreases waited 7 s (p50) behind the increases that pooling caused,
/// with its listings budget two-thirds unused. Rows stay in order across
/// batches ([`row_lock`]). Increases deferred for want of permits come back
/// one by one, each its own batch for up to 5 s: at eight, such batches
/// took every place and the decreases waited again.
pub const DEFAULT_STOCK_BATCHES_IN_FLIGHT: usize = 32;

/// Builds a marketplace's adapter configuration from its row (production:
/// [`directory::adapter_config`], credential from the environment).
pub type Configure =
    Arc<dyn Fn(&MarketplaceRow) -> Result<MarketplaceConfig, MarketplaceError> + Send + Sync>;

pub struct Options {
    pub configure: Configure,
    /// The length of one hour of the reconciliation schedule (1 h; shorter for demos and tests).
    pub schedule_hour: Duration,
    /// How often the marketplaces table is re-read (`MARKETPLACE_REFRESH_SECONDS`, 30 s).
    pub refresh: Duration,
    /// Calls of one class a marketplace's batch has under way at once
    /// (`PUBLISHER_CALLS_IN_FLIGHT`, 8).
    pub calls_in_flight: usize,
    /// Deliveries of a stock queue worked as one batch at most
    /// (`PUBLISHER_STOCK_BATCH`, 1,000; never fewer than `BATCH_SIZE`).
    pub stock_batch: usize,
    /// Stock batches worked at once per marketplace
    /// (`PUBLISHER_STOCK_BATCHES_IN_FLIGHT`, 32).
    pub stock_batches_in_flight: usize,
    /// When a marketplace that keeps failing is paused, and how it is probed.
    pub outage: crate::outage::OutageOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            configure: Arc::new(directory::adapter_config),
            schedule_hour: Duration::from_secs(3600),
            refresh: Duration::from_secs(30),
            calls_in_flight: DEFAULT_CALLS_IN_FLIGHT,
            stock_batch: DEFAULT_STOCK_BATCH,
            stock_batches_in_flight: DEFAULT_STOCK_BATCHES_IN_FLIGHT,
            outage: crate::outage::OutageOptions::default(),
        }
    }
}

/// Runs the publisher on a started worker until shutdown: one consumer per
/// marketplace queue, plus the reconciliation schedule. The marketplaces
/// table is re-read every `options.refresh`: a marketplace added is served,
/// one whose address, credential or rate limit changed gets a new consumer, one removed
/// is no longer served, all without a restart.
pub async fn run(worker: crate::worker::Worker, options: Options) -> anyhow::Result<()> {
    worker.tasks.ready(crate::reconcile::SCHEDULE_TASK);
    let schedule = worker.tasks.spawn(crate::reconcile::SCHEDULE_TASK, {
        let (db, hour, shutdown) = (
            worker.db.clone(),
            options.schedule_hour,
            worker.shutdown.clone(),
        );
        async move {
            crate::reconcile::schedule(db, hour, shutdown).await;
            Ok(())
        }
    });
    worker.tasks.ready(crate::sold_out::CONFIRM_TASK);
    let confirmations = worker.tasks.spawn(crate::sold_out::CONFIRM_TASK, {
        let (db, shutdown) = (worker.db.clone(), worker.shutdown.clone());
        async move {
            crate::sold_out::confirm(db, shutdown).await;
            Ok(())
        }
    });
    // Not ready until the marketplaces table has been read once: before
    // that, no marketplace's consumers are registered to hold it back.
    worker.tasks.set(MARKETPLACES_TASK, TaskState::Starting);
    let mut consumers = Consumers::default();
    let mut refresh = tokio::time::interval(options.refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    loop {
        tokio::select! {
            _ = worker.shutdown.cancelled() => break,
            _ = refresh.tick() => {
                match directory::load_all(&worker.db).await {
                    Ok(rows) => {
                        if !consumers.follow(&worker, &options, rows).await {
                            refresh.reset_after(FOLLOW_RETRY.min(options.refresh));
                        }
                        worker.tasks.remove(MARKETPLACES_TASK);
                    }
                    Err(error) => tracing::warn!(%error, "cannot re-read the marketplaces table; serving the ones known"),
                }
            }
            Some(ended) = consumers.tasks.join_next() => {
                if let Err(error) = consumers.ended(ended) {
                    worker.shutdown.cancel();
                    result = Err(error);
                    break;
                }
            }
        }
    }
    consumers.stop_all().await;
    schedule.await.ok();
    confirmations.await.ok();
    worker.stop(result).await
}
