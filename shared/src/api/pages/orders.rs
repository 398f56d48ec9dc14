//! `/orders`: the orders of the caller's marketplaces, with the API's
//! filters (marketplace, status, dates, search), sortable column headers and
//! pagination links. Every link is a plain GET, so it works without script.

use super::layout::{page as layout, time};
use super::{marketplace_choice, pager, query_string, refusal, segment};
use crate::admin::orders::{self, OrderQuery};
use crate::admin::tokens::Caller;
use crate::api::{Api, ApiError};
use crate::domain::OrderStatus;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

/// Columns that sort, with the `sort=` value each sets.
const SORTABLE: [(&str, &str); 6] = [
    ("marketplace", "marketplace"),
    ("order", "order_id"),
    ("status", "status"),
    ("total", "total"),
    ("placed", "placed"),
    ("updated", "updated"),
];

pub(super) async fn page(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
    Query(query): Query<OrderQuery>,
) -> Response {
    render(&api, caller, query).await.unwrap_or_else(refusal)
}

async fn render(
    api: &Api,
    caller: Result<Caller, ApiError>,
    query: OrderQuery,
) -> Result<Response, ApiError> {
    let caller = caller?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    let found = orders::orders(&api.db, &filter).await?;
    let link = |sort: Option<&str>, order: Option<&str>, offset: Option<i64>| {
        let offset = offset.map(|o| o.to_string());
        let limit = query.limit.map(|l| l.to_string());
        format!(
            "/orders{}",
            query_string(&[
                ("marketplace", query.marketplace.as_deref()),
                ("status", query.status.as_deref()),
                ("since", query.since.as_deref()),
                ("until", query.until.as_deref()),
                ("search", query.search.as_deref()),
                ("sort", sort),
                ("order", order),
                ("limit", limit.as_deref()),
                ("offset", offset.as_deref()),
            ])
        )
    };
    let sort = query
        .sort
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("updated");
    let descending = query.order.as_deref() != Some("asc");
    let body = html! {
        h1 { "Orders" }
        form method="get" action="/orders" {
            (marketplace_choice(&codes, query.marketplace.as_deref()))
            " "
            label { "status "
                select name="status" {
                    option value="" { "any" }
                    @for status in OrderStatus::ALL.iter().map(|s| s.as_str()).chain(["unknown"]) {
                        option value=(status) selected[query.status.as_deref() == Some(status)] { (status) }
                    }
                }
            }
            " "
            label { "placed since " input type="date" name="since" value=(query.since.clone().unwrap_or_default()); }
            " "
            label { "until " input type="date" name="until" value=(query.until.clone().unwrap_or_default()); }
            " "
            label { "order id or SKU " input name="search" value=(query.search.clone().unwrap_or_default()); }
            input type="hidden" name="sort" value=(sort);
            " " button { "Filter" }
        }
        table {
            tr {
                @for (label, key) in SORTABLE {
                    @let active = sort == key;
                    @let order = if active && descending { "asc" } else { "desc" };
                    th { a href=(link(Some(key), Some(order), None)) { (label) @if active { (if descending { " ▼" } else { " ▲" }) } } }
                }
                th { "items" } th { "units" }
            }
            @for order in &found.items {
                tr {
                    td { (order.marketplace) }
                    td { a href={ "/orders/" (segment(&order.marketplace)) "/" (segment(&order.order_id)) } { (order.order_id) } }
                    td { (order.status.clone().unwrap_or_else(|| "unknown".into())) " (" (order.raw_status) ")"
                         @if order.has_unknown_sku { span.bad { " unknown SKU" } } }
                    td.num { (order.total.clone().unwrap_or_else(|| "–".into())) " " (order.currency.clone().unwrap_or_default()) }
                    td { (time(order.placed_at)) }
                    td { (time(Some(order.updated_at))) }
                    td.num { (order.items) } td.num { (order.units) }
                }
            }
        }
        (pager(found.total, found.items.len(), filter.window, |offset| link(Some(sort), query.order.as_deref(), Some(offset))))
    };
    Ok(layout("Orders", "/orders", body).into_response())
}
