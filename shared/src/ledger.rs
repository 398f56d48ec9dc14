//! The locker and reducer: order events applied to the stock ledger in
//! PostgreSQL, a batch of messages per transaction.
//!
//! Per batch: validate every message (bad ones fail alone), resolve SKUs in
//! one query, then in one transaction lock the touched stock rows in id order
//! (no deadlocks between batches), load the items' locks, run the pure rules
//! of [`crate::domain::ledger`] in memory, and write locks, counters, history
//! and `stock.changed` outbox rows back with set-based statements. A failed
//! transaction is every planned message's [`HandlerError::Batch`] error: the
//! consumer handles them again in smaller batches until the culprit is alone.
//!
//! A pooled variation's rows are locked first too, then its pool
//! ([`crate::pools`]): the rules run on the pool's levels, the row keeps its
//! own locks, the pool's change gets its history row naming the marketplace
//! and order, and every marketplace of the pool is told in the same
//! transaction.

use crate::bus::outbox::{self, OutboxMessage};
use crate::bus::{Envelope, Handler, HandlerError, Incoming, QueueSpec};
use crate::domain::StockEffect;
use crate::domain::ledger::{
    self as rules, ChangeType, ItemOp, LevelChange, Lock, LockState, LockWrite, StockLevels,
};
use crate::events::{OrderEvent, PoolOrigin, STOCK_CHANGED, StockChanged};
use crate::marketplace::directory::MarketplaceDirectory;
use crate::pools::{self, PoolHistory, PoolState};
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// One order item to apply, after validation.
struct Planned {
    message: usize,
    marketplace_id: i32,
    sku: String,
    order_id: String,
    item_id: String,
    op: ItemOp,
    quantity: i32,
}

type LockKey = (i32, String, String);

struct StockRow {
    id: i64,
    variation_id: i64,
    sku: String,
    levels: StockLevels,
    changed: bool,
}

struct LockInsert {
    stock_id: i64,
    quantity: i32,
    state: LockState,
    was_locked: bool,
}

struct HistoryRow {
    stock_id: i64,
    variation_id: i64,
    marketplace_id: i32,
    change: rules::LevelChange,
    order_id: String,
    item_id: String,
    reference: String,
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
        let marketplace = self
            .marketplaces
            .get(&envelope.marketplace)
            .await?
            .ok_or_else(|| {
                HandlerError::Permanent(format!("unknown marketplace {:?}", envelope.marketplace))
            })?;
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

