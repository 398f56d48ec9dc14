//! Read models for operators (the API and the dashboard): the headline
//! totals and a SKU's history (locks: [`super::locks`], orders:
//! [`super::orders`], syncs: [`super::syncs`]). Reads only, over the
//! marketplaces the caller sees; every list is one page.

use super::page::Page;
use crate::domain::listing::{self, Refused, Window};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use utoipa::{IntoParams, ToSchema};

/// Which history rows of a SKU; an empty marketplace means any the caller sees.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub marketplace: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A history query with every value checked.
#[derive(Debug, Clone)]
pub struct HistoryFilter {
    marketplaces: Vec<String>,
    pub window: Window,
}

impl HistoryQuery {
    /// Checks every value; `visible` are the marketplaces the caller sees.
    pub fn check(&self, visible: &[String]) -> Result<HistoryFilter, Refused> {
        Ok(HistoryFilter {
            marketplaces: listing::marketplaces(&self.marketplace, visible)?,
            window: Window::new(self.limit, self.offset)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
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

const HISTORY: &str = "marketplace_stock_history h
    JOIN variations v ON v.id = h.variation_id
    JOIN marketplaces m ON m.id = h.marketplace_id
    WHERE v.sku = $1 AND m.code = ANY($2)";

/// One page of a SKU's history on the filter's marketplaces, newest first.
pub async fn history(
    pool: &PgPool,
    sku: &str,
    filter: &HistoryFilter,
) -> sqlx::Result<Page<HistoryView>> {
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {HISTORY}"
    )))
    .bind(sku)
    .bind(&filter.marketplaces)
    .fetch_one(pool)
    .await?;
    let items = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT h.id, m.code AS marketplace, h.change_type, h.listed_before, h.listed_after,
                h.locked_before, h.locked_after, h.available_before, h.available_after,
                h.quantity_change, h.order_external_id AS order_id,
                h.order_item_external_id AS item_id, h.actor, h.notes, h.created_at
         FROM {HISTORY} ORDER BY h.id DESC LIMIT $3 OFFSET $4"
    )))
    .bind(sku)
    .bind(&filter.marketplaces)
    .bind(filter.window.limit)
    .bind(filter.window.offset)
    .fetch_all(pool)
    .await?;
    Ok(Page::new(filter.window, total, items))
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

/// The totals over the `visible` marketplaces' rows (a pool counts when
/// one of its rows is visible; the outbox backlog is the fleet's).
pub async fn totals(pool: &PgPool, visible: &[String]) -> sqlx::Result<Totals> {
    sqlx::query_as(
        "WITH seen AS (SELECT id FROM marketplaces WHERE code = ANY($1)),
              seen_rows AS (SELECT s.* FROM marketplace_stock s JOIN seen ON seen.id = s.marketplace_id),
              seen_pools AS (SELECT p.* FROM stock_pools p
                        WHERE EXISTS (SELECT 1 FROM seen_rows r WHERE r.variation_id = p.variation_id))
         SELECT
            (SELECT count(*) FROM seen_rows) AS stock_rows,
            (SELECT COALESCE(sum(listed_stock), 0)::bigint
             + (SELECT COALESCE(sum(on_hand), 0) FROM seen_pools) FROM seen_rows) AS listed_units,
            (SELECT COALESCE(sum(locked_stock), 0)::bigint FROM seen_rows) AS locked_units,
            (SELECT count(*) FROM marketplace_stock_locks l JOIN seen ON seen.id = l.marketplace_id
             WHERE lock_status = 'locked') AS active_locks,
            (SELECT count(*) FROM orders o JOIN seen ON seen.id = o.marketplace_id
             WHERE status IN ('unpaid', 'pending', 'accepted')) AS open_orders,
            (SELECT count(*) FROM orders o JOIN seen ON seen.id = o.marketplace_id
             WHERE has_unknown_sku) AS orders_with_unknown_sku,
            (SELECT count(*) FROM outbox) AS outbox_backlog,
            (SELECT COALESCE(sum(locked_stock - listed_stock), 0)::bigint FROM seen_rows s
             WHERE locked_stock > listed_stock
               AND NOT EXISTS (SELECT 1 FROM stock_pools p WHERE p.variation_id = s.variation_id))
            + (SELECT COALESCE(sum(GREATEST(k.locked - p.on_hand, 0)), 0)::bigint FROM seen_pools p
               JOIN LATERAL (SELECT sum(locked_stock) AS locked FROM marketplace_stock
                             WHERE variation_id = p.variation_id) k ON true) AS oversold_units",
    )
    .bind(visible)
    .fetch_one(pool)
    .await
}
