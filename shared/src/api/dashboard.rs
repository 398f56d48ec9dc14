//! The operators' overview: one server-rendered page (no script) of the
//! totals, sync status, queues, dead letters, the oldest active locks, stock
//! and recent orders of the caller's marketplaces, refreshed every 30 s;
//! every figure links to the page behind it. Signing in keeps the token in
//! an HttpOnly, SameSite=Strict cookie that the API accepts for reads only.

use super::auth::COOKIE;
use super::pages::layout::{page, time};
use super::pages::{marketplace_choice, query_string, refusal, segment, sku_field};
use super::{Api, ApiError};
use crate::admin::locks::{self, LockQuery};
use crate::admin::orders::{self, OrderQuery};
use crate::admin::overview;
use crate::admin::stock::{self, StockQuery};
use crate::admin::tokens::{self, Caller};
use crate::admin::{dlq, queues, syncs};
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

pub(super) fn router() -> Router<Api> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct DashboardQuery {
    sku: Option<String>,
    marketplace: Option<String>,
}

async fn dashboard(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
    Query(query): Query<DashboardQuery>,
) -> Response {
    render(&api, caller, query).await.unwrap_or_else(refusal)
}

async fn render(
    api: &Api,
    caller: Result<Caller, ApiError>,
    query: DashboardQuery,
) -> Result<Response, ApiError> {
    let caller = caller?;
    let codes = api.visible_codes(&caller).await?;
    let totals = overview::totals(&api.db, &codes).await?;
    let stock_query = StockQuery {
        sku: query.sku.clone(),
        marketplace: query.marketplace.clone(),
        limit: Some(200),
        offset: None,
    };
    let stock_rows = stock::rows(&api.db, &stock_query.check(&codes)?).await?;
    let lock_query = LockQuery {
        marketplace: query.marketplace.clone(),
        sku: query.sku.clone(),
        limit: Some(50),
        ..LockQuery::default()
    };
    let locks = locks::locks(&api.db, &lock_query.check(&codes)?).await?;
    let recent = OrderQuery {
        marketplace: query.marketplace.clone(),
        limit: Some(50),
        ..OrderQuery::default()
    };
    let orders = orders::orders(&api.db, &recent.check(&codes)?).await?.items;
    let syncs = syncs::sync_status(&api.db, &codes).await?;
    // The broker is shown as unreachable rather than failing the whole page.
    let queue_stats = queues::stats(&api.bus, &codes, api.options.management_url.as_deref()).await;
    let first_letters = dlq::Filter {
        limit: Some(50),
        scope: caller.scope.clone(),
        ..dlq::Filter::default()
    };
    let dead_letters = dlq::list(&api.bus, &codes, &first_letters).await;
    let mut paused = crate::outage::store::all(&api.db).await?;
    paused.retain(|(code, _)| codes.contains(code));

    let body = html! {
        h1 { "stockfleet overview" }
        p {
            "Signed in as " b { (caller.name) } " (" (caller.role) "). "
            form.inline method="post" action="/logout" { button { "Sign out" } }
        }
        form method="get" action="/" {
            (sku_field(query.sku.as_deref()))
            (marketplace_choice(&codes, query.marketplace.as_deref()))
            button { "Filter" }
        }
        p.totals {
            span { a href="/stock" { "stock rows" } " " b { (totals.stock_rows) } }
            span { "listed units " b { (totals.listed_units) } }
            span { "locked units " b { (totals.locked_units) } }
            span { a href="/locks" { "active locks" } " " b { (totals.active_locks) } }
            span { a href="/orders" { "open orders" } " " b { (totals.open_orders) } }
            span { a href="/orders?unknown_sku=true" { "orders with unknown SKU" } " " b.bad[totals.orders_with_unknown_sku > 0] { (totals.orders_with_unknown_sku) } }
            span { "outbox backlog " b { (totals.outbox_backlog) } }
            span { a href="/api/v1/validate" { "oversold units" } " " b.bad[totals.oversold_units > 0] { (totals.oversold_units) } }
        }

        @if !paused.is_empty() {
            h2 { "Paused marketplaces" }
            p { "Their publisher queues wait (no attempts spent) until a probe or an operator resumes them." }
            table.paused {
                tr { th { "marketplace" } th { "paused since" } th { "by" } th { "why" } }
                @for (code, pause) in &paused {
                    tr.bad { td { (code) } td { (time(Some(pause.since))) } td { (pause.by) } td { (pause.reason) } }
                }
            }
        }
        h2 { "Sync status" }
        table {
            tr { th { "marketplace" } th { "type" } th { "last run" } th { "status" } th { "fetched" } th { "created" } th { "updated" } th { "last success" } th { "error" } }
            @for run in &syncs {
                tr {
                    td { (run.marketplace) } td { (run.sync_type) }
                    td { a href={ "/api/v1/sync/runs" (query_string(&[("marketplace", Some(run.marketplace.as_str())), ("sync_type", Some(run.sync_type.as_str()))])) } { (time(Some(run.started_at))) } }
                    td.ok[run.status == "succeeded"] .bad[run.status == "failed"] { (run.status) }
                    td.num { (run.fetched) } td.num { (run.created) } td.num { (run.updated) }
                    td { (time(run.last_success_at)) } td { (run.error_text.clone().unwrap_or_default()) }
                }
            }
        }

        h2 { "Queues" }
        p { "Retry queues are listed while they hold messages." }
        @match &queue_stats {
            Ok(stats) => table {
                tr { th { "queue" } th { "ready" } th { "unacked" } th { "consumers" } }
                // Empty retry queues are noise; one holding messages is news.
                @for queue in stats.iter().filter(|q| !q.name.contains(".retry.") || q.ready > 0) {
                    tr {
                        td { (queue.name) }
                        td.num .bad[queue.name.ends_with(".dlq") && queue.ready > 0] { (queue.ready) }
                        td.num { (queue.unacked.map(|n| n.to_string()).unwrap_or_else(|| "–".into())) }
                        td.num { (queue.consumers) }
                    }
                }
            },
            Err(error) => p.bad { "broker: " (format!("{error:#}")) },
        }

        h2 { "Dead letters" }
        @match &dead_letters {
            Ok(letters) if letters.is_empty() => p.ok { "none" },
            Ok(letters) => {
                p { "The first " (letters.len()) " (queue depths above count them all); replay with " code { "stockfleet dlq replay" } " or " code { "POST /api/v1/dlq/replay" } "." }
                table {
                    tr { th { "queue" } th { "kind" } th { "marketplace" } th { "error" } th { "attempts" } th { "last failure" } th { "message" } }
                    @for letter in letters {
                        tr {
                            td { (letter.queue) } td { (letter.error_kind) } td { (letter.marketplace) }
                            td.bad { (letter.error) } td.num { (letter.attempts) }
                            td { (letter.last_failure.clone().unwrap_or_default()) } td { code { (letter.message_id) } }
                        }
                    }
                }
            },
            Err(error) => p.bad { "broker: " (format!("{error:#}")) },
        }

        h2 { a href={ "/locks" (query_string(&[("marketplace", query.marketplace.as_deref()), ("sku", query.sku.as_deref())])) } { "Active stock locks" } " (oldest first, " (locks.page.total) ")" }
        table {
            tr { th { "marketplace" } th { "SKU" } th { "order" } th { "item" } th { "quantity" } th { "locked at" } }
            @for lock in &locks.page.items {
                tr {
                    td { (lock.marketplace) } td { a href={ "/stock/" (segment(&lock.sku)) } { (lock.sku) } }
                    td { a href={ "/orders/" (segment(&lock.marketplace)) "/" (segment(&lock.order_id)) } { (lock.order_id) } }
                    td { (lock.item_id) } td.num { (lock.quantity) } td { (time(lock.locked_at)) }
                }
            }
        }

        h2 { a href="/stock" { "Stock" } " (" (stock_rows.total) " rows)" }
        table {
            tr { th { "SKU" } th { "marketplace" } th { "listed" } th { "locked" } th { "available" } th { "shown (buffered)" } th { "last pushed" } th { "pushed at" } }
            @for row in &stock_rows.items {
                @let behind = row.stock_known && row.last_api_quantity != Some(row.buffered as i32);
                tr {
                    td { a href={ "/stock/" (segment(&row.sku)) } { (row.sku) } } td { (row.marketplace) }
                    td.num { (row.listed) } td.num { (row.locked) } td.num { (row.available) }
                    td.num { (row.buffered) @if !row.stock_known { " (stock unknown)" } }
                    td.num .bad[behind] { (row.last_api_quantity.map(|q| q.to_string()).unwrap_or_else(|| "–".into())) }
                    td { (row.last_synced_at.clone().unwrap_or_default()) }
                }
            }
        }

        h2 { a href="/orders" { "Recent orders" } }
        table {
            tr { th { "marketplace" } th { "order" } th { "status" } th { "raw status" } th { "items" } th { "units" } th { "updated" } }
            @for order in &orders {
                tr {
                    td { (order.marketplace) }
                    td { a href={ "/orders/" (segment(&order.marketplace)) "/" (segment(&order.order_id)) } { (order.order_id) } }
                    td { (order.status.clone().unwrap_or_else(|| "unknown".into())) }
                    td { (order.raw_status) } td.num { (order.items) } td.num { (order.units) }
                    td { (time(Some(order.updated_at))) @if order.has_unknown_sku { span.bad { " unknown SKU" } } }
                }
            }
        }
    };
    let mut response = page("Overview", "/", body).into_response();
    response
        .headers_mut()
        .insert(header::REFRESH, header::HeaderValue::from_static("30"));
    Ok(response)
}

fn login_form(problem: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        "/login",
        html! {
            h1 { "stockfleet" }
            @if let Some(problem) = problem { p.bad { (problem) } }
            form method="post" action="/login" {
                label { "API token " input type="password" name="token" autocomplete="off" autofocus; }
                " " button { "Sign in" }
            }
            p { "Create a token with " code { "stockfleet token create --name <you> --role viewer" } "." }
        },
    )
}

async fn login_page() -> Html<String> {
    login_form(None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// `Secure` when the request reached us over HTTPS (directly or through a proxy).
fn cookie_attributes(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    if https {
        "Path=/; HttpOnly; SameSite=Strict; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Strict"
    }
}

async fn login(
    State(api): State<Api>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let token = form.token.trim();
    if tokens::authenticate(&api.db, token).await?.is_none() {
        return Ok((
            axum::http::StatusCode::UNAUTHORIZED,
            login_form(Some("That token is not valid (or was revoked).")),
        )
            .into_response());
    }
    let cookie = format!("{COOKIE}={token}; {}", cookie_attributes(&headers));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

async fn logout(headers: HeaderMap) -> Response {
    let cookie = format!("{COOKIE}=; Max-Age=0; {}", cookie_attributes(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