    async fn apply(
        &self,
        planned: &[Planned],
        variations: &HashMap<(i32, String), i64>,
        batch: &[Incoming],
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let keys: BTreeSet<(i64, i32)> = planned
            .iter()
            .map(|p| {
                (
                    variations[&(p.marketplace_id, p.sku.clone())],
                    p.marketplace_id,
                )
            })
            .collect();
        let mut rows = lock_stock_rows(&mut tx, &keys).await?;
        let variation_ids = keys.iter().map(|(variation, _)| *variation).collect();
        let mut pools = pools::lock_pools(&mut tx, &variation_ids).await?;
        let mut locks = load_locks(&mut tx, planned).await?;
        let mut pool_history = Vec::new();
        // (message, pooled variation) pairs that changed: every marketplace of the pool is told.
        let mut pools_announced: BTreeMap<(usize, i64), ChangeType> = BTreeMap::new();

        let mut inserts: BTreeMap<LockKey, LockInsert> = BTreeMap::new();
        let mut finishes: BTreeMap<LockKey, LockState> = BTreeMap::new();
        let mut history = Vec::new();
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
                    inserts.insert(
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
                    match inserts.get_mut(&lock_key) {
                        Some(insert) => insert.state = state,
                        None => {
                            finishes.insert(lock_key, state);
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
            history.push(HistoryRow {
                stock_id: row.id,
                variation_id: row.variation_id,
                marketplace_id: item.marketplace_id,
                change,
                order_id: item.order_id.clone(),
                item_id: item.item_id.clone(),
                reference,
            });
        }

        insert_locks(&mut tx, &inserts).await?;
        finish_locks(&mut tx, &finishes).await?;
        update_levels(&mut tx, rows.values().filter(|row| row.changed)).await?;
        insert_history(&mut tx, &history).await?;
        pools::update_on_hand(&mut tx, &pools).await?;
        pools::insert_history(&mut tx, &pool_history).await?;
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
        messages.extend(pool_announcements(&mut tx, &pools, pools_announced, batch).await?);
        outbox::enqueue(&mut tx, &messages).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Handler for LedgerHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = vec![Ok(()); batch.len()];
        let mut planned = Vec::new();
        for (index, incoming) in batch.iter().enumerate() {
            match self.plan(index, &incoming.envelope).await {
                Ok(items) => planned.extend(items),
                Err(error) => results[index] = Err(error),
            }
        }
        if planned.is_empty() {
            return results;
        }
        let pairs = planned
            .iter()
            .map(|p| (p.marketplace_id, p.sku.as_str()))
            .collect();
        let variations = match resolve_skus(&self.pool, &pairs).await {
            Ok(variations) => variations,
            Err(error) => {
                let error = HandlerError::of_batch(error);
                for item in &planned {
                    results[item.message] = Err(error.clone());
                }
                return results;
            }
        };
        for item in &planned {
            if !variations.contains_key(&(item.marketplace_id, item.sku.clone())) {
                results[item.message] = Err(HandlerError::Permanent(format!(
                    "unknown SKU {:?} on marketplace {:?} (order {}): add the variation or a listing for it, then replay this dead letter",
                    item.sku, batch[item.message].envelope.marketplace, item.order_id
                )));
            }
        }
        planned.retain(|item| results[item.message].is_ok());
        if planned.is_empty() {
            return results;
        }
        if let Err(error) = self.apply(&planned, &variations, batch).await {
            // Which message the database refused is not known here: the
            // consumer splits the batch to find it (`HandlerError::Batch`).
            let error = HandlerError::of_batch(error);
            for item in &planned {
                results[item.message] = Err(error.clone());
            }
        }
        results
    }
}

/// A pool's change told to every marketplace row of the pool, in the same
/// transaction, each with the order's marketplace and when it was seen.
async fn pool_announcements(
    conn: &mut PgConnection,
    pools: &HashMap<i64, PoolState>,
    announced: BTreeMap<(usize, i64), ChangeType>,
    batch: &[Incoming],
) -> sqlx::Result<Vec<OutboxMessage>> {
    if announced.is_empty() {
        return Ok(Vec::new());
    }
    let variations: Vec<i64> = announced.keys().map(|(_, variation)| *variation).collect();
    let members = pools::members(conn, &variations).await?;
    let mut messages = Vec::new();
    for ((message, variation), change_type) in announced {
        let incoming = &batch[message];
        let levels = pools[&variation].levels;
        for member in members.get(&variation).into_iter().flatten() {
            let payload = StockChanged {
                stock_id: member.stock_id,
                variation_id: variation,
                sku: member.sku.clone(),
                listed: levels.listed,
                locked: levels.locked,
                available: levels.available(),
                change_type: change_type.as_str().to_owned(),
                origin: Some(PoolOrigin {
                    marketplace: incoming.envelope.marketplace.clone(),
                    seen_at: incoming.envelope.occurred_at,
                }),
            };
            let envelope = Envelope::new(STOCK_CHANGED, &member.marketplace, &payload);
            messages.push(OutboxMessage::event(
                envelope,
                incoming.traceparent.as_deref(),
            ));
        }
    }
    Ok(messages)
}

/// Maps (marketplace, SKU) pairs to our variations: a listing's SKU on that
/// marketplace first, else the variation's own SKU. Unknown pairs are absent.
pub(crate) async fn resolve_skus<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    pairs: &BTreeSet<(i32, &str)>,
) -> sqlx::Result<HashMap<(i32, String), i64>> {
    let (marketplaces, skus): (Vec<i32>, Vec<&str>) = pairs.iter().copied().unzip();
    let rows = sqlx::query(
        "SELECT k.marketplace_id, k.sku, COALESCE(l.variation_id, v.id) AS variation_id
         FROM unnest($1::int[], $2::text[]) AS k(marketplace_id, sku)
         LEFT JOIN listings l ON l.marketplace_id = k.marketplace_id AND l.sku = k.sku
         LEFT JOIN variations v ON v.sku = k.sku
         WHERE COALESCE(l.variation_id, v.id) IS NOT NULL",
    )
    .bind(&marketplaces)
    .bind(&skus)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                (row.get("marketplace_id"), row.get("sku")),
                row.get("variation_id"),
            )
        })
        .collect())
}

