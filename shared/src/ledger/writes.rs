//! The batch's reads and writes after its rows are locked (rows.rs): the
//! items' locks loaded in one statement; then every
//! write (locks inserted and finished, counters, history, outbox) as one
//! statement of set-based parts; and the pool's announcements to every
//! marketplace of the pool.

use super::history_columns::HistoryColumns;
use super::plan::{LockInsert, LockKey, Planned, StockRow};
use crate::bus::Envelope;
use crate::bus::Incoming;
use crate::bus::outbox::{OutboxMessage, OutboxRows};
use crate::domain::ledger::{ChangeType, Lock, LockState};
use crate::events::{PoolOrigin, STOCK_CHANGED, StockChanged};
use crate::pools::{self, PoolState};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

/// A pool's change told to every marketplace row of the pool, in the same
/// transaction, each with the order's marketplace and when it was seen.
pub(super) async fn pool_announcements(
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

/// Loads the items' locks and locks the pools among `variations`, in one
/// round trip (both only after the stock rows are locked); returns the
/// locks and the pooled variations, whose levels are read next
/// ([`pools::read_locked`]) only when there are any.
pub(super) async fn load_locks(
    conn: &mut PgConnection,
    planned: &[&Planned],
    variations: &BTreeSet<i64>,
) -> sqlx::Result<(HashMap<LockKey, Lock>, Vec<i64>)> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH pooled AS ({})
             SELECT NULL::bigint AS pooled, l.marketplace_id, l.order_external_id,
                    l.order_item_external_id, l.lock_status, l.quantity_locked
             FROM (SELECT DISTINCT * FROM unnest($2::int[], $3::text[], $4::text[])) AS k(m, o, i)
             -- One index lookup per item, whatever the statistics: a plan
             -- cached while the table was small would scan it (OFFSET 0
             -- keeps the lookup a parameterized subquery).
             CROSS JOIN LATERAL (
                 SELECT * FROM marketplace_stock_locks l
                 WHERE l.marketplace_id = k.m AND l.order_external_id = k.o
                   AND l.order_item_external_id = k.i
                 OFFSET 0) l
             UNION ALL
             SELECT variation_id, NULL, NULL, NULL, NULL, NULL FROM pooled",
            pools::LOCK_POOLS
        )
    });
    let variations: Vec<i64> = variations.iter().copied().collect();
    let marketplaces: Vec<i32> = planned.iter().map(|p| p.marketplace_id).collect();
    let orders: Vec<&str> = planned.iter().map(|p| p.order_id.as_str()).collect();
    let items: Vec<&str> = planned.iter().map(|p| p.item_id.as_str()).collect();
    let rows = sqlx::query(AssertSqlSafe(SQL.as_str()))
        .bind(&variations)
        .bind(&marketplaces)
        .bind(&orders)
        .bind(&items)
        .fetch_all(conn)
        .await?;
    let mut locks = HashMap::new();
    let mut pooled = Vec::new();
    for row in rows {
        if let Some(variation) = row.get::<Option<i64>, _>("pooled") {
            pooled.push(variation);
            continue;
        }
        let Some(state) = LockState::parse(row.get("lock_status")) else {
            continue;
        };
        let key = (
            row.get("marketplace_id"),
            row.get("order_external_id"),
            row.get("order_item_external_id"),
        );
        let quantity = row.get("quantity_locked");
        locks.insert(key, Lock { state, quantity });
    }
    Ok((locks, pooled))
}

/// What one batch writes: locks inserted and finished, counters, history
/// and outbox rows.
#[derive(Default)]
pub(super) struct BatchWrites {
    pub(super) inserts: BTreeMap<LockKey, LockInsert>,
    pub(super) finishes: BTreeMap<LockKey, LockState>,
    pub(super) history: HistoryColumns,
}

