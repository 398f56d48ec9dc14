//! `/api/v1`: JSON over the operator actions the CLI has. Reads need the
//! viewer role; stock corrections, sync requests and dead-letter replays the
//! operator role; purges the admin role.

use super::auth::require;
use super::error::{JsonBody, QueryParams};
use super::{Api, ApiError};
use crate::admin::overview::{self, LockQuery, OrderQuery, SyncRunQuery};
use crate::admin::stock::{self, Correction, StockQuery};
use crate::admin::tokens::{Caller, Role};
use crate::admin::{dlq, marketplaces, queues, validate};
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::input::{self, Invalid};
use crate::events::SyncRequest;
use crate::poller::SyncKind;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

type Answer = Result<Json<Value>, ApiError>;

fn answer(value: impl serde::Serialize) -> Answer {
    Ok(Json(
        serde_json::to_value(value).map_err(anyhow::Error::from)?,
    ))
}

pub(super) fn router() -> Router<Api> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/stock", get(stock_rows))
        .route("/api/v1/stock/{sku}", get(stock_of_sku))
        .route("/api/v1/stock/{sku}/history", get(history))
        .route("/api/v1/stock/{sku}/{marketplace}", post(correct))
        .route("/api/v1/locks", get(locks))
        .route("/api/v1/orders", get(orders))
        .route("/api/v1/orders/{marketplace}/{order_id}", get(order))
        .route("/api/v1/sync", get(sync_status).post(request_sync))
        .route("/api/v1/sync/runs", get(sync_runs))
        .route("/api/v1/marketplaces", get(marketplace_list))
        .route("/api/v1/marketplaces/{code}", patch(change_marketplace))
        .route("/api/v1/queues", get(queue_stats))
        .route("/api/v1/dlq", get(dead_letters))
        .route("/api/v1/dlq/replay", post(replay))
        .route("/api/v1/dlq/purge", post(purge))
        .route("/api/v1/validate", get(validation))
}

async fn whoami(caller: Caller) -> Answer {
    answer(json!({ "name": caller.name, "role": caller.role }))
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

async fn orders(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<OrderQuery>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(overview::orders(&api.db, &query).await?)
}

async fn order(
    State(api): State<Api>,
    caller: Caller,
    Path((marketplace, order_id)): Path<(String, String)>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    let order = overview::order(&api.db, &marketplace, &order_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order {order_id:?} on {marketplace:?}")))?;
    answer(order)
}

async fn sync_status(State(api): State<Api>, caller: Caller) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(overview::sync_status(&api.db).await?)
}

async fn sync_runs(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<SyncRunQuery>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(overview::sync_runs(&api.db, &query).await?)
}

/// `{"marketplace": "backmarket" | "all", "type": "new" | … | "stock" | "all",
/// "force": false, "days_back": null}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequestBody {
    marketplace: String,
    #[serde(rename = "type")]
    sync_type: String,
    #[serde(default)]
    force: bool,
    days_back: Option<u32>,
}

/// Queues `sync.<mp>.<type>` commands for the running fleet, through the
/// outbox: 202 means they will be delivered.
async fn request_sync(
    State(api): State<Api>,
    caller: Caller,
    JsonBody(body): JsonBody<SyncRequestBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require(&caller, Role::Operator)?;
    if let Some(days) = body.days_back {
        input::days_back("days_back", days)?;
    }
    let known = api.marketplace_codes().await?;
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
        Json(json!({ "queued": messages.len() })),
    ))
}

async fn marketplace_list(State(api): State<Api>, caller: Caller) -> Answer {
    require(&caller, Role::Viewer)?;
    answer(marketplaces::list(&api.db).await?)
}

/// Fields to change; absent ones keep their value. The rate limit is given
/// whole: `rate_limit_requests` per `rate_limit_window_seconds`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketplaceChangeBody {
    base_url: Option<String>,
    sync_enabled: Option<bool>,
    order_poll_interval_seconds: Option<i32>,
    sync_offset_minutes: Option<i32>,
    rate_limit_requests: Option<i32>,
    rate_limit_window_seconds: Option<i32>,
    /// `{"limit": 2000, "window_seconds": 3600}`, or null to remove the cap.
    #[serde(default, deserialize_with = "present")]
    quantity_updates: Option<Option<QuantityCap>>,
    default_buffer_percentage: Option<f64>,
}

#[derive(Deserialize)]
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

