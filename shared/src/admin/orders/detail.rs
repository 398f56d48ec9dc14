//! One order as stored, for its API answer and its page: the order's row,
//! its items each with their stock lock, the stock history it caused, the
//! commands that became no-ops and the status changes asked for it.

use super::{ORDER_COLUMNS, ORDERS, OrderView};
use crate::domain::OrderStatus;
use crate::status_changes::StatusChangeView;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;

/// An item of an order, with its stock lock.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct OrderItemView {
    pub item_id: String,
    pub sku: String,
    pub known_sku: bool,
    pub quantity: i32,
    #[schema(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    pub raw_status: String,
    /// The item's stock lock, if it took one: locked, released or consumed.
    pub lock_status: Option<String>,
    pub locked_quantity: Option<i32>,
    pub locked_at: Option<DateTime<Utc>>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub care_state: Option<String>,
    pub care_url: Option<String>,
}

/// A stock history row the order caused (lock, consume, release).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct OrderHistoryView {
    pub id: i64,
    pub sku: String,
    pub change_type: String,
    pub item_id: Option<String>,
    pub quantity_change: i32,
    pub listed_after: i32,
    pub locked_after: i32,
    pub available_after: i32,
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

/// An order command that became a no-op (see `moot_order_commands`).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct MootCommandView {
    pub item_id: String,
    pub command: String,
    pub requested_status: String,
    pub found_status: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// One order as stored: its items and their locks, the history it caused,
/// and the marketplace's raw JSON.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub order: OrderView,
    pub delivery_note_url: Option<String>,
    pub label_url: Option<String>,
    #[sqlx(skip)]
    pub items: Vec<OrderItemView>,
    /// Stock history rows of this order, oldest first.
    #[sqlx(skip)]
    pub history: Vec<OrderHistoryView>,
    /// Commands the marketplace refused because the order had ended another way.
    #[sqlx(skip)]
    pub moot_commands: Vec<MootCommandView>,
    /// Status changes operators asked for, newest first, with their state.
    #[sqlx(skip)]
    pub status_changes: Vec<StatusChangeView>,
    /// The order as the marketplace sent it.
    pub raw: serde_json::Value,
}

/// One order of a marketplace the caller sees (`visible`), or `None`.
pub async fn order(
    pool: &PgPool,
    visible: &[String],
    marketplace: &str,
    order_id: &str,
) -> sqlx::Result<Option<OrderDetail>> {
    if !visible.iter().any(|code| code == marketplace) {
        return Ok(None);
    }
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
                i.quantity, i.status, i.raw_status, l.lock_status,
                l.quantity_locked AS locked_quantity, l.locked_at, l.consumed_at,
                l.released_at, i.care_state, i.care_url
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
    detail.history = sqlx::query_as(
        "SELECT h.id, v.sku, h.change_type, h.order_item_external_id AS item_id,
                h.quantity_change, h.listed_after, h.locked_after, h.available_after,
                h.actor, h.created_at
         FROM marketplace_stock_history h
         JOIN variations v ON v.id = h.variation_id
         JOIN marketplaces m ON m.id = h.marketplace_id
         WHERE m.code = $1 AND h.order_external_id = $2 ORDER BY h.id",
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
    detail.status_changes = crate::status_changes::of_order(pool, marketplace, order_id).await?;
    Ok(Some(detail))
}