/// Writes the batch with one statement, one round trip: each table's
/// set-based write is a data-modifying CTE. PostgreSQL runs every one to
/// completion in the statement's one snapshot; none needs another's effect
/// (finished locks are ones that existed before the batch, inserted ones
/// are new), so together they write what they would one by one.
pub(super) async fn write_batch<'a>(
    conn: &mut PgConnection,
    writes: BatchWrites,
    levels: impl Iterator<Item = &'a StockRow>,
    messages: &[OutboxMessage],
) -> sqlx::Result<()> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH inserted AS (
                 INSERT INTO marketplace_stock_locks
                     (stock_id, marketplace_id, order_external_id, order_item_external_id,
                      quantity_locked, lock_status, locked_at, released_at, consumed_at)
                 SELECT k.stock_id, k.m, k.o, k.i, k.q, k.s,
                        CASE WHEN k.was_locked THEN now() END,
                        CASE WHEN k.s = 'released' THEN now() END,
                        CASE WHEN k.s = 'consumed' THEN now() END
                 FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::int[],
                             $6::text[], $7::bool[])
                      AS k(stock_id, m, o, i, q, s, was_locked)),
             -- The oversell guard looks only at items not marked (a partial
             -- index): marking them with their lock keeps it off the history.
             applied AS (
                 UPDATE order_items i SET lock_applied = true
                 FROM orders o, unnest($2::int[], $3::text[], $4::text[]) AS k(m, o, i)
                 WHERE o.marketplace_id = k.m AND o.external_id = k.o
                   AND i.order_id = o.id AND i.external_id = k.i AND NOT i.lock_applied),
             finished AS (
                 UPDATE marketplace_stock_locks l
                 SET lock_status = k.s,
                     released_at = CASE WHEN k.s = 'released' THEN now() END,
                     consumed_at = CASE WHEN k.s = 'consumed' THEN now() END
                 FROM unnest($8::int[], $9::text[], $10::text[], $11::text[]) AS k(m, o, i, s)
                 WHERE l.marketplace_id = k.m AND l.order_external_id = k.o
                   AND l.order_item_external_id = k.i AND l.lock_status = 'locked'),
             levels AS (
                 UPDATE marketplace_stock s
                 SET listed_stock = k.listed, locked_stock = k.locked, updated_at = now()
                 FROM unnest($12::bigint[], $13::int[], $14::int[]) AS k(id, listed, locked)
                 WHERE s.id = k.id),
             history AS ({})
             {}",
            HistoryColumns::insert_sql(15),
            OutboxRows::insert_sql(29),
        )
    });
    let inserts = &writes.inserts;
    let finishes = &writes.finishes;
    let levels: Vec<&StockRow> = levels.collect();
    let query = sqlx::query(AssertSqlSafe(SQL.as_str()))
        .bind(inserts.values().map(|l| l.stock_id).collect::<Vec<i64>>())
        .bind(inserts.keys().map(|k| k.0).collect::<Vec<i32>>())
        .bind(inserts.keys().map(|k| k.1.as_str()).collect::<Vec<&str>>())
        .bind(inserts.keys().map(|k| k.2.as_str()).collect::<Vec<&str>>())
        .bind(inserts.values().map(|l| l.quantity).collect::<Vec<i32>>())
        .bind(
            inserts
                .values()
                .map(|l| l.state.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            inserts
                .values()
                .map(|l| l.was_locked)
                .collect::<Vec<bool>>(),
        )
        .bind(finishes.keys().map(|k| k.0).collect::<Vec<i32>>())
        .bind(finishes.keys().map(|k| k.1.as_str()).collect::<Vec<&str>>())
        .bind(finishes.keys().map(|k| k.2.as_str()).collect::<Vec<&str>>())
        .bind(finishes.values().map(|s| s.as_str()).collect::<Vec<&str>>())
        .bind(levels.iter().map(|r| r.id).collect::<Vec<i64>>())
        .bind(levels.iter().map(|r| r.levels.listed).collect::<Vec<i32>>())
        .bind(levels.iter().map(|r| r.levels.locked).collect::<Vec<i32>>());
    let query = writes.history.bind(query);
    OutboxRows::of(messages).bind(query).execute(conn).await?;
    Ok(())
}
