//! `/api/v1` for running the fleet: who am I, the marketplaces table, queue
//! depths and the invariant checks. Reads need the viewer role; changing a
//! marketplace the admin role.

use super::auth::require;
use super::error::JsonBody;
use super::{Api, ApiError};
use crate::admin::marketplaces::{self, MarketplaceView};
use crate::admin::queues::{self, QueueStats};
use crate::admin::tokens::{Caller, Role};
use crate::admin::validate::{self, Finding, Violation};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(marketplace_list))
        .routes(routes!(change_marketplace))
        .routes(routes!(queue_stats))
        .routes(routes!(validation))
}

/// The holder of the token.
#[derive(Serialize, ToSchema)]
struct WhoAmI {
    name: String,
    role: Role,
    /// The marketplaces the token sees; null: every one.
    marketplaces: Option<Vec<String>>,
}

/// The token's name, role and marketplaces.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "meta",
    responses((status = 200, body = WhoAmI)))]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        marketplaces: caller.scope.codes().map(<[String]>::to_vec),
        name: caller.name,
        role: caller.role,
    })
}

/// The marketplaces table.
#[utoipa::path(get, path = "/api/v1/marketplaces", tag = "marketplaces",
    responses((status = 200, body = Vec<MarketplaceView>)))]
async fn marketplace_list(
    State(api): State<Api>,
    caller: Caller,
) -> Result<Json<Vec<MarketplaceView>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let mut rows = marketplaces::list(&api.db).await?;
    rows.retain(|row| caller.scope.sees(&row.code));
    Ok(Json(rows))
}

/// Fields to change; absent ones keep their value. The rate limit is given
/// whole: `rate_limit_requests` per `rate_limit_window_seconds`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MarketplaceChangeBody {
    base_url: Option<String>,
    sync_enabled: Option<bool>,
    /// The slowest new-orders poll and the modified sync's interval, seconds.
    order_poll_interval_seconds: Option<i32>,
    /// The fastest new-orders poll where the request budget has headroom, seconds.
    order_poll_fastest_seconds: Option<i32>,
    sync_offset_minutes: Option<i32>,
    rate_limit_requests: Option<i32>,
    rate_limit_window_seconds: Option<i32>,
    /// `{"limit": 2000, "window_seconds": 3600}`, or null to remove the cap.
    #[serde(default, deserialize_with = "present")]
    quantity_updates: Option<Option<QuantityCap>>,
    default_buffer_percentage: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct QuantityCap {
    limit: i32,
    window_seconds: i32,
}

/// Tells a field given as null (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes a marketplace; the running fleet follows without a restart (the
/// poller and publisher re-read the table).
#[utoipa::path(patch, path = "/api/v1/marketplaces/{code}", tag = "marketplaces",
    params(("code" = String, Path, description = "the marketplace's code")),
    request_body = MarketplaceChangeBody,
    responses((status = 200, body = MarketplaceView)))]
async fn change_marketplace(
    State(api): State<Api>,
    caller: Caller,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<MarketplaceChangeBody>,
) -> Result<Json<MarketplaceView>, ApiError> {
    require(&caller, Role::Admin)?;
    let rate_limit = match (body.rate_limit_requests, body.rate_limit_window_seconds) {
        (Some(requests), Some(window)) => Some((requests, window)),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give rate_limit_requests and rate_limit_window_seconds together".into(),
            ));
        }
    };
    let unknown = || ApiError::NotFound(format!("unknown marketplace {code:?}"));
    if !caller.scope.sees(&code) {
        return Err(unknown());
    }
    let current = marketplaces::get(&api.db, &code)
        .await?
        .ok_or_else(unknown)?;
    let change = marketplaces::MarketplaceChange {
        base_url: body.base_url,
        sync_enabled: body.sync_enabled,
        order_poll_interval_seconds: body.order_poll_interval_seconds,
        order_poll_fastest_seconds: body.order_poll_fastest_seconds,
        sync_offset_minutes: body.sync_offset_minutes,
        rate_limit,
        quantity_updates: body
            .quantity_updates
            .map(|cap| cap.map(|cap| (cap.limit, cap.window_seconds))),
        default_buffer_percentage: body.default_buffer_percentage,
    };
    change.check(&current)?;
    let changed = marketplaces::set(&api.db, &code, &change)
        .await?
        .ok_or_else(unknown)?;
    tracing::info!(caller = %caller.name, marketplace = %code, "marketplace changed");
    Ok(Json(changed))
}

/// Ready, unacknowledged (with the management plugin) and consumers of
/// every queue (of a scoped token: the shared queues and its marketplaces').
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, body = Vec<QueueStats>)))]
async fn queue_stats(
    State(api): State<Api>,
    caller: Caller,
) -> Result<Json<Vec<QueueStats>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let codes = api.visible_codes(&caller).await?;
    let stats = queues::stats(&api.bus, &codes, api.options.management_url.as_deref()).await?;
    Ok(Json(stats))
}

/// What `stockfleet validate` reports.
#[derive(Serialize, ToSchema)]
struct Validation {
    /// No invariant broken.
    clean: bool,
    violations: Vec<Violation>,
    findings: Vec<Finding>,
    /// Units sold beyond what was listed, per marketplace.
    oversold_units: BTreeMap<String, i64>,
}

/// Invariants 1–4 and the findings of `stockfleet validate`. They cover
/// every marketplace at once, so a token limited to some answers 404.
#[utoipa::path(get, path = "/api/v1/validate", tag = "queues",
    responses((status = 200, body = Validation)))]
async fn validation(State(api): State<Api>, caller: Caller) -> Result<Json<Validation>, ApiError> {
    require(&caller, Role::Viewer)?;
    if caller.scope.codes().is_some() {
        return Err(ApiError::NotFound(
            "validation covers every marketplace; use a token that sees them all".into(),
        ));
    }
    let report = validate::validate(&api.db, api.options.stale_lock_after).await?;
    Ok(Json(Validation {
        clean: report.is_clean(),
        violations: report.violations,
        findings: report.findings,
        oversold_units: report.oversold_units,
    }))
}
