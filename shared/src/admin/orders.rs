//! The orders read model (API and pages): orders filtered, sorted and
//! paginated with their total; one order with its items, their locks, the
//! stock history it caused and its status changes; order statistics. Every
//! read covers only the marketplaces the caller sees.

use super::page::Page;
use crate::domain::OrderStatus;
use crate::domain::input::Invalid;
use crate::domain::listing::{self, Direction, Refused, Window, choice, given, like_pattern};
use crate::status_changes::StatusChangeView;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use std::collections::BTreeMap;
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