/// The running fleet follows the change without a restart (the poller and
/// publisher re-read the table).
async fn change_marketplace(
    State(api): State<Api>,
    caller: Caller,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<MarketplaceChangeBody>,
) -> Answer {
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
    let current = marketplaces::get(&api.db, &code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown marketplace {code:?}")))?;
    let change = marketplaces::MarketplaceChange {
        base_url: body.base_url,
        sync_enabled: body.sync_enabled,
        order_poll_interval_seconds: body.order_poll_interval_seconds,
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
        .ok_or_else(|| ApiError::NotFound(format!("unknown marketplace {code:?}")))?;
    tracing::info!(caller = %caller.name, marketplace = %code, "marketplace changed");
    answer(changed)
}

async fn queue_stats(State(api): State<Api>, caller: Caller) -> Answer {
    require(&caller, Role::Viewer)?;
    let codes = api.marketplace_codes().await?;
    answer(queues::stats(&api.bus, &codes, api.options.management_url.as_deref()).await?)
}

/// Dead-letter filters, as query parameters or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterFilter {
    queue: Option<String>,
    marketplace: Option<String>,
    kind: Option<String>,
    /// 30s, 10m, 2h, 1d.
    older_than: Option<String>,
    newer_than: Option<String>,
    /// One message (a query parameter or the body).
    message_id: Option<String>,
    /// Several messages (the body of a replay or purge).
    #[serde(default)]
    ids: Vec<String>,
    limit: Option<usize>,
    #[serde(default)]
    dry_run: bool,
}

impl DeadLetterFilter {
    fn filter(mut self) -> Result<dlq::Filter, ApiError> {
        self.ids.extend(self.message_id.take());
        let age = |text: Option<String>| {
            text.map(|text| dlq::parse_age(&text).map_err(ApiError::BadRequest))
                .transpose()
        };
        if let Some(kind) = &self.kind
            && !dlq::KINDS.contains(&kind.as_str())
        {
            let known = dlq::KINDS.join(", ");
            return Err(Invalid::new("kind", format!("unknown kind {kind:?}; use {known}")).into());
        }
        Ok(dlq::Filter {
            queue: self.queue,
            marketplace: self.marketplace,
            kind: self.kind,
            older_than: age(self.older_than)?,
            newer_than: age(self.newer_than)?,
            message_ids: self.ids,
            limit: self.limit,
        })
    }
}

/// An unknown queue would match nothing and answer `[]`: refused instead.
fn known_queue(filter: dlq::Filter, codes: &[String]) -> Result<dlq::Filter, ApiError> {
    if let Some(queue) = &filter.queue {
        let names: Vec<String> = crate::bus::QueueSpec::all(codes.iter().map(String::as_str))
            .into_iter()
            .map(|spec| spec.name)
            .collect();
        if !names.contains(queue) {
            let known = names.join(", ");
            return Err(
                Invalid::new("queue", format!("unknown queue {queue:?}; use {known}")).into(),
            );
        }
    }
    Ok(filter)
}

async fn dead_letters(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<DeadLetterFilter>,
) -> Answer {
    require(&caller, Role::Viewer)?;
    let codes = api.marketplace_codes().await?;
    answer(dlq::list(&api.bus, &codes, &known_queue(query.filter()?, &codes)?).await?)
}

async fn replay(
    State(api): State<Api>,
    caller: Caller,
    JsonBody(body): JsonBody<DeadLetterFilter>,
) -> Answer {
    settle_dead_letters(&api, &caller, body, Settle::Replay).await
}

async fn purge(
    State(api): State<Api>,
    caller: Caller,
    JsonBody(body): JsonBody<DeadLetterFilter>,
) -> Answer {
    settle_dead_letters(&api, &caller, body, Settle::Purge).await
}

#[derive(Clone, Copy)]
enum Settle {
    /// Back on the queue that dead-lettered them (operators).
    Replay,
    /// Deleted (admins).
    Purge,
}

async fn settle_dead_letters(
    api: &Api,
    caller: &Caller,
    body: DeadLetterFilter,
    settle: Settle,
) -> Answer {
    require(
        caller,
        match settle {
            Settle::Replay => Role::Operator,
            Settle::Purge => Role::Admin,
        },
    )?;
    let codes = api.marketplace_codes().await?;
    let dry_run = body.dry_run;
    let filter = known_queue(body.filter()?, &codes)?;
    let settled = match settle {
        Settle::Replay => dlq::replay(&api.bus, &codes, &filter, dry_run).await?,
        Settle::Purge => dlq::purge(&api.bus, &codes, &filter, dry_run).await?,
    };
    let action = match settle {
        Settle::Replay => "replayed",
        Settle::Purge => "purged",
    };
    tracing::info!(caller = %caller.name, count = settled.len(), dry_run, action, "dead letters settled");
    answer(json!({ "dry_run": dry_run, "count": settled.len(), "messages": settled }))
}

async fn validation(State(api): State<Api>, caller: Caller) -> Answer {
    require(&caller, Role::Viewer)?;
    let report = validate::validate(&api.db, api.options.stale_lock_after).await?;
    answer(json!({
        "clean": report.is_clean(),
        "violations": report.violations,
        "findings": report.findings,
    }))
}
