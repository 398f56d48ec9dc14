//! The locker and reducer: order events applied to the stock ledger in
//! PostgreSQL, a batch of messages per transaction.
//!
//! Per batch: validate every message (bad ones fail alone), then in one
//! transaction resolve SKUs and lock the touched stock rows in id order (no
//! deadlocks between batches; a message with an unknown SKU fails alone),
//! load the items' locks, run the pure rules of [`crate::domain::ledger`] in
//! memory, and write locks, counters, history and `stock.changed` outbox rows
//! back with one statement of set-based parts (five round trips in all,
//! `BEGIN` and `COMMIT` included, whatever the batch's size). A failed
//! transaction is every planned message's [`HandlerError::Batch`] error: the
//! consumer handles them again in smaller batches until the culprit is alone.
//!
//! A pooled variation's rows are locked first too, then its pool
//! ([`crate::pools`]): the rules run on the pool's levels, the row keeps its
//! own locks, the pool's change gets its history row naming the marketplace
//! and order, and every marketplace of the pool is told in the same
//! transaction.

use crate::bus::outbox::OutboxMessage;
use crate::bus::{Envelope, Handler, HandlerError, Incoming, QueueSpec, named_marketplace};
use crate::domain::StockEffect;
use crate::domain::ledger::{
    self as rules, ChangeType, ItemOp, LevelChange, LockState, LockWrite, StockLevels,
};
use crate::events::{OrderEvent, STOCK_CHANGED, StockChanged};
use crate::marketplace::directory::MarketplaceDirectory;
use crate::pools::{self, PoolHistory};
use crate::telemetry::StageClock;
use sqlx::PgPool;
use std::collections::BTreeMap;

mod history_columns;
mod plan;
mod rows;
mod writes;

pub(crate) use history_columns::HistoryColumns;
use plan::{HistoryRow, LockInsert, LockKey, Planned};
use rows::lock_stock_rows;
pub(crate) use rows::resolve_skus;
use writes::{BatchWrites, load_locks, pool_announcements, write_batch};

/// Which part of an order's life a worker applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Locks for open orders, releases for cancelled ones.
    Locker,
    /// Consumes locks of shipped orders.
    Reducer,
}

impl Role {
    pub fn queue(self) -> QueueSpec {
        match self {
            Role::Locker => QueueSpec::locker(),
            Role::Reducer => QueueSpec::reducer(),
        }
    }

    fn op(self, effect: StockEffect) -> Option<ItemOp> {
        match (self, effect) {
            (Role::Locker, StockEffect::Lock) => Some(ItemOp::Lock),
            (Role::Locker, StockEffect::Release) => Some(ItemOp::Release),
            (Role::Reducer, StockEffect::Consume) => Some(ItemOp::Consume),
            _ => None,
        }
    }
}

pub struct LedgerHandler {
    pool: PgPool,
    role: Role,
    marketplaces: MarketplaceDirectory,
}

impl LedgerHandler {
    pub fn new(pool: PgPool, role: Role) -> Self {
        Self {
            marketplaces: MarketplaceDirectory::new(pool.clone()),
            pool,
            role,
        }
    }

    /// Validates one message and returns its items to apply.
    async fn plan(&self, index: usize, envelope: &Envelope) -> Result<Vec<Planned>, HandlerError> {
        let marketplace = named_marketplace(&self.marketplaces, &envelope.marketplace).await?;
        let event: OrderEvent = envelope.payload().map_err(|error| {
            HandlerError::Permanent(format!("malformed {} payload: {error}", envelope.kind))
        })?;
        if event.items.is_empty() {
            return Err(HandlerError::Permanent(format!(
                "order {} has no items",
                event.order_id
            )));
        }
        let mut planned = Vec::new();
        for item in &event.items {
            let quantity = rules::item_quantity(item.quantity).map_err(|error| {
                HandlerError::Permanent(format!(
                    "order {} item {}: {error}",
                    event.order_id, item.item_id
                ))
            })?;
            if item.sku.trim().is_empty() {
                return Err(HandlerError::Permanent(format!(
                    "order {} item {} has no SKU",
                    event.order_id, item.item_id
                )));
            }
            let effect = event.item_status(item).map_or(StockEffect::None, |status| {
                status.stock_effect(marketplace.lock_unpaid_orders)
            });
            if let Some(op) = self.role.op(effect) {
                planned.push(Planned {
                    message: index,
                    marketplace_id: marketplace.id,
                    sku: item.sku.clone(),
                    order_id: event.order_id.clone(),
                    item_id: item.item_id.clone(),
                    op,
                    quantity,
                });
            }
        }
        Ok(planned)
    }

