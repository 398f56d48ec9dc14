//! `/api/v1` stock and locks: rows, history, corrections and locks. Reads
//! need the viewer role; stock corrections the operator role. (Orders, syncs,
//! dead letters and the rest are in their own modules.)

use super::auth::require;
use super::error::{JsonBody, QueryParams};
use super::{Api, ApiError};
use crate::admin::locks::{self, LockList, LockQuery};
use crate::admin::overview::{self, HistoryQuery, HistoryView};
use crate::admin::page::Page;
use crate::admin::stock::{self, Correction, StockQuery, StockRowView};
use crate::admin::tokens::{Caller, Role};
use crate::domain::input::{self, Invalid};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(stock_rows))
        .routes(routes!(stock_of_sku))
        .routes(routes!(history))
        .routes(routes!(correct))
        .routes(routes!(locks))
}

/// Stock rows by SKU then marketplace: listed, locked, available, what the
/// marketplace is shown (buffered) and was last pushed.
#[utoipa::path(get, path = "/api/v1/stock", tag = "stock", params(StockQuery),
    responses((status = 200, body = Page<StockRowView>)))]
async fn stock_rows(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<StockQuery>,
) -> Result<Json<Page<StockRowView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    Ok(Json(stock::rows(&api.db, &filter).await?))
}

/// Every marketplace row of a SKU (404 when it has none the caller sees).
#[utoipa::path(get, path = "/api/v1/stock/{sku}", tag = "stock",
    params(("sku" = String, Path, description = "the variation's SKU")),
    responses((status = 200, body = Vec<StockRowView>)))]
async fn stock_of_sku(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<Vec<StockRowView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    Ok(Json(stock::show(&api.db, &sku, Some(&codes)).await?))
}

/// A SKU's append-only stock history, newest first.
#[utoipa::path(get, path = "/api/v1/stock/{sku}/history", tag = "stock",
    params(("sku" = String, Path, description = "the variation's SKU"), HistoryQuery),
    responses((status = 200, body = Page<HistoryView>)))]
async fn history(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Json<Page<HistoryView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    let page = overview::history(&api.db, &sku, &filter).await?;
    if page.total == 0 {
        // No history: an unknown SKU (or one outside the token's marketplaces) is a 404.
        stock::show(&api.db, &sku, Some(&codes)).await?;
    }
    Ok(Json(page))
}

/// `{"set": 12, "reason": "counted"}` or `{"adjust": -2, "reason": "damaged"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CorrectionRequest {
    /// The counted quantity (wide, so an out-of-range count is refused with its bound, not a type error).
    set: Option<i64>,
    /// Units to add (positive) or remove (negative).
    adjust: Option<i64>,
    /// Why: kept in the history.
    reason: String,
    /// Create the SKU when it is new; without it an unknown SKU is refused.
    #[serde(default)]
    create: bool,
}

/// Corrects a row's listed stock (operator): a count (`set`) or a change
/// (`adjust`), written to the history and announced through the outbox.
#[utoipa::path(post, path = "/api/v1/stock/{sku}/{marketplace}", tag = "stock",
    params(
        ("sku" = String, Path, description = "the variation's SKU"),
        ("marketplace" = String, Path, description = "the marketplace's code"),
    ),
    request_body = CorrectionRequest,
    responses((status = 200, body = StockRowView)))]
async fn correct(
    State(api): State<Api>,
    caller: Caller,
    Path((sku, marketplace)): Path<(String, String)>,
    JsonBody(request): JsonBody<CorrectionRequest>,
) -> Result<Json<StockRowView>, ApiError> {
    require(&caller, Role::Operator)?;
    if !caller.scope.sees(&marketplace) {
        return Err(ApiError::NotFound(format!(
            "unknown marketplace {marketplace:?}"
        )));
    }
    let max = crate::config::max_stock_level();
    let correction = match (request.set, request.adjust) {
        (Some(listed), None) => {
            let listed = input::stock_level("set", listed, max)?;
            if request.create {
                Correction::Create(listed)
            } else {
                Correction::Set(listed)
            }
        }
        (None, Some(delta)) => Correction::Adjust(i32::try_from(delta).map_err(|_| {
            Invalid::new(
                "adjust",
                format!("{delta} units is beyond the maximum of {max} per stock row"),
            )
        })?),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of \"set\" (a counted quantity) or \"adjust\" (units to add or remove)"
                    .into(),
            ));
        }
    };
    let actor = format!("api:{}", caller.name);
    let row = stock::correct(
        &api.db,
        &sku,
        &marketplace,
        correction,
        &actor,
        &request.reason,
    )
    .await?;
    Ok(Json(row))
}

/// Stock locks, oldest first, with the count per status under the same filters.
#[utoipa::path(get, path = "/api/v1/locks", tag = "stock", params(LockQuery),
    responses((status = 200, body = LockList)))]
async fn locks(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<LockQuery>,
) -> Result<Json<LockList>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    Ok(Json(locks::locks(&api.db, &filter).await?))
}
