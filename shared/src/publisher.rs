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
//!   pushed minus the orders placed since; a push above that estimate would
//!   give sold units back. A push at or below it always goes; one above it
//!   goes only when the latest new-orders poll started after the last push,
//!   is fresh, brought no order of the row and left none unlocked. Otherwise
//!   the handler asks the poller for a poll (`sync.<mp>.new` through the
//!   outbox, at most every [`POLL_REQUEST_INTERVAL`]) and defers the
//!   message: it comes back through the shortest retry queue without
//!   counting an attempt, so a late poll never dead-letters it.
//! - **Rate limit.** Every HTTP call takes a permit from the fleet's request
//!   budget of its endpoint class ([`Budget`], shared with the pollers); a
//!   429 blocks the class for its Retry-After. Order commands go first in a
//!   batch, then decreases, then increases: commands are the orders class,
//!   pushes the listings class, and a decrease is high priority while
//!   increases and reconciliation reads are low ([`budget::Priority`]). A
//!   marketplace that also caps quantity updates
//!   (`marketplaces.quantity_update_*`, Back Market's ~2,000 an hour) has a
//!   [`RateGate`] in front of each quantity write; each publisher queue has a
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

use crate::buffer_sql::{buffer_rule, buffer_rule_columns};
use crate::bus::outbox::{self, OutboxMessage};
use crate::bus::{self, Envelope, Handler, HandlerError, Incoming, QueueSpec};
use crate::domain::OrderStatus;
use crate::domain::ledger::{ChangeType, LevelChange, StockLevels};
use crate::domain::order_commands::Outcome;
use crate::domain::push_guard::{PollCover, PushDecision, decide, estimate_shown};
use crate::events::{
    self, ACCEPT_ORDERLINE, AcceptOrderline, STOCK_CHANGED, SYNC_REQUEST, StockChanged,
    SyncRequest, UPDATE_ORDER_STATUS, UpdateOrderStatus,
};
use crate::ledger::HistoryColumns;
use crate::marketplace::directory::{self, MarketplaceRow};
use crate::marketplace::{
    Budget, Marketplace, MarketplaceConfig, MarketplaceError, OrderItemRef, OrderStatusUpdate,
    RateGate, Tracking, budget,
};
use crate::order_commands::{OrderCommand, is_refused_transition};
use crate::retry;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The change type of a reconciliation's `stock.changed` messages.
pub const RECONCILIATION: &str = "reconciliation";
/// At most one poll request per marketplace in this interval while increases wait.
pub const POLL_REQUEST_INTERVAL: Duration = Duration::from_secs(10);

