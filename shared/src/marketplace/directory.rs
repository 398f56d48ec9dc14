//! The marketplaces table, cached per process.

use sqlx::{FromRow, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::RwLock;

#[derive(Debug, Clone, FromRow)]
pub struct MarketplaceRow {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub credential_env: String,
    pub sync_enabled: bool,
    pub lock_unpaid_orders: bool,
    /// The slowest new-orders poll, and the modified sync's interval.
    pub order_poll_interval_seconds: i32,
    /// The fastest new-orders poll, where the budget has headroom.
    pub order_poll_fastest_seconds: i32,
    pub care_poll_interval_seconds: i32,
    pub incomplete_poll_interval_seconds: i32,
    pub modified_overlap_seconds: i32,
    /// The publisher's pace: at most this many requests per window.
    pub rate_limit_requests: i32,
    pub rate_limit_window_seconds: i32,
    /// At most this many quantity updates per `quantity_update_window_seconds`
    /// (Back Market's hourly cap on listing updates); None: no such cap.
    pub quantity_update_limit: Option<i32>,
    pub quantity_update_window_seconds: i32,
}

impl MarketplaceRow {
    /// Whether an adapter built for `self` still serves `other`: same API,
    /// address, credential and pace (request rate and quantity-update budget;
    /// schedules do not matter to an adapter).
    pub fn same_connection(&self, other: &MarketplaceRow) -> bool {
        (self.id, &self.kind, &self.base_url, &self.credential_env)
            == (
                other.id,
                &other.kind,
                &other.base_url,
                &other.credential_env,
            )
            && (self.rate_limit_requests, self.rate_limit_window_seconds)
                == (other.rate_limit_requests, other.rate_limit_window_seconds)
            && (
                self.quantity_update_limit,
                self.quantity_update_window_seconds,
            ) == (
                other.quantity_update_limit,
                other.quantity_update_window_seconds,
            )
    }
}

pub async fn load_all(pool: &PgPool) -> sqlx::Result<Vec<MarketplaceRow>> {
    sqlx::query_as(
        "SELECT id, code, name, kind, base_url, credential_env, sync_enabled, lock_unpaid_orders,
                order_poll_interval_seconds, order_poll_fastest_seconds, care_poll_interval_seconds,
                incomplete_poll_interval_seconds, modified_overlap_seconds,
                rate_limit_requests, rate_limit_window_seconds,
                quantity_update_limit, quantity_update_window_seconds
         FROM marketplaces ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// Every marketplace's code, in id order (each has its publisher queue).
pub async fn codes(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT code FROM marketplaces ORDER BY id")
        .fetch_all(pool)
        .await
}

/// Marketplaces by code; an unknown code reloads the table once, so a
/// marketplace added while the fleet runs is found without a restart.
pub struct MarketplaceDirectory {
    pool: PgPool,
    by_code: RwLock<HashMap<String, Arc<MarketplaceRow>>>,
}

impl MarketplaceDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            by_code: RwLock::default(),
        }
    }

    pub async fn get(&self, code: &str) -> sqlx::Result<Option<Arc<MarketplaceRow>>> {
        if let Some(found) = self.by_code.read().await.get(code) {
            return Ok(Some(found.clone()));
        }
        let fresh: HashMap<_, _> = load_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| (row.code.clone(), Arc::new(row)))
            .collect();
        let found = fresh.get(code).cloned();
        *self.by_code.write().await = fresh;
        Ok(found)
    }
}

/// The adapter configuration of a marketplace row; the credential comes from
/// the environment variable the row names, never from the database.
pub fn adapter_config(
    row: &MarketplaceRow,
) -> Result<super::MarketplaceConfig, super::MarketplaceError> {
    let kind: super::MarketplaceKind =
        row.kind
            .parse()
            .map_err(|error: String| super::MarketplaceError::Permanent {
                status: None,
                message: format!("marketplace {}: {error}", row.code),
            })?;
    let credential =
        std::env::var(&row.credential_env).map_err(|_| super::MarketplaceError::Permanent {
            status: None,
            message: format!(
                "marketplace {}: set the environment variable {} to its API credential",
                row.code, row.credential_env
            ),
        })?;
    let mut config =
        super::MarketplaceConfig::new(kind, &row.base_url, super::Secret::new(credential));
    config.code = row.code.clone();
    Ok(config)
}
