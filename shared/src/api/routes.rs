//! `/api/v1` stock and locks: rows, history, corrections and locks. Reads
//! need the viewer role; stock corrections the operator role. (Orders, syncs,
//! dead letters and the rest are in their own modules.)

use super::auth::require;
use super::error::{JsonBody, QueryParams};
use super::{Api, ApiError};
use crate::admin::overview::{self, LockQuery};
use crate::admin::stock::{self, Correction, StockQuery};
use crate::admin::tokens::{Caller, Role};
use crate::domain::input::{self, Invalid};
use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

type Answer = Result<Json<Value>, ApiError>;

fn answer(value: impl serde::Serialize) -> Answer {
    Ok(Json(
        serde_json::to_value(value).map_err(anyhow::Error::from)?,
    ))
}

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .route("/api/v1/stock", get(stock_rows))
        .route("/api/v1/stock/{sku}", get(stock_of_sku))
        .route("/api/v1/stock/{sku}/history", get(history))
        .route("/api/v1/stock/{sku}/{marketplace}", post(correct))
        .route("/api/v1/locks", get(locks))
}

async fn stock_rows(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<StockQuery>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(stock::rows(&api.db, &query).await?)
}

async fn stock_of_sku(State(api): State<Api>, caller: Caller, Path(sku): Path<String>) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(stock::show(&api.db, &sku).await?)
}

#[derive(Deserialize)]
struct HistoryQuery {
    marketplace: Option<String>,
    limit: Option<i64>,
}

async fn history(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    let rows = overview::history(&api.db, &sku, query.marketplace.as_deref(), query.limit).await?;
    answer(rows)
}

/// `{"set": 12, "reason": "counted"}` or `{"adjust": -2, "reason": "damaged"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectionRequest {
    /// Wide, so an out-of-range count is refused with its bound, not a type error.
    set: Option<i64>,
    adjust: Option<i64>,
    reason: String,
    /// Create the SKU when it is new; without it an unknown SKU is refused.
    #[serde(default)]
    create: bool,
}

async fn correct(
    State(api): State<Api>,
    caller: Caller,
    Path((sku, marketplace)): Path<(String, String)>,
    JsonBody(request): JsonBody<CorrectionRequest>,
) -> Answer {
    require(&caller, Role::Operator)?;
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
    answer(row)
}

async fn locks(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<LockQuery>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(overview::locks(&api.db, &query).await?)
}