/// Creates missing rows (stock unknown) and locks every touched row, in id order.
async fn lock_stock_rows(
    conn: &mut PgConnection,
    keys: &BTreeSet<(i64, i32)>,
) -> sqlx::Result<HashMap<(i64, i32), StockRow>> {
    let (variations, marketplaces): (Vec<i64>, Vec<i32>) = keys.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO marketplace_stock (variation_id, marketplace_id)
         SELECT * FROM unnest($1::bigint[], $2::int[]) ORDER BY 1, 2
         ON CONFLICT (variation_id, marketplace_id) DO NOTHING",
    )
    .bind(&variations)
    .bind(&marketplaces)
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT s.id, s.variation_id, s.marketplace_id, s.listed_stock, s.locked_stock, v.sku
         FROM marketplace_stock s
         JOIN unnest($1::bigint[], $2::int[]) AS k(variation_id, marketplace_id)
           ON s.variation_id = k.variation_id AND s.marketplace_id = k.marketplace_id
         JOIN variations v ON v.id = s.variation_id
         ORDER BY s.id
         FOR UPDATE OF s",
    )
    .bind(&variations)
    .bind(&marketplaces)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = (row.get("variation_id"), row.get("marketplace_id"));
            let stock = StockRow {
                id: row.get("id"),
                variation_id: row.get("variation_id"),
                sku: row.get("sku"),
                levels: StockLevels::new(row.get("listed_stock"), row.get("locked_stock")),
                changed: false,
            };
            (key, stock)
        })
        .collect())
}

async fn load_locks(
    conn: &mut PgConnection,
    planned: &[Planned],
) -> sqlx::Result<HashMap<LockKey, Lock>> {
    let marketplaces: Vec<i32> = planned.iter().map(|p| p.marketplace_id).collect();
    let orders: Vec<&str> = planned.iter().map(|p| p.order_id.as_str()).collect();
    let items: Vec<&str> = planned.iter().map(|p| p.item_id.as_str()).collect();
    let rows = sqlx::query(
        "SELECT l.marketplace_id, l.order_external_id, l.order_item_external_id, l.lock_status, l.quantity_locked
         FROM marketplace_stock_locks l
         JOIN (SELECT DISTINCT * FROM unnest($1::int[], $2::text[], $3::text[])) AS k(m, o, i)
           ON l.marketplace_id = k.m AND l.order_external_id = k.o AND l.order_item_external_id = k.i",
    )
    .bind(&marketplaces)
    .bind(&orders)
    .bind(&items)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let state = LockState::parse(row.get("lock_status"))?;
            let key = (
                row.get("marketplace_id"),
                row.get("order_external_id"),
                row.get("order_item_external_id"),
            );
            Some((
                key,
                Lock {
                    state,
                    quantity: row.get("quantity_locked"),
                },
            ))
        })
        .collect())
}

