//! Shared stock pools in PostgreSQL (the rules are [`crate::domain::pool`]).
//!
//! A pool's on hand lives in `stock_pools`; its locked is the sum of its
//! marketplace rows' `locked_stock`, read under the pool's row lock: every
//! writer of a pooled row locks the stock rows first (id order), then the
//! pool, so a lock taken on one marketplace is seen by the next writer on
//! any other.

use crate::domain::ledger::{LevelChange, StockLevels};
use crate::domain::pool::LastUnits;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeSet, HashMap};

/// A pool as a transaction holding its lock sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// `listed` = on hand, `locked` = every marketplace's active locks.
    pub levels: StockLevels,
    pub last_units: LastUnits,
    pub changed: bool,
}

/// Locks the pools among the variations `$1`, in variation order; returns
/// their ids. The ledger runs it as a part of a larger statement.
pub(crate) const LOCK_POOLS: &str =
    "SELECT variation_id FROM stock_pools WHERE variation_id = ANY($1)
     ORDER BY variation_id FOR UPDATE";

/// Locks the pools of `variations` (those that are pooled), in variation
/// order, and reads them. Call after locking the variations' stock rows.
pub async fn lock_pools(
    conn: &mut PgConnection,
    variations: &BTreeSet<i64>,
) -> sqlx::Result<HashMap<i64, PoolState>> {
    if variations.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = variations.iter().copied().collect();
    let pooled: Vec<i64> = sqlx::query_scalar(LOCK_POOLS)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    read_locked(conn, &pooled).await
}

/// Reads pools this transaction has locked ([`LOCK_POOLS`]), in a statement
/// of its own: one begun after the lock sees the locked of every
/// marketplace's rows as committed.
pub(crate) async fn read_locked(
    conn: &mut PgConnection,
    pooled: &[i64],
) -> sqlx::Result<HashMap<i64, PoolState>> {
    if pooled.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT p.variation_id, p.on_hand, p.last_units, p.last_units_marketplace_id,
                (SELECT COALESCE(sum(s.locked_stock), 0)::int FROM marketplace_stock s
                 WHERE s.variation_id = p.variation_id) AS locked
         FROM stock_pools p WHERE p.variation_id = ANY($1)",
    )
    .bind(pooled)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let state = PoolState {
                levels: StockLevels::new(row.get("on_hand"), row.get("locked")),
                last_units: last_units(&row),
                changed: false,
            };
            (row.get("variation_id"), state)
        })
        .collect())
}

/// The hold read from a row with `last_units` and `last_units_marketplace_id`.
pub(crate) fn last_units(row: &sqlx::postgres::PgRow) -> LastUnits {
    LastUnits {
        units: row.get::<i32, _>("last_units").max(0) as u32,
        holder: row.get("last_units_marketplace_id"),
    }
}

/// Writes the on hand of changed pools.
pub async fn update_on_hand(
    conn: &mut PgConnection,
    pools: &HashMap<i64, PoolState>,
) -> sqlx::Result<()> {
    let (ids, on_hand): (Vec<i64>, Vec<i32>) = pools
        .iter()
        .filter(|(_, pool)| pool.changed)
        .map(|(id, pool)| (*id, pool.levels.listed))
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE stock_pools p SET on_hand = k.on_hand, updated_at = now()
         FROM unnest($1::bigint[], $2::int[]) AS k(id, on_hand) WHERE p.variation_id = k.id",
    )
    .bind(&ids)
    .bind(&on_hand)
    .execute(conn)
    .await?;
    Ok(())
}

/// One marketplace row of a pool, to be told of the pool's changes.
#[derive(Debug, Clone)]
pub struct Member {
    pub stock_id: i64,
    pub variation_id: i64,
    pub sku: String,
    pub marketplace: String,
}

