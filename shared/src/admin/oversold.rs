//! Oversold units: stock rows where the marketplaces took more orders than we
//! listed (locked > listed). Each such unit was sold on a marketplace that
//! showed a quantity we did not have. Reported by `stockfleet validate`, the
//! dashboard's overview and the `stockfleet_oversold_units` gauge. A pooled
//! row's units are its pool's: pools are checked as a whole
//! ([`super::pool_checks::oversold`]).

use serde::Serialize;
use sqlx::{FromRow, PgPool};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct OversoldRow {
    pub stock_id: i64,
    pub sku: String,
    pub marketplace: String,
    pub listed: i32,
    pub locked: i32,
    /// locked - listed.
    pub units: i32,
}

/// Every row with more units locked than listed, worst first.
pub async fn rows(pool: &PgPool) -> sqlx::Result<Vec<OversoldRow>> {
    sqlx::query_as(
        "SELECT s.id AS stock_id, v.sku, m.code AS marketplace, s.listed_stock AS listed,
                s.locked_stock AS locked, s.locked_stock - s.listed_stock AS units
         FROM marketplace_stock s
         JOIN variations v ON v.id = s.variation_id JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE s.locked_stock > s.listed_stock AND NOT EXISTS (
             SELECT 1 FROM stock_pools p WHERE p.variation_id = s.variation_id)
         ORDER BY units DESC, v.sku, m.code",
    )
    .fetch_all(pool)
    .await
}

/// Oversold units per marketplace code (every marketplace listed, 0 included).
pub async fn by_marketplace(pool: &PgPool) -> sqlx::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.code, COALESCE(sum(s.locked_stock - s.listed_stock)
                    FILTER (WHERE s.locked_stock > s.listed_stock AND p.variation_id IS NULL), 0)::bigint
         FROM marketplaces m LEFT JOIN marketplace_stock s ON s.marketplace_id = m.id
         LEFT JOIN stock_pools p ON p.variation_id = s.variation_id
         GROUP BY m.code",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Sets `stockfleet_oversold_units{marketplace}`; returns the fleet's total.
pub async fn record(pool: &PgPool) -> sqlx::Result<i64> {
    let counts = by_marketplace(pool).await?;
    for (code, units) in &counts {
        metrics::gauge!("stockfleet_oversold_units", "marketplace" => code.clone())
            .set(*units as f64);
    }
    Ok(counts.values().sum())
}