async fn insert_locks(
    conn: &mut PgConnection,
    inserts: &BTreeMap<LockKey, LockInsert>,
) -> sqlx::Result<()> {
    if inserts.is_empty() {
        return Ok(());
    }
    let mut stock_ids = Vec::new();
    let mut marketplaces = Vec::new();
    let mut orders = Vec::new();
    let mut items = Vec::new();
    let mut quantities = Vec::new();
    let mut states = Vec::new();
    let mut was_locked = Vec::new();
    for ((marketplace, order, item), insert) in inserts {
        stock_ids.push(insert.stock_id);
        marketplaces.push(*marketplace);
        orders.push(order.as_str());
        items.push(item.as_str());
        quantities.push(insert.quantity);
        states.push(insert.state.as_str());
        was_locked.push(insert.was_locked);
    }
    sqlx::query(
        "INSERT INTO marketplace_stock_locks
             (stock_id, marketplace_id, order_external_id, order_item_external_id, quantity_locked,
              lock_status, locked_at, released_at, consumed_at)
         SELECT k.stock_id, k.m, k.o, k.i, k.q, k.s,
                CASE WHEN k.was_locked THEN now() END,
                CASE WHEN k.s = 'released' THEN now() END,
                CASE WHEN k.s = 'consumed' THEN now() END
         FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::bool[])
              AS k(stock_id, m, o, i, q, s, was_locked)",
    )
    .bind(&stock_ids)
    .bind(&marketplaces)
    .bind(&orders)
    .bind(&items)
    .bind(&quantities)
    .bind(&states)
    .bind(&was_locked)
    .execute(&mut *conn)
    .await?;
    // The oversell guard looks only at items not marked (a partial index):
    // marking them here, with their lock, keeps that look off the history.
    sqlx::query(
        "UPDATE order_items i SET lock_applied = true
         FROM orders o, unnest($1::int[], $2::text[], $3::text[]) AS k(m, o, i)
         WHERE o.marketplace_id = k.m AND o.external_id = k.o
           AND i.order_id = o.id AND i.external_id = k.i AND NOT i.lock_applied",
    )
    .bind(&marketplaces)
    .bind(&orders)
    .bind(&items)
    .execute(conn)
    .await?;
    Ok(())
}

async fn finish_locks(
    conn: &mut PgConnection,
    finishes: &BTreeMap<LockKey, LockState>,
) -> sqlx::Result<()> {
    if finishes.is_empty() {
        return Ok(());
    }
    let marketplaces: Vec<i32> = finishes.keys().map(|k| k.0).collect();
    let orders: Vec<&str> = finishes.keys().map(|k| k.1.as_str()).collect();
    let items: Vec<&str> = finishes.keys().map(|k| k.2.as_str()).collect();
    let states: Vec<&str> = finishes.values().map(|s| s.as_str()).collect();
    sqlx::query(
        "UPDATE marketplace_stock_locks l
         SET lock_status = k.s,
             released_at = CASE WHEN k.s = 'released' THEN now() END,
             consumed_at = CASE WHEN k.s = 'consumed' THEN now() END
         FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS k(m, o, i, s)
         WHERE l.marketplace_id = k.m AND l.order_external_id = k.o
           AND l.order_item_external_id = k.i AND l.lock_status = 'locked'",
    )
    .bind(&marketplaces)
    .bind(&orders)
    .bind(&items)
    .bind(&states)
    .execute(conn)
    .await?;
    Ok(())
}

async fn update_levels(
    conn: &mut PgConnection,
    rows: impl Iterator<Item = &StockRow>,
) -> sqlx::Result<()> {
    let mut ids = Vec::new();
    let mut listed = Vec::new();
    let mut locked = Vec::new();
    for row in rows {
        ids.push(row.id);
        listed.push(row.levels.listed);
        locked.push(row.levels.locked);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE marketplace_stock s
         SET listed_stock = k.listed, locked_stock = k.locked, updated_at = now()
         FROM unnest($1::bigint[], $2::int[], $3::int[]) AS k(id, listed, locked)
         WHERE s.id = k.id",
    )
    .bind(&ids)
    .bind(&listed)
    .bind(&locked)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_history(conn: &mut PgConnection, history: &[HistoryRow]) -> sqlx::Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let mut columns = HistoryColumns::default();
    for row in history {
        columns.push(row);
    }
    columns.insert(conn).await
}

