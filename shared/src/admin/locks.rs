//! The locks read model (the API and the `/locks` page): every stock lock
//! of the caller's marketplaces, filtered by marketplace, SKU (a substring,
//! case-insensitive), order id, status and age, oldest first, one page at a
//! time, with the count per status under the same filters.

use super::page::Page;
use crate::domain::input::Invalid;
use crate::domain::listing::{self, Refused, Window, choice, given, like_pattern};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool, Row};
use utoipa::{IntoParams, ToSchema};

/// A lock's states (the `lock_status` column).
pub const LOCK_STATUSES: [&str; 3] = ["locked", "consumed", "released"];

/// The oldest age filter taken: ten years.
const MAX_AGE_HOURS: i64 = 87_600;

/// Which locks. `status` absent means locked (the ones holding stock), and
/// empty means any; every other filter left empty means any.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LockQuery {
    pub marketplace: Option<String>,
    /// Part of the SKU, case-insensitive.
    pub sku: Option<String>,
    /// The marketplace's order id, exactly.
    pub order_id: Option<String>,
    /// locked (when absent), consumed or released; empty: any.
    #[param(pattern = "^(locked|consumed|released)?$")]
    pub status: Option<String>,
    /// Only locks taken more than this many hours ago (the stale ones).
    #[param(minimum = 0, maximum = 87600)]
    pub older_than_hours: Option<i64>,
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A lock query with every value checked.
#[derive(Debug, Clone)]
pub struct LockFilter {
    marketplaces: Vec<String>,
    /// One SKU exactly (a listing's locks).
    sku: Option<String>,
    /// A LIKE pattern over SKUs.
    sku_like: Option<String>,
    order_id: Option<String>,
    status: Option<&'static str>,
    older_than_hours: Option<i32>,
    pub window: Window,
}

impl LockQuery {
    /// Checks every value; `visible` are the marketplaces the caller sees.
    pub fn check(&self, visible: &[String]) -> Result<LockFilter, Refused> {
        let status = match self.status.as_deref() {
            None => Some("locked"),
            Some(_) => given(&self.status)
                .map(|text| choice("status", text, &LOCK_STATUSES))
                .transpose()?,
        };
        let older_than_hours = self
            .older_than_hours
            .map(|hours| {
                i32::try_from(hours)
                    .ok()
                    .filter(|_| (0..=MAX_AGE_HOURS).contains(&hours))
                    .ok_or_else(|| {
                        Invalid::new(
                            "older_than_hours",
                            format!("{hours} is outside 0 to {MAX_AGE_HOURS} hours"),
                        )
                    })
            })
            .transpose()?;
        Ok(LockFilter {
            marketplaces: listing::marketplaces(&self.marketplace, visible)?,
            sku: None,
            sku_like: given(&self.sku).map(like_pattern),
            order_id: given(&self.order_id).map(str::to_owned),
            status,
            older_than_hours,
            window: Window::new(self.limit, self.offset)?,
        })
    }
}

