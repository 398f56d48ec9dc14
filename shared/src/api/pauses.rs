//! `/api/v1/marketplaces/{code}/pause|resume` and `/api/v1/pauses`: an
//! operator pauses a marketplace's publisher queues (planned maintenance, a
//! marketplace misbehaving) and resumes them; the fleet's own outage pauses
//! show here too. Each change is recorded with the token's name.

use super::auth::require;
use super::error::JsonBody;
use super::{Api, ApiError};
use crate::admin::tokens::{Caller, Role};
use crate::domain::input;
use crate::outage::store::{self, Outcome, PauseEvent, Paused};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How many recorded pauses and resumes `GET /api/v1/pauses` lists.
const HISTORY_LIMIT: i64 = 100;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(pauses))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// A paused marketplace.
#[derive(Serialize, ToSchema)]
struct PausedMarketplace {
    marketplace: String,
    #[serde(flatten)]
    pause: Paused,
}

/// The paused marketplaces and the latest recorded changes.
#[derive(Serialize, ToSchema)]
struct Pauses {
    paused: Vec<PausedMarketplace>,
    /// The latest 100 pauses and resumes, newest first.
    history: Vec<PauseEvent>,
}

/// Which marketplaces are paused, since when, by whom and why.
#[utoipa::path(get, path = "/api/v1/pauses", tag = "marketplaces",
    responses((status = 200, body = Pauses)))]
async fn pauses(State(api): State<Api>, caller: Caller) -> Result<Json<Pauses>, ApiError> {
    require(&caller, Role::Viewer)?;
    let paused = store::all(&api.db)
        .await?
        .into_iter()
        .filter(|(code, _)| caller.scope.sees(code))
        .map(|(marketplace, pause)| PausedMarketplace { marketplace, pause })
        .collect();
    let codes = api.visible_codes(&caller).await?;
    let history = store::history(&api.db, &codes, HISTORY_LIMIT).await?;
    Ok(Json(Pauses { paused, history }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    /// Why, 1 to 500 characters; recorded with the token's name.
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    /// Why, 1 to 500 characters; "resumed by hand" when left out.
    reason: Option<String>,
}

/// A marketplace's pause after a pause or resume request.
#[derive(Serialize, ToSchema)]
struct PauseState {
    marketplace: String,
    /// False: it was so already, and nothing was recorded.
    changed: bool,
    /// The pause as it stands; null: not paused.
    paused: Option<Paused>,
}

/// Pauses a marketplace: its publisher queues wait, spending no attempts
/// and making no dead letters, until it is resumed. A probe never ends an
/// operator's pause.
#[utoipa::path(post, path = "/api/v1/marketplaces/{code}/pause", tag = "marketplaces",
    params(("code" = String, Path, description = "the marketplace's code")),
    request_body = PauseBody,
    responses((status = 200, body = PauseState)))]
async fn pause(
    State(api): State<Api>,
    caller: Caller,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<PauseBody>,
) -> Result<Json<PauseState>, ApiError> {
    let reason = input::pause_reason("reason", &body.reason)?;
    change(&api, &caller, code, reason, true).await
}

/// Resumes a paused marketplace, whoever paused it; its backlog drains
/// within its rate limit.
#[utoipa::path(post, path = "/api/v1/marketplaces/{code}/resume", tag = "marketplaces",
    params(("code" = String, Path, description = "the marketplace's code")),
    request_body = ResumeBody,
    responses((status = 200, body = PauseState)))]
async fn resume(
    State(api): State<Api>,
    caller: Caller,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<ResumeBody>,
) -> Result<Json<PauseState>, ApiError> {
    let reason = match &body.reason {
        Some(reason) => input::pause_reason("reason", reason)?,
        None => "resumed by hand",
    };
    change(&api, &caller, code, reason, false).await
}

async fn change(
    api: &Api,
    caller: &Caller,
    code: String,
    reason: &str,
    pausing: bool,
) -> Result<Json<PauseState>, ApiError> {
    require(caller, Role::Operator)?;
    input::text("code", &code)?;
    let unknown = || ApiError::NotFound(format!("unknown marketplace {code:?}"));
    if !caller.scope.sees(&code) {
        return Err(unknown());
    }
    let actor = format!("api:{}", caller.name);
    let outcome = if pausing {
        store::pause(&api.db, &code, reason, &actor).await?
    } else {
        store::resume(&api.db, &code, reason, &actor).await?
    };
    if outcome == Outcome::UnknownMarketplace {
        return Err(unknown());
    }
    tracing::info!(%actor, marketplace = %code, pausing, reason, "marketplace pause changed");
    let paused = store::all(&api.db)
        .await?
        .into_iter()
        .find_map(|(paused_code, pause)| (paused_code == code).then_some(pause));
    Ok(Json(PauseState {
        marketplace: code,
        changed: outcome == Outcome::Changed,
        paused,
    }))
}
