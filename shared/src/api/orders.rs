//! `/api/v1/orders`: orders (filtered, sorted, paginated), one order with
//! its items, locks and history, and order statistics; viewer role, over
//! the caller's marketplaces (another marketplace's order answers 404).

use super::auth::require;
use super::error::QueryParams;
use super::{Api, ApiError};
use crate::admin::orders::{self, OrderDetail, OrderQuery, OrderStats, OrderView, StatsQuery};
use crate::admin::page::Page;
use crate::admin::tokens::{Caller, Role};
use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(order_list))
        .routes(routes!(order_stats))
        .routes(routes!(order))
}

/// Orders, most recently changed first unless sorted otherwise.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = Page<OrderView>)))]
async fn order_list(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<OrderQuery>,
) -> Result<Json<Page<OrderView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    Ok(Json(orders::orders(&api.db, &filter).await?))
}

/// Counts per status, revenue per currency, orders with unknown SKUs and
/// the last successful sync of every marketplace and type.
#[utoipa::path(get, path = "/api/v1/orders/stats", tag = "orders", params(StatsQuery),
    responses((status = 200, body = OrderStats)))]
async fn order_stats(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<OrderStats>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    Ok(Json(orders::stats(&api.db, &filter).await?))
}

/// One order: items with their locks, the stock history it caused, the
/// commands that became no-ops, and the marketplace's raw JSON.
#[utoipa::path(get, path = "/api/v1/orders/{marketplace}/{order_id}", tag = "orders",
    params(
        ("marketplace" = String, Path, description = "the marketplace's code"),
        ("order_id" = String, Path, description = "the marketplace's order id"),
    ),
    responses((status = 200, body = OrderDetail)))]
async fn order(
    State(api): State<Api>,
    caller: Caller,
    Path((marketplace, order_id)): Path<(String, String)>,
) -> Result<Json<OrderDetail>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let order = orders::order(&api.db, &codes, &marketplace, &order_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order {order_id:?} on {marketplace:?}")))?;
    Ok(Json(order))
}
