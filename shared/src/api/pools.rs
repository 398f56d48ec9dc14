//! `/api/v1/stock/{sku}/pool`: a variation's shared pool. GET reads it
//! (viewer); PUT pools the variation, sets its hold and counts its on hand
//! (operator); DELETE unpools it (operator). A pool spans every marketplace
//! of its variation: a token scoped to some marketplaces reads only their
//! rows of it, and changes it only when it sees all of them.

use super::auth::require;
use super::error::JsonBody;
use super::{Api, ApiError};
use crate::admin::pools::{self, Hold, PoolError, PoolView};
use crate::admin::stock;
use crate::admin::tokens::{Caller, Role};
use crate::domain::input::Invalid;
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(show, put_pool, delete_pool))
}

/// Refuses (404) a caller that does not see every marketplace row of `sku`.
async fn sees_every_row(api: &Api, caller: &Caller, sku: &str) -> Result<(), ApiError> {
    let rows = stock::show(&api.db, sku, None).await?;
    match rows.iter().find(|row| !caller.scope.sees(&row.marketplace)) {
        None => Ok(()),
        Some(row) => Err(ApiError::NotFound(format!(
            "{sku} has a row on {} that this token does not see; a pool spans every \
             marketplace of its variation, so change it with an unscoped token",
            row.marketplace
        ))),
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::UnknownSku(_) | PoolError::NotPooled(_) => {
                ApiError::NotFound(error.to_string())
            }
            PoolError::UnknownMarketplace(_) | PoolError::HolderMissing(_) => {
                ApiError::Invalid(Invalid::new("last_units_marketplace", error.to_string()))
            }
            PoolError::NoRows(_) => ApiError::BadRequest(error.to_string()),
            PoolError::Invalid(invalid) => invalid.into(),
            PoolError::Database(error) => error.into(),
        }
    }
}

/// The variation's pool: on hand, locked, available, oversold, the hold,
/// and each marketplace's locks, shown quantity and rule (404 when not pooled).
#[utoipa::path(get, path = "/api/v1/stock/{sku}/pool", tag = "stock",
    params(("sku" = String, Path, description = "the variation's SKU")),
    responses((status = 200, body = PoolView)))]
async fn show(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<PoolView>, ApiError> {
    require(&caller, Role::Viewer)?;
    let view = pools::view(&api.db, &sku).await?.seen_by(&caller.scope);
    if view.marketplaces.is_empty() {
        return Err(PoolError::NotPooled(sku).into());
    }
    Ok(Json(view))
}

/// `{}` pools the variation; `"last_units": 1, "last_units_marketplace": "backmarket"`
/// holds its last unit for one marketplace (`0` lifts the hold);
/// `"on_hand": 3, "reason": "counted"` counts it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PoolRequest {
    /// Units held for one marketplace (wide, so an out-of-range number is
    /// refused with its bound, not a type error).
    last_units: Option<i64>,
    /// The marketplace that keeps the last units.
    last_units_marketplace: Option<String>,
    /// The units counted on hand.
    on_hand: Option<i64>,
    /// Why on hand was counted (required with `on_hand`).
    reason: Option<String>,
}

/// Pools the variation (operator), sets its hold and counts its on hand.
#[utoipa::path(put, path = "/api/v1/stock/{sku}/pool", tag = "stock",
    params(("sku" = String, Path, description = "the variation's SKU")),
    request_body = PoolRequest,
    responses((status = 200, body = PoolView)))]
async fn put_pool(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
    JsonBody(request): JsonBody<PoolRequest>,
) -> Result<Json<PoolView>, ApiError> {
    require(&caller, Role::Operator)?;
    sees_every_row(&api, &caller, &sku).await?;
    let actor = format!("api:{}", caller.name);
    let hold = match (request.last_units, request.last_units_marketplace) {
        (None, None) => None,
        (units, holder) => {
            let units = u32::try_from(units.unwrap_or(1)).map_err(|_| {
                Invalid::new("last_units", "must be a number of units from 0 upwards")
            })?;
            Some(Hold { units, holder })
        }
    };
    let mut view = pools::pool(&api.db, &sku, hold, &actor).await?;
    if let Some(on_hand) = request.on_hand {
        let reason = request
            .reason
            .filter(|reason| !reason.trim().is_empty())
            .ok_or_else(|| Invalid::new("reason", "a reason is required to count on hand"))?;
        view = pools::set_on_hand(&api.db, &sku, on_hand, &actor, &reason).await?;
    }
    Ok(Json(view))
}

/// What unpooling answers.
#[derive(Serialize, ToSchema)]
struct Unpooled {
    sku: String,
    /// Always `allocated`: every row has its own listed stock again.
    mode: String,
}

/// Unpools the variation (operator): every row gets its share and its own locks back.
#[utoipa::path(delete, path = "/api/v1/stock/{sku}/pool", tag = "stock",
    params(("sku" = String, Path, description = "the variation's SKU")),
    responses((status = 200, body = Unpooled)))]
async fn delete_pool(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<Unpooled>, ApiError> {
    require(&caller, Role::Operator)?;
    sees_every_row(&api, &caller, &sku).await?;
    pools::unpool(&api.db, &sku, &format!("api:{}", caller.name)).await?;
    Ok(Json(Unpooled {
        sku,
        mode: "allocated".into(),
    }))
}
