//! The batch's reads and writes: one set-based statement per table (rows
//! locked in id order, locks loaded, inserted and finished, levels, history),
//! and the pool's announcements to every marketplace of the pool.

use super::history_columns::HistoryColumns;
use super::plan::{HistoryRow, LockInsert, LockKey, Planned, StockRow};
use crate::bus::Envelope;
use crate::bus::Incoming;
use crate::bus::outbox::OutboxMessage;
use crate::domain::ledger::{ChangeType, Lock, LockState, StockLevels};
use crate::events::{PoolOrigin, STOCK_CHANGED, StockChanged};
use crate::pools::{self, PoolState};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
pub(super) async fn lock_stock_rows(
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

pub(super) async fn load_locks(
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

pub(super) async fn insert_locks(
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

pub(super) async fn finish_locks(
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

pub(super) async fn update_levels(
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

pub(super) async fn insert_history(
    conn: &mut PgConnection,
    history: &[HistoryRow],
) -> sqlx::Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let mut columns = HistoryColumns::default();
    for row in history {
        columns.push(row);
    }
    columns.insert(conn).await
}
