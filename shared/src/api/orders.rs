//! `/api/v1/orders`: orders (filtered, sorted, paginated), one order with
//! its items, locks and history, and order statistics; viewer role, over
//! the caller's marketplaces (another marketplace's order answers 404).

use super::auth::require;
use super::error::{JsonBody, QueryParams};
use super::{Api, ApiError};
use crate::admin::orders::{self, OrderDetail, OrderQuery, OrderStats, OrderView, StatsQuery};
use crate::admin::page::Page;
use crate::admin::tokens::{Caller, Role};
use crate::domain::OrderStatus;
use crate::domain::input::Invalid;
use crate::events::CommandTracking;
use crate::status_changes::{self, StatusChangeView};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(order_list))
        .routes(routes!(order_stats))
        .routes(routes!(order))
        .routes(routes!(change_status))
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

/// `{"status": "shipped", "tracking": {"number": "1Z999", "carrier": "UPS"}}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusChangeBody {
    /// accepted, shipped, cancelled or returned.
    #[schema(pattern = "^(accepted|shipped|cancelled|returned)$")]
    status: String,
    /// Item ids to move; empty or absent: every item of the order.
    #[serde(default)]
    items: Vec<String>,
    /// Tracking of a shipment (Back Market needs the number to ship).
    tracking: Option<TrackingBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TrackingBody {
    number: Option<String>,
    url: Option<String>,
    carrier: Option<String>,
}

/// Asks the marketplace to move the order (operator): an illegal move for
/// this marketplace answers 409 and sends nothing; a legal one is recorded
/// with the caller and sent through the publisher (202). Its state (pending,
/// done, failed) is in the order's `status_changes`.
#[utoipa::path(put, path = "/api/v1/orders/{marketplace}/{order_id}/status", tag = "orders",
    params(
        ("marketplace" = String, Path, description = "the marketplace's code"),
        ("order_id" = String, Path, description = "the marketplace's order id"),
    ),
    request_body = StatusChangeBody,
    responses(
        (status = 202, body = StatusChangeView),
        (status = 409, description = "not a move this marketplace makes from the order's status, or one still pending", body = super::error::ErrorBody),
    ))]
async fn change_status(
    State(api): State<Api>,
    caller: Caller,
    Path((marketplace, order_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<StatusChangeBody>,
) -> Result<(StatusCode, Json<StatusChangeView>), ApiError> {
    require(&caller, Role::Operator)?;
    if !caller.scope.sees(&marketplace) {
        return Err(ApiError::NotFound(format!(
            "no order {order_id:?} on {marketplace:?}"
        )));
    }
    let target: OrderStatus = body.status.parse().map_err(|reason: String| {
        Invalid::new(
            "status",
            format!("{reason}; use accepted, shipped, cancelled or returned"),
        )
    })?;
    let actor = format!("api:{}", caller.name);
    let request = status_changes::Request {
        marketplace: &marketplace,
        order_id: &order_id,
        target,
        items: &body.items,
        tracking: body.tracking.map(|t| CommandTracking {
            number: t.number,
            url: t.url,
            carrier: t.carrier,
        }),
        actor: &actor,
    };
    let change = status_changes::request(&api.db, &request).await?;
    tracing::info!(caller = %caller.name, %marketplace, %order_id, %target, "order status change requested");
    Ok((StatusCode::ACCEPTED, Json(change)))
}
