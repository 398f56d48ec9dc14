//! `/api/v1/stock/{sku}/pool`: a variation's shared pool. GET reads it
//! (viewer); PUT pools the variation, sets its hold and counts its on hand
//! (operator); DELETE unpools it (operator).

use super::auth::require;
use super::error::JsonBody;
use super::{Api, ApiError};
use crate::admin::pools::{self, Hold, PoolError};
use crate::admin::tokens::{Caller, Role};
use crate::domain::input::Invalid;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn router() -> Router<Api> {
    Router::new().route(
        "/api/v1/stock/{sku}/pool",
        get(show).put(put_pool).delete(delete_pool),
    )
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

fn answer(value: impl serde::Serialize) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(value).map_err(anyhow::Error::from)?,
    ))
}

async fn show(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, Role::Viewer)?;
    answer(pools::view(&api.db, &sku).await?)
}

/// `{}` pools the variation; `"last_units": 1, "last_units_marketplace": "backmarket"`
/// holds its last unit for one marketplace (`0` lifts the hold);
/// `"on_hand": 3, "reason": "counted"` counts it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolRequest {
    /// Wide, so an out-of-range number is refused with its bound, not a type error.
    last_units: Option<i64>,
    last_units_marketplace: Option<String>,
    on_hand: Option<i64>,
    reason: Option<String>,
}

async fn put_pool(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
    JsonBody(request): JsonBody<PoolRequest>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, Role::Operator)?;
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
    answer(view)
}

async fn delete_pool(
    State(api): State<Api>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, Role::Operator)?;
    pools::unpool(&api.db, &sku, &format!("api:{}", caller.name)).await?;
    answer(json!({ "sku": sku, "mode": "allocated" }))
}
