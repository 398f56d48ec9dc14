//! `stockfleet marketplace list|set`: the marketplaces table without SQL.

use crate::domain::input::{self, Invalid};
use serde::Serialize;
use sqlx::{FromRow, PgPool};

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct MarketplaceView {
    pub id: i32,
    pub code: String,
    pub kind: String,
    pub base_url: String,
    pub credential_env: String,
    pub sync_enabled: bool,
    /// The slowest new-orders poll, and the modified sync's interval.
    pub order_poll_interval_seconds: i32,
    /// The fastest new-orders poll, where the request budget has headroom.
    pub order_poll_fastest_seconds: i32,
    pub sync_interval_hours: i32,
    pub sync_offset_minutes: i32,
    pub rate_limit_requests: i32,
    pub rate_limit_window_seconds: i32,
    pub quantity_update_limit: Option<i32>,
    pub quantity_update_window_seconds: i32,
    pub default_buffer_percentage: f64,
}

/// Changes to one marketplace; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct MarketplaceChange {
    pub base_url: Option<String>,
    pub sync_enabled: Option<bool>,
    pub order_poll_interval_seconds: Option<i32>,
    pub order_poll_fastest_seconds: Option<i32>,
    pub sync_offset_minutes: Option<i32>,
    pub rate_limit: Option<(i32, i32)>,
    /// `Some(None)` removes the cap on quantity updates; `Some(Some((n, s)))`
    /// allows n updates per s seconds.
    pub quantity_updates: Option<Option<(i32, i32)>>,
    pub default_buffer_percentage: Option<f64>,
}

impl MarketplaceChange {
    /// The edge's rules for a change to `current`: a parsed http(s) base URL,
    /// a sync offset inside its interval.
    pub fn check(&self, current: &MarketplaceView) -> Result<(), Invalid> {
        if let Some(url) = &self.base_url {
            input::base_url("base_url", url)?;
        }
        if let Some(offset) = self.sync_offset_minutes {
            input::sync_offset("sync_offset_minutes", offset, current.sync_interval_hours)?;
        }
        Ok(())
    }
}

/// The marketplace with this code, if any.
pub async fn get(pool: &PgPool, code: &str) -> sqlx::Result<Option<MarketplaceView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE code = $1")))
        .bind(code)
        .fetch_optional(pool)
        .await
}

const SELECT: &str = "SELECT id, code, kind, base_url, credential_env, sync_enabled,
        order_poll_interval_seconds, order_poll_fastest_seconds, sync_interval_hours, sync_offset_minutes,
        rate_limit_requests, rate_limit_window_seconds,
        quantity_update_limit, quantity_update_window_seconds,
        default_buffer_percentage::float8 AS default_buffer_percentage
    FROM marketplaces";

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<MarketplaceView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY id")))
        .fetch_all(pool)
        .await
}

/// Applies `change` to the marketplace with this code; `None` when unknown.
/// The table's CHECK constraints reject out-of-range values.
pub async fn set(
    pool: &PgPool,
    code: &str,
    change: &MarketplaceChange,
) -> sqlx::Result<Option<MarketplaceView>> {
    let updated = sqlx::query(
        "UPDATE marketplaces SET
             base_url = COALESCE($2, base_url),
             sync_enabled = COALESCE($3, sync_enabled),
             order_poll_interval_seconds = COALESCE($4, order_poll_interval_seconds),
             sync_offset_minutes = COALESCE($5, sync_offset_minutes),
             rate_limit_requests = COALESCE($6, rate_limit_requests),
             rate_limit_window_seconds = COALESCE($7, rate_limit_window_seconds),
             default_buffer_percentage = COALESCE($8::float8::numeric, default_buffer_percentage),
             quantity_update_limit = CASE WHEN $9 THEN $10 ELSE quantity_update_limit END,
             quantity_update_window_seconds = COALESCE($11, quantity_update_window_seconds),
             order_poll_fastest_seconds = COALESCE($12, order_poll_fastest_seconds),
             updated_at = now()
         WHERE code = $1",
    )
    .bind(code)
    .bind(&change.base_url)
    .bind(change.sync_enabled)
    .bind(change.order_poll_interval_seconds)
    .bind(change.sync_offset_minutes)
    .bind(change.rate_limit.map(|(requests, _)| requests))
    .bind(change.rate_limit.map(|(_, window)| window))
    .bind(change.default_buffer_percentage)
    .bind(change.quantity_updates.is_some())
    .bind(change.quantity_updates.flatten().map(|(limit, _)| limit))
    .bind(change.quantity_updates.flatten().map(|(_, window)| window))
    .bind(change.order_poll_fastest_seconds)
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    get(pool, code).await
}
