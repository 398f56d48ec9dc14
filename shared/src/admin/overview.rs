//! Read models for operators (the API and the dashboard): stock locks,
//! the headline totals and a row's history (orders: [`super::orders`],
//! syncs: [`super::syncs`]). Reads only; every list is
//! bounded (100 rows by default, 500 at most).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};

fn limit(wanted: Option<i64>) -> i64 {
    wanted.unwrap_or(100).clamp(1, 500)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LockQuery {
    /// locked (the default), released or consumed.
    pub status: Option<String>,
    pub marketplace: Option<String>,
    pub sku: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct LockView {
    pub id: i64,
    pub marketplace: String,
    pub sku: String,
    pub order_id: String,
    pub item_id: String,
    pub quantity: i32,
    pub status: String,
    pub locked_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// Locks, oldest first: the oldest active locks are the ones to look at.
pub async fn locks(pool: &PgPool, query: &LockQuery) -> sqlx::Result<Vec<LockView>> {
    sqlx::query_as(
        "SELECT l.id, m.code AS marketplace, v.sku, l.order_external_id AS order_id,
                l.order_item_external_id AS item_id, l.quantity_locked AS quantity,
                l.lock_status AS status, l.locked_at, l.released_at, l.consumed_at
         FROM marketplace_stock_locks l
         JOIN marketplace_stock s ON s.id = l.stock_id
         JOIN variations v ON v.id = s.variation_id
         JOIN marketplaces m ON m.id = l.marketplace_id
         WHERE l.lock_status = $1 AND ($2::text IS NULL OR m.code = $2)
           AND ($3::text IS NULL OR v.sku = $3)
         ORDER BY l.created_at, l.id LIMIT $4",
    )
    .bind(query.status.as_deref().unwrap_or("locked"))
    .bind(&query.marketplace)
    .bind(&query.sku)
    .bind(limit(query.limit))
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HistoryView {
    pub id: i64,
    pub marketplace: String,
    pub change_type: String,
    pub listed_before: i32,
    pub listed_after: i32,
    pub locked_before: i32,
    pub locked_after: i32,
    pub available_before: i32,
    pub available_after: i32,
    pub quantity_change: i32,
    pub order_id: Option<String>,
    pub item_id: Option<String>,
    pub actor: String,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A SKU's history on every marketplace (or one), newest first.
pub async fn history(
    pool: &PgPool,
    sku: &str,
    marketplace: Option<&str>,
    wanted: Option<i64>,
) -> sqlx::Result<Vec<HistoryView>> {
    sqlx::query_as(
        "SELECT h.id, m.code AS marketplace, h.change_type, h.listed_before, h.listed_after,
                h.locked_before, h.locked_after, h.available_before, h.available_after,
                h.quantity_change, h.order_external_id AS order_id,
                h.order_item_external_id AS item_id, h.actor, h.notes, h.created_at
         FROM marketplace_stock_history h
         JOIN variations v ON v.id = h.variation_id
         JOIN marketplaces m ON m.id = h.marketplace_id
         WHERE v.sku = $1 AND ($2::text IS NULL OR m.code = $2)
         ORDER BY h.id DESC LIMIT $3",
    )
    .bind(sku)
    .bind(marketplace)
    .bind(limit(wanted))
    .fetch_all(pool)
    .await
}

/// The dashboard's headline numbers.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Totals {
    pub stock_rows: i64,
    pub listed_units: i64,
    pub locked_units: i64,
    pub active_locks: i64,
    pub open_orders: i64,
    pub orders_with_unknown_sku: i64,
    pub outbox_backlog: i64,
    /// Units locked beyond what was listed, over every allocated row and every pool (see [`super::oversold`]).
    pub oversold_units: i64,
}

pub async fn totals(pool: &PgPool) -> sqlx::Result<Totals> {
    sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM marketplace_stock) AS stock_rows,
            (SELECT COALESCE(sum(listed_stock), 0)::bigint
             + (SELECT COALESCE(sum(on_hand), 0) FROM stock_pools) FROM marketplace_stock) AS listed_units,
            (SELECT COALESCE(sum(locked_stock), 0)::bigint FROM marketplace_stock) AS locked_units,
            (SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked') AS active_locks,
            (SELECT count(*) FROM orders WHERE status IN ('unpaid', 'pending', 'accepted')) AS open_orders,
            (SELECT count(*) FROM orders WHERE has_unknown_sku) AS orders_with_unknown_sku,
            (SELECT count(*) FROM outbox) AS outbox_backlog,
            (SELECT COALESCE(sum(locked_stock - listed_stock), 0)::bigint FROM marketplace_stock s
             WHERE locked_stock > listed_stock
               AND NOT EXISTS (SELECT 1 FROM stock_pools p WHERE p.variation_id = s.variation_id))
            + (SELECT COALESCE(sum(GREATEST(k.locked - p.on_hand, 0)), 0)::bigint FROM stock_pools p
               JOIN LATERAL (SELECT sum(locked_stock) AS locked FROM marketplace_stock
                             WHERE variation_id = p.variation_id) k ON true) AS oversold_units",
    )
    .fetch_one(pool)
    .await
}
