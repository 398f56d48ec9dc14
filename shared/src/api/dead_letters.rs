//! `/api/v1/dlq`: dead letters listed (viewer, paginated), replayed
//! (operator) and purged (admin), as `stockfleet dlq` does. A token scoped
//! to some marketplaces sees and settles only their letters.

use super::auth::require;
use super::error::{JsonBody, QueryParams};
use super::{Api, ApiError};
use crate::admin::dlq::{self, DeadLetter};
use crate::admin::page::Page;
use crate::admin::tokens::{Caller, Role};
use crate::domain::input::Invalid;
use crate::domain::listing::{Unknown, Window, choice, given};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(dead_letters))
        .routes(routes!(replay))
        .routes(routes!(purge))
}

/// Which dead letters to list; empty filters match any.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeadLetterQuery {
    /// A consumer queue without the prefix: `locker`, `publisher.backmarket`.
    queue: Option<String>,
    marketplace: Option<String>,
    /// transient, permanent or broker.
    #[param(pattern = "^(transient|permanent|broker)?$")]
    kind: Option<String>,
    /// Last failed at least this long ago: 30s, 10m, 2h, 1d.
    older_than: Option<String>,
    /// Last failed at most this long ago.
    newer_than: Option<String>,
    /// One message.
    message_id: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// The dead letters to replay or purge: the list's filters, or `ids`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    queue: Option<String>,
    marketplace: Option<String>,
    #[schema(pattern = "^(transient|permanent|broker)?$")]
    kind: Option<String>,
    older_than: Option<String>,
    newer_than: Option<String>,
    message_id: Option<String>,
    /// Several messages by id.
    #[serde(default)]
    ids: Vec<String>,
    /// At most this many (the first found).
    #[schema(minimum = 1)]
    limit: Option<usize>,
    /// Report what would move without moving it.
    #[serde(default)]
    dry_run: bool,
}

/// The filters both forms share, checked.
struct Filters<'a> {
    queue: &'a Option<String>,
    marketplace: &'a Option<String>,
    kind: &'a Option<String>,
    older_than: &'a Option<String>,
    newer_than: &'a Option<String>,
    message_ids: Vec<String>,
}

impl Filters<'_> {
    /// The filter over the caller's marketplaces; an unknown queue, kind or
    /// marketplace would match nothing and is refused instead.
    fn check(self, caller: &Caller, codes: &[String]) -> Result<dlq::Filter, ApiError> {
        let age = |field: &str, text: &Option<String>| {
            given(text)
                .map(|text| dlq::parse_age(text).map_err(|reason| Invalid::new(field, reason)))
                .transpose()
        };
        let kind = given(self.kind)
            .map(|kind| choice("kind", kind, &dlq::KINDS))
            .transpose()?;
        let marketplace = given(self.marketplace)
            .map(|code| known_marketplace(code, codes))
            .transpose()?;
        let queue = given(self.queue)
            .map(|queue| known_queue(queue, codes))
            .transpose()?;
        Ok(dlq::Filter {
            queue,
            marketplace,
            kind: kind.map(str::to_owned),
            older_than: age("older_than", self.older_than)?,
            newer_than: age("newer_than", self.newer_than)?,
            message_ids: self.message_ids,
            limit: None,
            scope: caller.scope.clone(),
        })
    }
}

fn known_marketplace(code: &str, codes: &[String]) -> Result<String, Unknown> {
    let known: Vec<&str> = codes.iter().map(String::as_str).collect();
    choice("marketplace", code, &known).map(str::to_owned)
}

fn known_queue(queue: &str, codes: &[String]) -> Result<String, Unknown> {
    let names: Vec<String> = crate::bus::QueueSpec::all(codes.iter().map(String::as_str))
        .into_iter()
        .map(|spec| spec.name)
        .collect();
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    choice("queue", queue, &known).map(str::to_owned)
}

/// Dead letters with their reasons, as they sit in the dead-letter queues.
#[utoipa::path(get, path = "/api/v1/dlq", tag = "dead letters", params(DeadLetterQuery),
    responses((status = 200, body = Page<DeadLetter>)))]
async fn dead_letters(
    State(api): State<Api>,
    caller: Caller,
    QueryParams(query): QueryParams<DeadLetterQuery>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    require(&caller, Role::Viewer)?;
    let window = Window::new(query.limit, query.offset)?;
    let codes = api.visible_codes(&caller).await?;
    let filter = Filters {
        queue: &query.queue,
        marketplace: &query.marketplace,
        kind: &query.kind,
        older_than: &query.older_than,
        newer_than: &query.newer_than,
        message_ids: given(&query.message_id)
            .map(str::to_owned)
            .into_iter()
            .collect(),
    }
    .check(&caller, &codes)?;
    let letters = dlq::list(&api.bus, &codes, &filter).await?;
    Ok(Json(Page::of_all(window, letters)))
}

/// What a replay or purge moved.
#[derive(Serialize, ToSchema)]
struct Settled {
    dry_run: bool,
    count: usize,
    messages: Vec<DeadLetter>,
}

/// Puts the matching dead letters back on the queue that dead-lettered them.
#[utoipa::path(post, path = "/api/v1/dlq/replay", tag = "dead letters",
    request_body = SettleBody, responses((status = 200, body = Settled)))]
async fn replay(
    State(api): State<Api>,
    caller: Caller,
    JsonBody(body): JsonBody<SettleBody>,
) -> Result<Json<Settled>, ApiError> {
    settle(&api, &caller, body, Settle::Replay).await
}

/// Deletes the matching dead letters.
#[utoipa::path(post, path = "/api/v1/dlq/purge", tag = "dead letters",
    request_body = SettleBody, responses((status = 200, body = Settled)))]
async fn purge(
    State(api): State<Api>,
    caller: Caller,
    JsonBody(body): JsonBody<SettleBody>,
) -> Result<Json<Settled>, ApiError> {
    settle(&api, &caller, body, Settle::Purge).await
}

#[derive(Clone, Copy)]
enum Settle {
    /// Back on the queue that dead-lettered them (operators).
    Replay,
    /// Deleted (admins).
    Purge,
}

async fn settle(
    api: &Api,
    caller: &Caller,
    body: SettleBody,
    settle: Settle,
) -> Result<Json<Settled>, ApiError> {
    require(
        caller,
        match settle {
            Settle::Replay => Role::Operator,
            Settle::Purge => Role::Admin,
        },
    )?;
    let codes = api.visible_codes(caller).await?;
    let mut message_ids = body.ids.clone();
    message_ids.extend(given(&body.message_id).map(str::to_owned));
    let mut filter = Filters {
        queue: &body.queue,
        marketplace: &body.marketplace,
        kind: &body.kind,
        older_than: &body.older_than,
        newer_than: &body.newer_than,
        message_ids,
    }
    .check(caller, &codes)?;
    if body.limit == Some(0) {
        return Err(Invalid::new("limit", "0 messages; give at least 1").into());
    }
    filter.limit = body.limit;
    let dry_run = body.dry_run;
    let settled = match settle {
        Settle::Replay => dlq::replay(&api.bus, &codes, &filter, dry_run).await?,
        Settle::Purge => dlq::purge(&api.bus, &codes, &filter, dry_run).await?,
    };
    let action = match settle {
        Settle::Replay => "replayed",
        Settle::Purge => "purged",
    };
    tracing::info!(caller = %caller.name, count = settled.len(), dry_run, action, "dead letters settled");
    Ok(Json(Settled {
        dry_run,
        count: settled.len(),
        messages: settled,
    }))
}