/// History rows as column arrays, for one `INSERT … SELECT FROM unnest`.
#[derive(Default)]
pub(crate) struct HistoryColumns {
    stock_ids: Vec<i64>,
    variation_ids: Vec<i64>,
    marketplace_ids: Vec<i32>,
    change_types: Vec<&'static str>,
    listed_before: Vec<i32>,
    listed_after: Vec<i32>,
    locked_before: Vec<i32>,
    locked_after: Vec<i32>,
    quantities: Vec<i32>,
    orders: Vec<Option<String>>,
    items: Vec<Option<String>>,
    references: Vec<Option<String>>,
    actors: Vec<String>,
    notes: Vec<Option<String>>,
}

impl HistoryColumns {
    fn push(&mut self, row: &HistoryRow) {
        self.add(
            (row.stock_id, row.variation_id, row.marketplace_id),
            &row.change,
            (Some(row.order_id.clone()), Some(row.item_id.clone())),
            Some(row.reference.clone()),
            "system",
        );
    }

    /// Adds one history row: `row` is (stock id, variation id, marketplace id).
    pub(crate) fn add(
        &mut self,
        row: (i64, i64, i32),
        change: &rules::LevelChange,
        order_item: (Option<String>, Option<String>),
        reference: Option<String>,
        actor: &str,
    ) {
        self.stock_ids.push(row.0);
        self.variation_ids.push(row.1);
        self.marketplace_ids.push(row.2);
        self.change_types.push(change.change_type.as_str());
        self.listed_before.push(change.before.listed);
        self.listed_after.push(change.after.listed);
        self.locked_before.push(change.before.locked);
        self.locked_after.push(change.after.locked);
        self.quantities.push(change.quantity);
        self.orders.push(order_item.0);
        self.items.push(order_item.1);
        self.references.push(reference);
        self.actors.push(actor.to_owned());
        self.notes.push(change.note.clone());
    }

    pub(crate) async fn insert(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        if self.stock_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO marketplace_stock_history
                 (stock_id, variation_id, marketplace_id, change_type,
                  listed_before, listed_after, locked_before, locked_after,
                  available_before, available_after, quantity_change,
                  order_external_id, order_item_external_id, reference_id, actor, notes)
             SELECT k.stock_id, k.variation_id, k.marketplace_id, k.change_type,
                    k.lb, k.la, k.kb, k.ka, GREATEST(k.lb - k.kb, 0), GREATEST(k.la - k.ka, 0), k.q,
                    k.o, k.i, k.r, k.actor, k.notes
             FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::text[], $5::int[], $6::int[],
                         $7::int[], $8::int[], $9::int[], $10::text[], $11::text[], $12::text[],
                         $13::text[], $14::text[])
                  WITH ORDINALITY
                  AS k(stock_id, variation_id, marketplace_id, change_type, lb, la, kb, ka, q,
                       o, i, r, actor, notes, n)
             ORDER BY k.n",
        )
        .bind(&self.stock_ids)
        .bind(&self.variation_ids)
        .bind(&self.marketplace_ids)
        .bind(&self.change_types)
        .bind(&self.listed_before)
        .bind(&self.listed_after)
        .bind(&self.locked_before)
        .bind(&self.locked_after)
        .bind(&self.quantities)
        .bind(&self.orders)
        .bind(&self.items)
        .bind(&self.references)
        .bind(&self.actors)
        .bind(&self.notes)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Runs the locker or reducer on a started worker until shutdown.
pub async fn run(worker: crate::worker::Worker, role: Role) -> anyhow::Result<()> {
    let handler = LedgerHandler::new(worker.db.clone(), role);
    worker.consume(role.queue(), handler).await
}