impl LockFilter {
    /// The first page of one SKU's active locks on the `visible` marketplaces.
    pub fn active_of_sku(visible: &[String], sku: &str) -> Self {
        Self {
            marketplaces: visible.to_vec(),
            sku: Some(sku.to_owned()),
            sku_like: None,
            order_id: None,
            status: Some("locked"),
            older_than_hours: None,
            window: Window::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct LockView {
    pub id: i64,
    pub marketplace: String,
    pub sku: String,
    pub order_id: String,
    pub item_id: String,
    pub quantity: i32,
    /// locked, consumed or released.
    pub status: String,
    pub locked_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// Locks per status under a query's other filters.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LockCounts {
    pub locked: i64,
    pub consumed: i64,
    pub released: i64,
}

/// One page of locks, with the counts per status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LockList {
    #[serde(flatten)]
    pub page: Page<LockView>,
    pub by_status: LockCounts,
}

const LOCKS: &str = "marketplace_stock_locks l
    JOIN marketplace_stock s ON s.id = l.stock_id
    JOIN variations v ON v.id = s.variation_id
    JOIN marketplaces m ON m.id = l.marketplace_id";

/// Every filter but the status ($1 to $5).
const LOCK_WHERE: &str = "m.code = ANY($1) AND ($2::text IS NULL OR v.sku = $2)
    AND ($3::text IS NULL OR v.sku ILIKE $3) AND ($4::text IS NULL OR l.order_external_id = $4)
    AND ($5::int IS NULL OR COALESCE(l.locked_at, l.created_at) < now() - make_interval(hours => $5))";

/// The page of locks the filter asks for, oldest first: the oldest active
/// locks are the ones to look at.
pub async fn locks(pool: &PgPool, filter: &LockFilter) -> sqlx::Result<LockList> {
    let counted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT l.lock_status, count(*) AS n FROM {LOCKS} WHERE {LOCK_WHERE} GROUP BY 1"
    )))
    .bind(&filter.marketplaces)
    .bind(&filter.sku)
    .bind(&filter.sku_like)
    .bind(&filter.order_id)
    .bind(filter.older_than_hours)
    .fetch_all(pool)
    .await?;
    let mut by_status = LockCounts::default();
    for row in counted {
        let n: i64 = row.get("n");
        match row.get::<String, _>("lock_status").as_str() {
            "locked" => by_status.locked = n,
            "consumed" => by_status.consumed = n,
            _ => by_status.released = n,
        }
    }
    let total = match filter.status {
        Some("locked") => by_status.locked,
        Some("consumed") => by_status.consumed,
        Some(_) => by_status.released,
        None => by_status.locked + by_status.consumed + by_status.released,
    };
    let items = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT l.id, m.code AS marketplace, v.sku, l.order_external_id AS order_id,
                l.order_item_external_id AS item_id, l.quantity_locked AS quantity,
                l.lock_status AS status, l.locked_at, l.released_at, l.consumed_at
         FROM {LOCKS} WHERE {LOCK_WHERE} AND ($6::text IS NULL OR l.lock_status = $6)
         ORDER BY COALESCE(l.locked_at, l.created_at), l.id LIMIT $7 OFFSET $8"
    )))
    .bind(&filter.marketplaces)
    .bind(&filter.sku)
    .bind(&filter.sku_like)
    .bind(&filter.order_id)
    .bind(filter.older_than_hours)
    .bind(filter.status)
    .bind(filter.window.limit)
    .bind(filter.window.offset)
    .fetch_all(pool)
    .await?;
    Ok(LockList {
        page: Page::new(filter.window, total, items),
        by_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible() -> Vec<String> {
        vec!["backmarket".to_owned(), "woocommerce".to_owned()]
    }

    #[test]
    fn an_absent_status_means_locked_and_an_empty_one_any() {
        let absent = LockQuery::default().check(&visible()).unwrap();
        assert_eq!(absent.status, Some("locked"));
        let empty = LockQuery {
            status: Some(String::new()),
            ..LockQuery::default()
        };
        assert_eq!(empty.check(&visible()).unwrap().status, None);
    }

    #[test]
    fn unknown_values_and_ages_out_of_range_are_refused_by_name() {
        let typo = LockQuery {
            status: Some("lockd".into()),
            ..LockQuery::default()
        };
        assert!(
            matches!(typo.check(&visible()), Err(Refused::Unknown(u)) if u.0.field == "status")
        );
        let hidden = LockQuery {
            marketplace: Some("refurbed".into()),
            ..LockQuery::default()
        };
        assert!(matches!(hidden.check(&visible()), Err(Refused::Unknown(_))));
        for hours in [-1, MAX_AGE_HOURS + 1, i64::MAX] {
            let old = LockQuery {
                older_than_hours: Some(hours),
                ..LockQuery::default()
            };
            assert!(
                matches!(old.check(&visible()), Err(Refused::Invalid(i)) if i.field == "older_than_hours"),
                "{hours}"
            );
        }
    }

    #[test]
    fn empty_filters_mean_any_and_a_sku_matches_as_a_substring() {
        let query = LockQuery {
            marketplace: Some(" ".into()),
            sku: Some("ip_14".into()),
            order_id: Some(String::new()),
            ..LockQuery::default()
        };
        let filter = query.check(&visible()).unwrap();
        assert_eq!(filter.marketplaces, visible());
        assert_eq!(filter.sku_like.as_deref(), Some("%ip\\_14%"));
        assert_eq!(filter.order_id, None);
    }
}
