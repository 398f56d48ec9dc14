//! Order statistics over the marketplaces a caller sees: counts per status,
//! revenue per currency, orders with unknown SKUs, the last successful syncs.

use super::{ORDERS, STATUSES, instant};
use crate::domain::listing::{self, Refused};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Which orders the statistics cover.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    pub marketplace: Option<String>,
    /// Orders placed at or after: an RFC 3339 time or a date.
    pub since: Option<String>,
}

/// Order statistics over the marketplaces a caller sees.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderStats {
    pub orders: i64,
    /// Orders per normalised status (`unknown`: a raw status we cannot read);
    /// every status is listed, 0 included.
    pub by_status: BTreeMap<String, i64>,
    /// Per currency, the totals of orders paid and not undone (pending,
    /// accepted, shipped): neither unpaid, cancelled nor returned.
    pub revenue: Vec<Revenue>,
    pub orders_with_unknown_sku: i64,
    /// The last successful run of every (marketplace, sync type).
    pub last_sync: Vec<LastSync>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Revenue {
    pub currency: String,
    /// A decimal string.
    pub amount: String,
    pub orders: i64,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct LastSync {
    pub marketplace: String,
    pub sync_type: String,
    pub succeeded_at: DateTime<Utc>,
}

/// A stats query with its values checked.
#[derive(Debug, Clone)]
pub struct StatsFilter {
    marketplaces: Vec<String>,
    since: Option<DateTime<Utc>>,
}

impl StatsQuery {
    pub fn check(&self, visible: &[String]) -> Result<StatsFilter, Refused> {
        Ok(StatsFilter {
            marketplaces: listing::marketplaces(&self.marketplace, visible)?,
            since: instant("since", &self.since)?,
        })
    }
}

pub async fn stats(pool: &PgPool, filter: &StatsFilter) -> sqlx::Result<OrderStats> {
    let (marketplaces, since) = (&filter.marketplaces, filter.since);
    const SCOPE: &str = "m.code = ANY($1)
        AND ($2::timestamptz IS NULL OR COALESCE(o.placed_at, o.first_seen_at) >= $2)";
    let counts: Vec<(Option<String>, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT o.status, count(*), count(*) FILTER (WHERE o.has_unknown_sku)
         FROM {ORDERS} WHERE {SCOPE} GROUP BY o.status"
    )))
    .bind(marketplaces)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut by_status: BTreeMap<String, i64> = STATUSES
        .iter()
        .map(|status| ((*status).to_owned(), 0))
        .collect();
    let (mut orders, mut unknown_sku) = (0, 0);
    for (status, count, unknown) in counts {
        *by_status
            .entry(status.unwrap_or_else(|| "unknown".to_owned()))
            .or_default() += count;
        orders += count;
        unknown_sku += unknown;
    }
    let revenue = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT money.currency, sum(money.total)::text AS amount, count(*) AS orders
         FROM {ORDERS} WHERE {SCOPE} AND o.status IN ('pending', 'accepted', 'shipped')
           AND money.total IS NOT NULL AND money.currency IS NOT NULL
         GROUP BY money.currency ORDER BY money.currency"
    )))
    .bind(marketplaces)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let last_sync = sqlx::query_as(
        "SELECT m.code AS marketplace, r.sync_type, max(r.started_at) AS succeeded_at
         FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         WHERE m.code = ANY($1) AND r.status = 'succeeded'
         GROUP BY m.code, r.sync_type ORDER BY m.code, r.sync_type",
    )
    .bind(marketplaces)
    .fetch_all(pool)
    .await?;
    Ok(OrderStats {
        orders,
        by_status,
        revenue,
        orders_with_unknown_sku: unknown_sku,
        last_sync,
    })
}
