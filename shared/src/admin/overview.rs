//! Read models for operators (the API and the dashboard): stock locks,
//! orders, sync status and a row's history. Reads only; every list is
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

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderQuery {
    pub marketplace: Option<String>,
    /// A normalised status (unpaid, pending, accepted, shipped, cancelled, returned).
    pub status: Option<String>,
    /// Only orders holding an item whose SKU we do not know.
    #[serde(default)]
    pub unknown_sku: bool,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OrderView {
    pub marketplace: String,
    pub order_id: String,
    pub status: Option<String>,
    pub raw_status: String,
    pub has_unknown_sku: bool,
    pub items: i64,
    pub units: i64,
    pub placed_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of an [`OrderView`] of the order `o` (joined to its marketplace `m`).
const ORDER_COLUMNS: &str = "m.code AS marketplace, o.external_id AS order_id, o.status,
        o.raw_status, o.has_unknown_sku, o.placed_at, o.first_seen_at, o.updated_at,
        (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) AS items,
        (SELECT COALESCE(sum(i.quantity), 0)::bigint FROM order_items i
         WHERE i.order_id = o.id) AS units";
const ORDERS: &str = "orders o JOIN marketplaces m ON m.id = o.marketplace_id";

/// Orders, most recently changed first.
pub async fn orders(pool: &PgPool, query: &OrderQuery) -> sqlx::Result<Vec<OrderView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM {ORDERS}
         WHERE ($1::text IS NULL OR m.code = $1) AND ($2::text IS NULL OR o.status = $2)
           AND (NOT $3 OR o.has_unknown_sku)
         ORDER BY o.updated_at DESC, o.id DESC LIMIT $4"
    )))
    .bind(&query.marketplace)
    .bind(&query.status)
    .bind(query.unknown_sku)
    .bind(limit(query.limit))
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct SyncRunView {
    pub id: i64,
    pub marketplace: String,
    pub sync_type: String,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub fetched: i32,
    pub created: i32,
    pub updated: i32,
    pub errors: i32,
    pub duration_ms: Option<i64>,
    pub error_text: Option<String>,
    /// When this (marketplace, type) last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
}

const SYNC_RUN_COLUMNS: &str = "r.id, m.code AS marketplace, r.sync_type, r.trigger, r.status,
    r.started_at, r.finished_at, r.fetched, r.created, r.updated, r.errors, r.duration_ms,
    r.error_text,
    (SELECT max(ok.started_at) FROM sync_runs ok WHERE ok.marketplace_id = r.marketplace_id
       AND ok.sync_type = r.sync_type AND ok.status = 'succeeded') AS last_success_at";

/// The latest run of every (marketplace, sync type): the sync status board.
pub async fn sync_status(pool: &PgPool) -> sqlx::Result<Vec<SyncRunView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (m.code, r.sync_type) {SYNC_RUN_COLUMNS}
         FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         ORDER BY m.code, r.sync_type, r.started_at DESC, r.id DESC"
    )))
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SyncRunQuery {
    pub marketplace: Option<String>,
    pub sync_type: Option<String>,
    pub limit: Option<i64>,
}

/// Runs, newest first.
pub async fn sync_runs(pool: &PgPool, query: &SyncRunQuery) -> sqlx::Result<Vec<SyncRunView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SYNC_RUN_COLUMNS}
         FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         WHERE ($1::text IS NULL OR m.code = $1) AND ($2::text IS NULL OR r.sync_type = $2)
         ORDER BY r.started_at DESC, r.id DESC LIMIT $3"
    )))
    .bind(&query.marketplace)
    .bind(&query.sync_type)
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

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OrderItemView {
    pub item_id: String,
    pub sku: String,
    pub known_sku: bool,
    pub quantity: i32,
    pub status: Option<String>,
    pub raw_status: String,
    /// The item's stock lock, if it took one: locked, released or consumed.
    pub lock_status: Option<String>,
    pub care_state: Option<String>,
    pub care_url: Option<String>,
}

/// One order as stored: its items, their locks, and the marketplace's raw JSON.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OrderDetail {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub order: OrderView,
    pub delivery_note_url: Option<String>,
    pub label_url: Option<String>,
    #[sqlx(skip)]
    pub items: Vec<OrderItemView>,
    /// Commands the marketplace refused because the order had ended another way.
    #[sqlx(skip)]
    pub moot_commands: Vec<MootCommandView>,
    pub raw: serde_json::Value,
}

/// An order command that became a no-op (see `moot_order_commands`).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct MootCommandView {
    pub item_id: String,
    pub command: String,
    pub requested_status: String,
    pub found_status: String,
    pub reason: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn order(
    pool: &PgPool,
    marketplace: &str,
    order_id: &str,
) -> sqlx::Result<Option<OrderDetail>> {
    let found: Option<OrderDetail> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS}, o.delivery_note_url, o.label_url, o.raw FROM {ORDERS}
         WHERE m.code = $1 AND o.external_id = $2"
    )))
    .bind(marketplace)
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    let Some(mut detail) = found else {
        return Ok(None);
    };
    detail.items = sqlx::query_as(
        "SELECT i.external_id AS item_id, i.sku, i.variation_id IS NOT NULL AS known_sku,
                i.quantity, i.status, i.raw_status, l.lock_status, i.care_state, i.care_url
         FROM order_items i
         JOIN orders o ON o.id = i.order_id
         JOIN marketplaces m ON m.id = o.marketplace_id
         LEFT JOIN marketplace_stock_locks l ON l.marketplace_id = o.marketplace_id
              AND l.order_external_id = o.external_id AND l.order_item_external_id = i.external_id
         WHERE m.code = $1 AND o.external_id = $2 ORDER BY i.id",
    )
    .bind(marketplace)
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    detail.moot_commands = sqlx::query_as(
        "SELECT c.item_external_id AS item_id, c.command, c.requested_status, c.found_status,
                c.reason, c.created_at
         FROM moot_order_commands c JOIN marketplaces m ON m.id = c.marketplace_id
         WHERE m.code = $1 AND c.order_external_id = $2 ORDER BY c.id",
    )
    .bind(marketplace)
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    Ok(Some(detail))
}