    /// Applies `planned` in one transaction; a message with an unknown SKU
    /// gets its permanent error in `results` and none of its items applied.
    async fn apply(
        &self,
        planned: &[Planned],
        results: &mut [Result<(), HandlerError>],
        batch: &[Incoming],
        clock: &mut StageClock,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        clock.lap("ledger.begin");
        let locked = lock_stock_rows(&mut tx, planned).await?;
        clock.lap("ledger.lock_rows");
        let (mut rows, variations) = (locked.rows, locked.variations);
        for item in planned {
            if locked
                .unknown
                .contains(&(item.marketplace_id, item.sku.clone()))
            {
                results[item.message] = Err(HandlerError::Permanent(format!(
                    "unknown SKU {:?} on marketplace {:?} (order {}): add the variation or a listing for it, then replay this dead letter",
                    item.sku, batch[item.message].envelope.marketplace, item.order_id
                )));
            }
        }
        let planned: Vec<&Planned> = planned
            .iter()
            .filter(|item| results[item.message].is_ok())
            .collect();
        if planned.is_empty() {
            return Ok(());
        }
        let variation_ids = planned
            .iter()
            .map(|p| variations[&(p.marketplace_id, p.sku.clone())])
            .collect();
        let (mut locks, pooled) = load_locks(&mut tx, &planned, &variation_ids).await?;
        clock.lap("ledger.load_locks");
        let mut pools = pools::read_locked(&mut tx, &pooled).await?;
        clock.lap("ledger.lock_pools");
        let mut pool_history = Vec::new();
        // (message, pooled variation) pairs that changed: every marketplace of the pool is told.
        let mut pools_announced: BTreeMap<(usize, i64), ChangeType> = BTreeMap::new();

        let mut writes = BatchWrites::default();
        // (message, stock row) pairs that changed, each announced once.
        let mut announced: BTreeMap<(usize, (i64, i32)), (StockLevels, ChangeType)> =
            BTreeMap::new();
        for item in planned {
            let key = (
                variations[&(item.marketplace_id, item.sku.clone())],
                item.marketplace_id,
            );
            let row = rows.get_mut(&key).expect("every touched row was locked");
            let lock_key: LockKey = (
                item.marketplace_id,
                item.order_id.clone(),
                item.item_id.clone(),
            );
            let existing = locks.get(&lock_key).copied();
            let pool = pools.get_mut(&key.0);
            // A pooled row's order moves its pool: the rules run on the pool's levels.
            let levels = pool.as_ref().map_or(row.levels, |pool| pool.levels);
            let transition = rules::apply(levels, existing, item.op, item.quantity);
            match transition.lock {
                LockWrite::Unchanged => {}
                LockWrite::Insert(lock) => {
                    locks.insert(lock_key.clone(), lock);
                    writes.inserts.insert(
                        lock_key,
                        LockInsert {
                            stock_id: row.id,
                            quantity: lock.quantity,
                            state: lock.state,
                            was_locked: lock.state == LockState::Locked,
                        },
                    );
                }
                LockWrite::Finish(state) => {
                    if let Some(lock) = locks.get_mut(&lock_key) {
                        lock.state = state;
                    }
                    match writes.inserts.get_mut(&lock_key) {
                        Some(insert) => insert.state = state,
                        None => {
                            writes.finishes.insert(lock_key, state);
                        }
                    }
                }
            }
            let reference = batch[item.message].envelope.id.to_string();
            let change = match (transition.change, pool) {
                (None, _) => continue,
                (Some(change), None) => {
                    row.levels = transition.levels;
                    announced.insert((item.message, key), (row.levels, change.change_type));
                    change
                }
                (Some(change), Some(pool)) => {
                    pool.levels = transition.levels;
                    pool.changed = true;
                    pools_announced.insert((item.message, key.0), change.change_type);
                    pool_history.push(PoolHistory {
                        variation_id: key.0,
                        cause: Some((row.id, item.marketplace_id)),
                        change: change.clone(),
                        order_item: (Some(item.order_id.clone()), Some(item.item_id.clone())),
                        reference: Some(reference.clone()),
                        actor: "system".to_owned(),
                    });
                    // The row keeps its own locks; its units are the pool's.
                    let before = row.levels;
                    row.levels.locked =
                        (row.levels.locked + change.after.locked - change.before.locked).max(0);
                    LevelChange {
                        before,
                        after: row.levels,
                        ..change
                    }
                }
            };
            row.changed = true;
            writes.history.push(&HistoryRow {
                stock_id: row.id,
                variation_id: row.variation_id,
                marketplace_id: item.marketplace_id,
                change,
                order_id: item.order_id.clone(),
                item_id: item.item_id.clone(),
                reference,
            });
        }

        clock.lap("ledger.rules");
        // Pooled rows only: each of these is no round trip without a pool.
        pools::update_on_hand(&mut tx, &pools).await?;
        pools::insert_history(&mut tx, &pool_history).await?;
        let pool_messages = pool_announcements(&mut tx, &pools, pools_announced, batch).await?;
        clock.lap("ledger.pool_writes");
        let mut messages = Vec::with_capacity(announced.len());
        for ((message, key), (levels, change_type)) in announced {
            let row = &rows[&key];
            let incoming = &batch[message];
            let payload = StockChanged {
                stock_id: row.id,
                variation_id: row.variation_id,
                sku: row.sku.clone(),
                listed: levels.listed,
                locked: levels.locked,
                available: levels.available(),
                change_type: change_type.as_str().to_owned(),
                origin: None,
            };
            let envelope = Envelope::new(STOCK_CHANGED, &incoming.envelope.marketplace, &payload);
            messages.push(OutboxMessage::event(
                envelope,
                incoming.traceparent.as_deref(),
            ));
        }
        messages.extend(pool_messages);
        clock.lap("ledger.outbox_build");
        write_batch(
            &mut tx,
            writes,
            rows.values().filter(|row| row.changed),
            &messages,
        )
        .await?;
        clock.lap("ledger.write");
        tx.commit().await?;
        clock.lap("ledger.commit");
        Ok(())
    }
}

impl Handler for LedgerHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        let mut clock = StageClock::start();
        let mut results: Vec<Result<(), HandlerError>> = vec![Ok(()); batch.len()];
        let mut planned = Vec::new();
        for (index, incoming) in batch.iter().enumerate() {
            match self.plan(index, &incoming.envelope).await {
                Ok(items) => planned.extend(items),
                Err(error) => results[index] = Err(error),
            }
        }
        clock.lap("ledger.plan");
        if planned.is_empty() {
            return results;
        }
        if let Err(error) = self.apply(&planned, &mut results, batch, &mut clock).await {
            // Which message the database refused is not known here: the
            // consumer splits the batch to find it (`HandlerError::Batch`).
            let error = HandlerError::of_batch(error);
            for item in &planned {
                if results[item.message].is_ok() {
                    results[item.message] = Err(error.clone());
                }
            }
        }
        results
    }
}

/// Runs the locker or reducer on a started worker until shutdown.
pub async fn run(worker: crate::worker::Worker, role: Role) -> anyhow::Result<()> {
    let handler = LedgerHandler::new(worker.db.clone(), role);
    worker.consume(role.queue(), handler).await
}