/// In-process retries of one marketplace call before the message goes to the
/// retry queues. Short: a longer outage is the retry queues' job, and the
/// rest of the batch waits behind this call.
const CALL_RETRY: retry::Policy = retry::Policy {
    initial: Duration::from_millis(200),
    max_interval: Duration::from_secs(2),
    max_elapsed: Duration::from_secs(10),
};

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            configure: Arc::new(directory::adapter_config),
            schedule_hour: Duration::from_secs(3600),
            refresh: Duration::from_secs(30),
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
    let mut consumers = Consumers::default();
    let mut refresh = tokio::time::interval(options.refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    loop {
        tokio::select! {
            _ = worker.shutdown.cancelled() => break,
            _ = refresh.tick() => {
                match directory::load_all(&worker.db).await {
                    Ok(rows) => consumers.follow(&worker, &options, rows).await,
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
    worker.stop(result).await
}

/// The running marketplace consumers, each with its own stop token so one can
/// be replaced without stopping the others.
#[derive(Default)]
struct Consumers {
    running: HashMap<String, Running>,
    tasks: tokio::task::JoinSet<(String, u64, anyhow::Result<()>)>,
    generation: u64,
}

struct Running {
    row: MarketplaceRow,
    generation: u64,
    stop: tokio_util::sync::CancellationToken,
}

impl Consumers {
    /// Starts, replaces and stops consumers so they serve exactly `rows`.
    async fn follow(
        &mut self,
        worker: &crate::worker::Worker,
        options: &Options,
        rows: Vec<MarketplaceRow>,
    ) {
        let codes: Vec<String> = rows.iter().map(|row| row.code.clone()).collect();
        for code in self.running.keys().cloned().collect::<Vec<_>>() {
            if !codes.contains(&code) {
                tracing::info!(marketplace = %code, "marketplace removed; no longer publishing to it");
                self.stop(&code);
            }
        }
        for row in rows {
            if self
                .running
                .get(&row.code)
                .is_some_and(|running| running.row.same_connection(&row))
            {
                continue;
            }
            if self.running.contains_key(&row.code) {
                tracing::info!(marketplace = %row.code, "marketplace settings changed; restarting its consumer");
                self.stop(&row.code);
            }
            let created_queue = match self.start(worker, options, row.clone()).await {
                Ok(created_queue) => created_queue,
                Err(error) => {
                    // Its queue keeps the messages until a publisher that can reach it runs.
                    tracing::error!(marketplace = %row.code, error = format!("{error:#}"), "not publishing to this marketplace");
                    continue;
                }
            };
            if created_queue {
                // Changes announced before its queue existed went to the
                // unroutable queue: a reconciliation brings every row up to date.
                let summary = crate::reconcile::run(
                    &worker.db,
                    &row.code,
                    false,
                    crate::poller::Trigger::Fleet,
                )
                .await;
                if let Err(error) = summary {
                    tracing::warn!(marketplace = %row.code, %error, "could not reconcile the new marketplace");
                }
            }
        }
        self.generation += 1;
    }

    /// Starts serving `row`; true when its queue had to be created.
    async fn start(
        &mut self,
        worker: &crate::worker::Worker,
        options: &Options,
        row: MarketplaceRow,
    ) -> anyhow::Result<bool> {
        let config = (options.configure)(&row)?;
        let handler = PublisherHandler::new(worker.db.clone(), row.clone(), config)?;
        let spec = QueueSpec::publisher(&row.code);
        let created_queue = !worker
            .bus
            .queue_exists(&worker.bus.topology.queue(&spec))
            .await?;
        worker.bus.declare(std::slice::from_ref(&spec)).await?;
        let stop = worker.shutdown.child_token();
        let generation = self.generation;
        let code = row.code.clone();
        let consumed = bus::consumer::run(
            worker.bus.clone(),
            spec,
            worker.settings.consumer.clone(),
            Arc::new(handler),
            worker.tasks.clone(),
            stop.clone(),
        );
        self.tasks
            .spawn(async move { (code, generation, consumed.await) });
        self.running.insert(
            row.code.clone(),
            Running {
                row,
                generation,
                stop,
            },
        );
        Ok(created_queue)
    }

    fn stop(&mut self, code: &str) {
        if let Some(running) = self.running.remove(code) {
            running.stop.cancel();
        }
    }

    /// A consumer task ended: an error of a consumer still wanted stops the
    /// worker (its loop panicked: lost channels are re-opened in the loop).
    fn ended(
        &mut self,
        ended: Result<(String, u64, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        let (code, generation, outcome) = ended?;
        let wanted = self
            .running
            .get(&code)
            .is_some_and(|r| r.generation == generation);
        match outcome {
            Err(error) if wanted => Err(error.context(format!("publishing to {code}"))),
            Err(error) => {
                tracing::warn!(marketplace = %code, error = format!("{error:#}"), "a replaced consumer ended with an error");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn stop_all(&mut self) {
        for running in self.running.values() {
            running.stop.cancel();
        }
        while let Some(ended) = self.tasks.join_next().await {
            if let Ok((code, _, Err(error))) = ended {
                tracing::warn!(marketplace = %code, error = format!("{error:#}"), "consumer ended with an error");
            }
        }
    }
}

pub struct PublisherHandler {
    pool: PgPool,
    marketplace: MarketplaceRow,
    adapter: Arc<dyn Marketplace>,
    /// The marketplace's cap on quantity updates, if it has one.
    quantity_budget: Option<RateGate>,
    last_poll_request: Mutex<Option<Instant>>,
}

/// A stock row as the publisher reads it at send time.
struct RowState {
    variation_id: i64,
    sku: String,
    known: bool,
    target: u32,
    last_api_quantity: Option<i32>,
    /// Units of the row's orders known now (every lock row).
    taken: i32,
    /// `taken` when `last_api_quantity` was computed.
    last_api_taken: Option<i32>,
    decrements_on_order: bool,
    cover: PollCover,
}

impl RowState {
    /// What the marketplace shows now, as far as we know (push_guard).
    fn shown_estimate(&self) -> Option<i32> {
        let taken_since = self.taken - self.last_api_taken.unwrap_or(self.taken);
        estimate_shown(
            self.last_api_quantity,
            taken_since,
            self.decrements_on_order,
        )
    }
}

/// One row's messages in a batch: which one carries the outcome, and whether
/// a reconciliation asked for the marketplace's quantity.
struct Group {
    carrier: usize,
    reconcile: bool,
}

/// What the batch writes back once its calls are done.
#[derive(Default)]
struct Effects {
    /// Rows pushed (or confirmed): id, quantity shown, units taken then.
    synced: Vec<(i64, i32, i32)>,
    notes: Vec<SyncNote>,
    request_poll: bool,
}

/// A history row recording what the marketplace was shown (`api_sync`,
/// `reconciliation`): the stock levels do not move, and the row records them
/// as of the commit, read under the row lock, not as they were before the
/// HTTP call (other transactions may have changed them meanwhile).
struct SyncNote {
    /// (stock id, variation id, marketplace id)
    key: (i64, i64, i32),
    change_type: ChangeType,
    quantity: i32,
    note: String,
    reference: String,
}

impl PublisherHandler {
    /// A handler whose adapter takes its permits from the fleet's request budget.
    pub fn new(
        pool: PgPool,
        marketplace: MarketplaceRow,
        mut config: MarketplaceConfig,
    ) -> anyhow::Result<Self> {
        config.budget = Some(Arc::new(Budget::new(
            pool.clone(),
            marketplace.id,
            &marketplace.code,
            "publisher",
        )));
        let quantity_budget = marketplace.quantity_update_limit.map(|limit| {
            RateGate::budget(
                &marketplace.code,
                limit.max(1) as u32,
                Duration::from_secs(marketplace.quantity_update_window_seconds.max(1) as u64),
            )
        });
        let adapter = crate::marketplace::connect(config)?;
        Ok(Self {
            pool,
            marketplace,
            adapter,
            quantity_budget,
            last_poll_request: Mutex::new(None),
        })
    }

    /// Runs one marketplace call with in-process retries.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, MarketplaceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MarketplaceError>>,
    {
        let code = self.marketplace.code.as_str();
        let result = retry::retry(&CALL_RETRY, op, MarketplaceError::is_transient, |error, wait| {
            tracing::info!(marketplace = code, what, %error, ?wait, "marketplace call failed; retrying");
        })
        .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        metrics::counter!("stockfleet_marketplace_calls_total", "marketplace" => code.to_owned(), "call" => what.to_owned(), "outcome" => outcome)
            .increment(1);
        result
    }

    async fn load_rows(&self, ids: &[i64]) -> sqlx::Result<HashMap<i64, RowState>> {
        let rows = sqlx::query(concat!(
            "SELECT s.id, s.variation_id, COALESCE(l.sku, v.sku) AS sku,
                    s.available_stock, s.stock_known, s.last_api_quantity,
                    s.last_api_taken, s.last_synced_at, now() AS db_now,
                    m.increase_freshness_seconds,
                    COALESCE(m.decrements_on_order, m.kind = 'backmarket') AS decrements_on_order,
                    (SELECT COALESCE(sum(k.quantity_locked), 0)::int FROM marketplace_stock_locks k
                     WHERE k.stock_id = s.id) AS taken,
                    (SELECT max(k.created_at) FROM marketplace_stock_locks k
                     WHERE k.stock_id = s.id) AS order_learned_at,
                    (SELECT max(r.started_at) FROM sync_runs r
                     WHERE r.marketplace_id = m.id AND r.sync_type = 'new' AND r.status = 'succeeded')
                        AS poll_started_at,
                    EXISTS (SELECT 1 FROM order_items i JOIN orders o ON o.id = i.order_id
                            WHERE i.variation_id = s.variation_id AND o.marketplace_id = m.id
                              AND (i.status IN ('pending', 'accepted', 'shipped')
                                   OR (i.status = 'unpaid' AND m.lock_unpaid_orders))
                              AND NOT EXISTS (SELECT 1 FROM marketplace_stock_locks k
                                  WHERE k.marketplace_id = m.id AND k.order_external_id = o.external_id
                                    AND k.order_item_external_id = i.external_id))
                        AS orders_unapplied, ",
            buffer_rule_columns!(),
            " FROM marketplace_stock s
             JOIN variations v ON v.id = s.variation_id
             JOIN marketplaces m ON m.id = s.marketplace_id
             LEFT JOIN listings l ON l.variation_id = s.variation_id AND l.marketplace_id = s.marketplace_id
             WHERE s.id = ANY($1) AND s.marketplace_id = $2"
        ))
        .bind(ids)
        .bind(self.marketplace.id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let decrements_on_order = row.get("decrements_on_order");
                let state = RowState {
                    variation_id: row.get("variation_id"),
                    sku: row.get("sku"),
                    known: row.get("stock_known"),
                    target: buffer_rule(&row).buffered(row.get("available_stock")),
                    last_api_quantity: row.get("last_api_quantity"),
                    taken: row.get("taken"),
                    last_api_taken: row.get("last_api_taken"),
                    decrements_on_order,
                    cover: PollCover {
                        poll_started_at: row.get("poll_started_at"),
                        last_push_at: row.get("last_synced_at"),
                        order_learned_at: row.get("order_learned_at"),
                        orders_unapplied: row.get("orders_unapplied"),
                        decrements_on_order,
                        now: row.get("db_now"),
                        freshness: chrono::Duration::seconds(i64::from(
                            row.get::<i32, _>("increase_freshness_seconds"),
                        )),
                    },
                };
                (row.get("id"), state)
            })
            .collect())
    }

    /// Pushes (or skips, or defers) one row; records what it did in `effects`.
    async fn sync_row(
        &self,
        stock_id: i64,
        row: &RowState,
        group: &Group,
        reference: &str,
        effects: &mut Effects,
    ) -> Result<(), HandlerError> {
        let code = &self.marketplace.code;
        if !row.known {
            metrics::counter!("stockfleet_push_skipped_total", "marketplace" => code.clone(), "reason" => "unknown_stock").increment(1);
            return Ok(());
        }
        let target = row.target as i32;
        let key = (stock_id, row.variation_id, self.marketplace.id);
        // What the marketplace shows now, as far as we know.
        let shown = if group.reconcile {
            let read = self.call("listing_quantity", || {
                self.adapter.listing_quantity(&row.sku)
            });
            let reported = budget::with_priority(budget::Priority::Low, read)
                .await
                .map_err(handler_error)?;
            let reported = i32::try_from(reported).unwrap_or(i32::MAX);
            if row.last_api_quantity != Some(reported) {
                let note = format!(
                    "{code} showed {reported} while we last pushed {}; our quantity is {target}",
                    row.last_api_quantity
                        .map_or("nothing".to_owned(), |q| q.to_string())
                );
                effects.notes.push(SyncNote {
                    key,
                    change_type: ChangeType::Reconciliation,
                    quantity: reported - row.last_api_quantity.unwrap_or(0),
                    note,
                    reference: reference.to_owned(),
                });
            }
            Some(reported)
        } else {
            row.shown_estimate()
        };
        let priority = match decide(target, shown, row.cover.covers()) {
            PushDecision::Unchanged => {
                if group.reconcile {
                    effects.synced.push((stock_id, target, row.taken));
                }
                metrics::counter!("stockfleet_push_skipped_total", "marketplace" => code.clone(), "reason" => "unchanged").increment(1);
                return Ok(());
            }
            PushDecision::WaitForPoll => {
                effects.request_poll = true;
                return Err(HandlerError::Deferred(format!(
                    "increase of {} on {code} to {target} (it shows {}) waits for a new-orders poll \
                     started after the last push and stock change",
                    row.sku,
                    shown.map_or("nothing".to_owned(), |q| q.to_string())
                )));
            }
            // A decrease protects against overselling: it goes before increases.
            PushDecision::Decrease => budget::Priority::High,
            PushDecision::Increase => budget::Priority::Low,
        };
        if let Some(budget) = &self.quantity_budget {
            budget.wait().await;
        }
        let push = self.call("set_listing_quantity", || {
            self.adapter.set_listing_quantity(&row.sku, row.target)
        });
        budget::with_priority(priority, push)
            .await
            .map_err(handler_error)?;
        effects.synced.push((stock_id, target, row.taken));
        let before = shown.map_or("nothing".to_owned(), |q| q.to_string());
        effects.notes.push(SyncNote {
            key,
            change_type: ChangeType::ApiSync,
            quantity: target - shown.unwrap_or(0),
            note: format!("pushed {target} to {code} (was {before})"),
            reference: reference.to_owned(),
        });
        Ok(())
    }

    async fn command(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let malformed = |error: serde_json::Error| {
            HandlerError::Permanent(format!("malformed {} payload: {error}", envelope.kind))
        };
        match envelope.kind.as_str() {
            ACCEPT_ORDERLINE => {
                let accept: AcceptOrderline = envelope.payload().map_err(malformed)?;
                let item = OrderItemRef {
                    external_id: accept.item_id.clone(),
                    sku: accept.sku,
                };
                let written = self
                    .call(ACCEPT_ORDERLINE, || {
                        self.adapter.accept_orderline(&accept.order_id, &item)
                    })
                    .await;
                let command = OrderCommand {
                    kind: ACCEPT_ORDERLINE,
                    order_id: &accept.order_id,
                    items: vec![&accept.item_id],
                    requested: OrderStatus::Accepted,
                };
                self.settle(envelope, &command, written).await
            }
            UPDATE_ORDER_STATUS => {
                let command: UpdateOrderStatus = envelope.payload().map_err(malformed)?;
                let update = OrderStatusUpdate {
                    status: command.status,
                    items: command
                        .items
                        .into_iter()
                        .map(|item| OrderItemRef {
                            external_id: item.item_id,
                            sku: item.sku,
                        })
                        .collect(),
                    tracking: command.tracking.map(|t| Tracking {
                        number: t.number,
                        url: t.url,
                        carrier: t.carrier,
                    }),
                };
                let written = self
                    .call(UPDATE_ORDER_STATUS, || {
                        self.adapter.update_order_status(&command.order_id, &update)
                    })
                    .await;
                let command = OrderCommand {
                    kind: UPDATE_ORDER_STATUS,
                    order_id: &command.order_id,
                    items: update
                        .items
                        .iter()
                        .map(|item| item.external_id.as_str())
                        .collect(),
                    requested: command.status,
                };
                let outcome = self.settle(envelope, &command, written).await;
                // An operator's change (PUT .../status) shows how it ended.
                crate::status_changes::settle(&self.pool, envelope.id, &outcome).await?;
                outcome
            }
            other => Err(HandlerError::Permanent(format!(
                "the publisher does not handle {other:?} messages"
            ))),
        }
    }

    /// The outcome of an order command's write: a refused transition is read
    /// against the order's current state (one more request, only then) and
    /// is a success when the item already got there or ended another way.
    async fn settle(
        &self,
        envelope: &Envelope,
        command: &OrderCommand<'_>,
        written: Result<(), MarketplaceError>,
    ) -> Result<(), HandlerError> {
        let code = self.marketplace.code.as_str();
        let counted = |outcome: &'static str| {
            metrics::counter!("stockfleet_order_commands_total", "marketplace" => code.to_owned(), "command" => command.kind.to_owned(), "outcome" => outcome)
                .increment(1);
        };
        let refusal = match written {
            Ok(()) => {
                counted("applied");
                return Ok(());
            }
            Err(error) if is_refused_transition(&error) => error,
            Err(error) => return Err(handler_error(error)),
        };
        let order = self
            .call("get_order", || self.adapter.get_order(command.order_id))
            .await
            .map_err(handler_error)?;
        let reading = command.read(&order);
        counted(reading.outcome.as_str());
        let (kind, order_id, requested) = (command.kind, command.order_id, command.requested);
        let found = reading.found.as_str();
        match reading.outcome {
            Outcome::AlreadyDone => {
                tracing::info!(marketplace = code, command = kind, order_id, %requested, found, "order command refused but already carried out; done");
                Ok(())
            }
            Outcome::Moot => {
                tracing::warn!(marketplace = code, command = kind, order_id, %requested, found, "order command refused: the order ended another way; recorded in moot_order_commands");
                command
                    .record_moot(&self.pool, self.marketplace.id, envelope.id, &reading)
                    .await?;
                Ok(())
            }
            Outcome::Refused => Err(HandlerError::Permanent(format!("{refusal} ({found})"))),
        }
    }

    /// Writes pushes, history and a poll request in one transaction. The
    /// rows are locked first (in id order, as the ledger locks them), so the
    /// history records their levels as this transaction sees them.
    async fn commit(&self, effects: Effects) -> Result<(), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let mut touched: Vec<i64> = effects.synced.iter().map(|(id, _, _)| *id).collect();
        touched.extend(effects.notes.iter().map(|note| note.key.0));
        let current = lock_levels(&mut tx, touched).await?;
        if !effects.synced.is_empty() {
            let mut ids = Vec::new();
            let (mut quantities, mut taken) = (Vec::new(), Vec::new());
            for (id, quantity, units) in effects.synced {
                ids.push(id);
                quantities.push(quantity);
                taken.push(units);
            }
            sqlx::query(
                "UPDATE marketplace_stock s SET last_api_quantity = k.q, last_api_taken = k.t,
                        last_synced_at = now()
                 FROM unnest($1::bigint[], $2::int[], $3::int[]) AS k(id, q, t) WHERE s.id = k.id",
            )
            .bind(&ids)
            .bind(&quantities)
            .bind(&taken)
            .execute(&mut *tx)
            .await?;
        }
        let mut history = HistoryColumns::default();
        for note in effects.notes {
            // A row deleted meanwhile has no levels left to record.
            let Some(levels) = current.get(&note.key.0) else {
                continue;
            };
            history.add(
                note.key,
                &unchanged(*levels, note.change_type, note.quantity, note.note),
                (None, None),
                Some(note.reference),
                "publisher",
            );
        }
        history.insert(&mut tx).await?;
        if effects.request_poll && self.poll_request_due() {
            let code = &self.marketplace.code;
            let request = SyncRequest {
                sync_type: "new".to_owned(),
                force: false,
                days_back: None,
                requested_by: "publisher: a stock increase waits for a fresh new-orders poll"
                    .to_owned(),
            };
            let envelope = Envelope::new(SYNC_REQUEST, code, &request);
            let message =
                OutboxMessage::command(events::sync_command_key(code, "new"), envelope, None);
            outbox::enqueue(&mut tx, &[message]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn poll_request_due(&self) -> bool {
        let mut last = self.last_poll_request.lock().expect("poisoned");
        let due = last.is_none_or(|at| at.elapsed() >= POLL_REQUEST_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

impl Handler for PublisherHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = vec![Ok(()); batch.len()];
        let mut groups: BTreeMap<i64, Group> = BTreeMap::new();
        let mut commands = Vec::new();
        for (index, incoming) in batch.iter().enumerate() {
            let envelope = &incoming.envelope;
            if envelope.marketplace != self.marketplace.code {
                results[index] = Err(HandlerError::Permanent(format!(
                    "a {} message reached the publisher of {}",
                    envelope.marketplace, self.marketplace.code
                )));
                continue;
            }
            if envelope.kind != STOCK_CHANGED {
                commands.push(index);
                continue;
            }
            match envelope.payload::<StockChanged>() {
                Ok(change) => {
                    let reconcile = change.change_type == RECONCILIATION;
                    let group = groups.entry(change.stock_id).or_insert(Group {
                        carrier: index,
                        reconcile,
                    });
                    // A reconciliation carries the outcome, so a retry reads the marketplace again.
                    if reconcile || !group.reconcile {
                        group.carrier = index;
                    }
                    group.reconcile |= reconcile;
                }
                Err(error) => {
                    results[index] = Err(HandlerError::Permanent(format!(
                        "malformed stock.changed payload: {error}"
                    )))
                }
            }
        }

        // After one call gave up transiently, the rest of the batch is not tried.
        let mut outage: Option<HandlerError> = None;
        let mut effects = Effects::default();
        let mut pushed = Vec::new();
        // Commands first: accepting an order must not wait behind stock pushes.
        for index in commands {
            results[index] = match &outage {
                Some(error) => Err(error.clone()),
                None => {
                    let result = self.command(&batch[index].envelope).await;
                    if let Err(error @ HandlerError::Transient(_)) = &result {
                        outage = Some(error.clone());
                    }
                    result
                }
            };
        }
        if !groups.is_empty() {
            let ids: Vec<i64> = groups.keys().copied().collect();
            let rows = match self.load_rows(&ids).await {
                Ok(rows) => rows,
                Err(error) => return vec![Err(error.into()); batch.len()],
            };
            // Decreases first: they are what keeps the marketplace from overselling.
            let mut ordered: Vec<(&i64, &Group)> = groups.iter().collect();
            ordered.sort_by_key(|(stock_id, _)| {
                !rows.get(stock_id).is_some_and(|row| {
                    row.shown_estimate()
                        .is_some_and(|shown| (row.target as i32) < shown)
                })
            });
            for (stock_id, group) in ordered {
                let Some(row) = rows.get(stock_id) else {
                    results[group.carrier] = Err(HandlerError::Permanent(format!(
                        "no stock row {stock_id} on {}",
                        self.marketplace.code
                    )));
                    continue;
                };
                if let Some(error) = &outage {
                    results[group.carrier] = Err(error.clone());
                    continue;
                }
                let reference = batch[group.carrier].envelope.id.to_string();
                let result = self
                    .sync_row(*stock_id, row, group, &reference, &mut effects)
                    .await;
                if let Err(error @ HandlerError::Transient(_)) = &result {
                    outage = Some(error.clone());
                }
                pushed.push(group.carrier);
                results[group.carrier] = result;
            }
        }
        if let Err(error) = self.commit(effects).await {
            // The calls went out but are not recorded: retry them (pushes are absolute).
            for index in pushed {
                if results[index].is_ok() {
                    results[index] = Err(error.clone());
                }
            }
        }
        results
    }
}

/// Locks stock rows in id order and reads their levels.
async fn lock_levels(
    conn: &mut sqlx::PgConnection,
    mut ids: Vec<i64>,
) -> sqlx::Result<HashMap<i64, StockLevels>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query(
        "SELECT id, listed_stock, locked_stock FROM marketplace_stock
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let levels = StockLevels::new(row.get("listed_stock"), row.get("locked_stock"));
            (row.get("id"), levels)
        })
        .collect())
}

/// A row's levels unchanged, with a note: api_sync and reconciliation rows
/// record what the marketplace was shown, not a stock movement.
fn unchanged(
    levels: StockLevels,
    change_type: ChangeType,
    quantity: i32,
    note: String,
) -> LevelChange {
    LevelChange {
        change_type,
        before: levels,
        after: levels,
        quantity,
        note: Some(note),
    }
}

/// A marketplace failure as the consumer loop's retry or dead-letter decision.
fn handler_error(error: MarketplaceError) -> HandlerError {
    if error.is_transient() {
        HandlerError::Transient(error.to_string())
    } else {
        HandlerError::Permanent(error.to_string())
    }
}
