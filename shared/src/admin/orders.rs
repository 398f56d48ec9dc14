//! The orders read model (API and pages): orders filtered, sorted and
//! paginated with their total; one order with its items, their locks, the
//! stock history it caused and its status changes; order statistics. Every
//! read covers only the marketplaces the caller sees.

mod detail;
mod stats;

pub use detail::{MootCommandView, OrderDetail, OrderHistoryView, OrderItemView, order};
pub use stats::{LastSync, OrderStats, Revenue, StatsFilter, StatsQuery, stats};

use super::page::Page;
use crate::domain::OrderStatus;
use crate::domain::input::Invalid;
use crate::domain::listing::{self, Direction, Refused, Window, choice, given, like_pattern};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use utoipa::{IntoParams, ToSchema};

/// An order's total and currency, read from the marketplace's own JSON
/// (Back Market `price`, Refurbed `total_charged`, WooCommerce `total`); a
/// total that is not a plain decimal is left out rather than guessed.
const ORDERS: &str = "orders o JOIN marketplaces m ON m.id = o.marketplace_id
    CROSS JOIN LATERAL (SELECT CASE m.kind WHEN 'backmarket' THEN o.raw->>'price'
        WHEN 'refurbed' THEN o.raw->>'total_charged' ELSE o.raw->>'total' END AS text) amount
    CROSS JOIN LATERAL (SELECT CASE WHEN amount.text ~ '^-?[0-9]{1,15}([.][0-9]{1,6})?$'
        THEN amount.text::numeric END AS total,
        COALESCE(o.raw->>'currency', o.raw->>'currency_code') AS currency) money";

/// The columns of an [`OrderView`] over [`ORDERS`].
const ORDER_COLUMNS: &str = "m.code AS marketplace, o.external_id AS order_id, o.status,
        o.raw_status, o.has_unknown_sku, o.placed_at, o.first_seen_at, o.updated_at,
        money.total::text AS total, money.currency,
        (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) AS items,
        (SELECT COALESCE(sum(i.quantity), 0)::bigint FROM order_items i
         WHERE i.order_id = o.id) AS units";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct OrderView {
    pub marketplace: String,
    pub order_id: String,
    /// The normalised status; null while the raw one is unknown to us.
    #[schema(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    /// The marketplace's own status.
    pub raw_status: String,
    pub has_unknown_sku: bool,
    pub items: i64,
    pub units: i64,
    /// The order's total as a decimal string, when the marketplace gave one.
    pub total: Option<String>,
    pub currency: Option<String>,
    pub placed_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Status filter values: the normalised statuses, and `unknown` (a raw status we cannot read).
const STATUSES: [&str; 7] = [
    "unpaid",
    "pending",
    "accepted",
    "shipped",
    "cancelled",
    "returned",
    "unknown",
];

/// What orders can be sorted by (`sort=`), each with its SQL over [`ORDERS`].
const SORTS: [(&str, &str); 6] = [
    ("placed", "COALESCE(o.placed_at, o.first_seen_at)"),
    ("updated", "o.updated_at"),
    ("status", "o.status"),
    ("marketplace", "m.code"),
    ("total", "money.total"),
    ("order_id", "o.external_id"),
];

/// Which orders; an empty filter means any.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    pub marketplace: Option<String>,
    /// A normalised status, or `unknown`.
    #[param(pattern = "^(unpaid|pending|accepted|shipped|cancelled|returned|unknown)?$")]
    pub status: Option<String>,
    /// Placed at or after: an RFC 3339 time or a date (its 00:00 UTC).
    pub since: Option<String>,
    /// Placed before: an RFC 3339 time or a date (its 00:00 UTC).
    pub until: Option<String>,
    /// Part of an order id or of an item's SKU, case-insensitive.
    pub search: Option<String>,
    /// Only orders holding an item whose SKU we do not know.
    pub unknown_sku: Option<bool>,
    /// placed, updated (the default), status, marketplace, total or order_id.
    #[param(pattern = "^(placed|updated|status|marketplace|total|order_id)?$")]
    pub sort: Option<String>,
    /// asc or desc (the default).
    #[param(pattern = "^(asc|desc)?$")]
    pub order: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// An order query with every value checked.
#[derive(Debug, Clone)]
pub struct OrderFilter {
    marketplaces: Vec<String>,
    status: Option<&'static str>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// A LIKE pattern.
    search: Option<String>,
    unknown_sku: bool,
    sort: &'static str,
    direction: Direction,
    pub window: Window,
}

