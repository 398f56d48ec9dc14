//! `/api/v1/sync`: the sync status board and runs (viewer), and sync
//! requests for the running fleet (operator), over the caller's marketplaces.

use super::auth::require;
use super::error::{JsonBody, QueryParams};
use super::{Api, ApiError};
use crate::admin::page::Page;
use crate::admin::syncs::{self, SyncRunQuery, SyncRunView};
use crate::admin::tokens::{Caller, Role};
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::input;
use crate::events::SyncRequest;
use crate::poller::SyncKind;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(sync_status, request_sync))
        .routes(routes!(sync_runs))
}

/// The latest run of every (marketplace, sync type), with its last success.
#[utoipa::path(get, path = "/api/v1/sync", tag = "syncs",
    responses((status = 200, body = Vec<SyncRunView>)))]
async fn sync_status(
    State(api): State<Api>,
    caller: Caller,
) -> Result<Json<Vec<SyncRunView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    Ok(Json(syncs::sync_status(&api.db, &codes).await?))
}

/// Sync runs, newest first unless sorted otherwise.
#[utoipa::path(get, path = "/api/v1/sync/runs", tag = "syncs", params(SyncRunQuery),
    responses((status = 200, body = Page<SyncRunView>)))]
async fn sync_runs(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<SyncRunQuery>,
) -> Result<Json<Page<SyncRunView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = query.check(&codes)?;
    Ok(Json(syncs::sync_runs(&api.db, &filter).await?))
}

/// `{"marketplace": "backmarket" | "all", "type": "new" | … | "stock" | "all",
/// "force": false, "days_back": null}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SyncRequestBody {
    /// A marketplace code, or `all` (every one the token sees).
    marketplace: String,
    /// new, modified, care, incomplete, stock or all.
    #[serde(rename = "type")]
    sync_type: String,
    /// Run even when the schedule says it is not due.
    #[serde(default)]
    force: bool,
    /// Re-read this many days back (1 to 366) instead of from the cursor.
    #[schema(minimum = 1, maximum = 366)]
    days_back: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct Queued {
    /// Sync commands queued.
    queued: usize,
}

/// Queues `sync.<mp>.<type>` commands for the running fleet, through the
/// outbox: 202 means they will be delivered.
#[utoipa::path(post, path = "/api/v1/sync", tag = "syncs", request_body = SyncRequestBody,
    responses((status = 202, body = Queued)))]
async fn request_sync(
    State(api): State<Api>,
    caller: Caller,
    JsonBody(body): JsonBody<SyncRequestBody>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    require(&caller, Role::Operator)?;
    if let Some(days) = body.days_back {
        input::days_back("days_back", days)?;
    }
    let known = api.visible_codes(&caller).await?;
    let marketplaces: Vec<&String> = known
        .iter()
        .filter(|code| body.marketplace == "all" || **code == body.marketplace)
        .collect();
    if marketplaces.is_empty() {
        return Err(ApiError::NotFound(format!(
            "unknown marketplace {:?}; known: {}",
            body.marketplace,
            known.join(", ")
        )));
    }
    let kinds = SyncKind::select(&body.sync_type).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown sync type {:?}; use {}",
            body.sync_type,
            SyncKind::CHOICES
        ))
    })?;
    let mut messages = Vec::new();
    for marketplace in &marketplaces {
        for kind in &kinds {
            let request = SyncRequest {
                sync_type: kind.name().to_owned(),
                force: body.force,
                days_back: body.days_back,
                requested_by: format!("api:{}", caller.name),
            };
            let (routing_key, envelope) = request.command(marketplace);
            messages.push(OutboxMessage::command(routing_key, envelope, None));
        }
    }
    let mut tx = api.db.begin().await?;
    outbox::enqueue(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            queued: messages.len(),
        }),
    ))
}