/// Every marketplace row of the pooled `variations`.
pub async fn members(
    conn: &mut PgConnection,
    variations: &[i64],
) -> sqlx::Result<HashMap<i64, Vec<Member>>> {
    let rows = sqlx::query(
        "SELECT s.id, s.variation_id, v.sku, m.code FROM marketplace_stock s
         JOIN variations v ON v.id = s.variation_id JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE s.variation_id = ANY($1) ORDER BY s.id",
    )
    .bind(variations)
    .fetch_all(conn)
    .await?;
    let mut members: HashMap<i64, Vec<Member>> = HashMap::new();
    for row in rows {
        let member = Member {
            stock_id: row.get("id"),
            variation_id: row.get("variation_id"),
            sku: row.get("sku"),
            marketplace: row.get("code"),
        };
        members.entry(member.variation_id).or_default().push(member);
    }
    Ok(members)
}

/// One `stock_pool_history` row: the pool's levels before and after, and
/// the marketplace row (and order item) that caused the change.
pub struct PoolHistory {
    pub variation_id: i64,
    pub cause: Option<(i64, i32)>,
    pub change: LevelChange,
    pub order_item: (Option<String>, Option<String>),
    pub reference: Option<String>,
    pub actor: String,
}

pub async fn insert_history(conn: &mut PgConnection, history: &[PoolHistory]) -> sqlx::Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let variations: Vec<i64> = history.iter().map(|h| h.variation_id).collect();
    let stock_ids: Vec<Option<i64>> = history.iter().map(|h| h.cause.map(|c| c.0)).collect();
    let marketplaces: Vec<Option<i32>> = history.iter().map(|h| h.cause.map(|c| c.1)).collect();
    let types: Vec<&str> = history
        .iter()
        .map(|h| h.change.change_type.as_str())
        .collect();
    let on_hand_before: Vec<i32> = history.iter().map(|h| h.change.before.listed).collect();
    let on_hand_after: Vec<i32> = history.iter().map(|h| h.change.after.listed).collect();
    let locked_before: Vec<i32> = history.iter().map(|h| h.change.before.locked).collect();
    let locked_after: Vec<i32> = history.iter().map(|h| h.change.after.locked).collect();
    let quantities: Vec<i32> = history.iter().map(|h| h.change.quantity).collect();
    let orders: Vec<Option<&str>> = history.iter().map(|h| h.order_item.0.as_deref()).collect();
    let items: Vec<Option<&str>> = history.iter().map(|h| h.order_item.1.as_deref()).collect();
    let references: Vec<Option<&str>> = history.iter().map(|h| h.reference.as_deref()).collect();
    let actors: Vec<&str> = history.iter().map(|h| h.actor.as_str()).collect();
    let notes: Vec<Option<&str>> = history.iter().map(|h| h.change.note.as_deref()).collect();
    sqlx::query(
        "INSERT INTO stock_pool_history
             (variation_id, stock_id, marketplace_id, change_type, on_hand_before, on_hand_after,
              locked_before, locked_after, quantity_change, order_external_id,
              order_item_external_id, reference_id, actor, notes)
         SELECT k.v, k.s, k.m, k.t, k.hb, k.ha, k.kb, k.ka, k.q, k.o, k.i, k.r, k.a, k.n
         FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::text[], $5::int[], $6::int[],
                     $7::int[], $8::int[], $9::int[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::text[])
              WITH ORDINALITY AS k(v, s, m, t, hb, ha, kb, ka, q, o, i, r, a, n, ord)
         ORDER BY k.ord",
    )
    .bind(&variations)
    .bind(&stock_ids)
    .bind(&marketplaces)
    .bind(&types)
    .bind(&on_hand_before)
    .bind(&on_hand_after)
    .bind(&locked_before)
    .bind(&locked_after)
    .bind(&quantities)
    .bind(&orders)
    .bind(&items)
    .bind(&references)
    .bind(&actors)
    .bind(&notes)
    .execute(conn)
    .await?;
    Ok(())
}