impl OrderQuery {
    /// Checks every value; `visible` are the marketplaces the caller sees.
    pub fn check(&self, visible: &[String]) -> Result<OrderFilter, Refused> {
        let sort_names: Vec<&str> = SORTS.iter().map(|(name, _)| *name).collect();
        let sort = match given(&self.sort) {
            None => "updated",
            Some(text) => choice("sort", text, &sort_names)?,
        };
        let since = instant("since", &self.since)?;
        let until = instant("until", &self.until)?;
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(Invalid::new("until", "is not after since").into());
        }
        Ok(OrderFilter {
            marketplaces: listing::marketplaces(&self.marketplace, visible)?,
            status: given(&self.status)
                .map(|text| choice("status", text, &STATUSES))
                .transpose()?,
            since,
            until,
            search: given(&self.search).map(like_pattern),
            unknown_sku: self.unknown_sku.unwrap_or(false),
            sort: SORTS
                .iter()
                .find(|(name, _)| *name == sort)
                .map_or("o.updated_at", |(_, sql)| *sql),
            direction: Direction::parse(&self.order, Direction::Desc)?,
            window: Window::new(self.limit, self.offset)?,
        })
    }
}

/// An RFC 3339 time, or a date read as its 00:00 UTC.
fn instant(field: &str, text: &Option<String>) -> Result<Option<DateTime<Utc>>, Invalid> {
    let Some(text) = given(text) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|at| Some(at.and_utc()))
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!("{text:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"),
            )
        })
}

const ORDER_WHERE: &str = "m.code = ANY($1)
    AND ($2::text IS NULL OR o.status = $2 OR ($2 = 'unknown' AND o.status IS NULL))
    AND ($3::timestamptz IS NULL OR COALESCE(o.placed_at, o.first_seen_at) >= $3)
    AND ($4::timestamptz IS NULL OR COALESCE(o.placed_at, o.first_seen_at) < $4)
    AND ($5::text IS NULL OR o.external_id ILIKE $5
         OR EXISTS (SELECT 1 FROM order_items s WHERE s.order_id = o.id AND s.sku ILIKE $5))
    AND (NOT $6 OR o.has_unknown_sku)";

/// One page of the orders matching the filter, with the total.
pub async fn orders(pool: &PgPool, filter: &OrderFilter) -> sqlx::Result<Page<OrderView>> {
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {ORDERS} WHERE {ORDER_WHERE}"
    )))
    .bind(&filter.marketplaces)
    .bind(filter.status)
    .bind(filter.since)
    .bind(filter.until)
    .bind(&filter.search)
    .bind(filter.unknown_sku)
    .fetch_one(pool)
    .await?;
    let (sort, direction) = (filter.sort, filter.direction.sql());
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE {ORDER_WHERE}
         ORDER BY {sort} {direction} NULLS LAST, o.id {direction} LIMIT $7 OFFSET $8"
    )))
    .bind(&filter.marketplaces)
    .bind(filter.status)
    .bind(filter.since)
    .bind(filter.until)
    .bind(&filter.search)
    .bind(filter.unknown_sku)
    .bind(filter.window.limit)
    .bind(filter.window.offset)
    .fetch_all(pool)
    .await?;
    Ok(Page::new(filter.window, total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        let given = |text: &str| instant("since", &Some(text.to_owned()));
        assert_eq!(
            given("2026-12-01").unwrap().unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            given("2026-12-01T10:00:00+01:00")
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T09:00:00+00:00"
        );
        assert_eq!(given("yesterday").unwrap_err().field, "since");
        assert_eq!(instant("since", &Some(String::new())), Ok(None));
    }

    #[test]
    fn every_order_filter_value_is_checked() {
        let visible = vec!["backmarket".to_owned()];
        let refused = |edit: fn(&mut OrderQuery)| {
            let mut query = OrderQuery::default();
            edit(&mut query);
            query.check(&visible).err()
        };
        assert_eq!(refused(|_| {}), None);
        assert_eq!(refused(|q| q.status = Some("unknown".into())), None);
        assert!(matches!(
            refused(|q| q.status = Some("open".into())),
            Some(Refused::Unknown(_))
        ));
        assert!(matches!(
            refused(|q| q.sort = Some("price".into())),
            Some(Refused::Unknown(_))
        ));
        assert!(matches!(
            refused(|q| q.marketplace = Some("refurbed".into())),
            Some(Refused::Unknown(_))
        ));
        assert!(matches!(
            refused(|q| q.since = Some("soon".into())),
            Some(Refused::Invalid(_))
        ));
        assert!(matches!(
            refused(|q| {
                q.since = Some("2026-12-02".into());
                q.until = Some("2026-12-01".into());
            }),
            Some(Refused::Invalid(_))
        ));
        // Every normalised status is a filter value.
        for status in OrderStatus::ALL {
            assert!(STATUSES.contains(&status.as_str()));
        }
    }
}
