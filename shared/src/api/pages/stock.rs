//! `/stock`: every stock row of the caller's marketplaces (filtered by
//! marketplace and part of a SKU, paginated), and `/stock/{sku}`: one
//! listing, a row per marketplace (listed, locked, available, buffer rule,
//! shown and last pushed, unknown-stock flag), its pool when pooled, its
//! active locks (linked to their orders) and its history, newest first,
//! paginated.

use super::layout::{badge, page as layout, time};
use super::{marketplace_choice, number, pager, query_string, refusal, segment, sku_field};
use crate::admin::locks::{self, LockFilter};
use crate::admin::overview::{self, HistoryQuery};
use crate::admin::pools::{self, PoolError, PoolView};
use crate::admin::stock::{self, StockQuery, StockRowView};
use crate::admin::tokens::Caller;
use crate::api::{Api, ApiError};
use crate::domain::BufferRule;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// A list's form as the browser sends it (numbers read by [`number`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StockForm {
    marketplace: Option<String>,
    sku: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

pub(super) async fn list(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
    Query(form): Query<StockForm>,
) -> Response {
    render_list(&api, caller, form)
        .await
        .unwrap_or_else(refusal)
}

async fn render_list(
    api: &Api,
    caller: Result<Caller, ApiError>,
    form: StockForm,
) -> Result<Response, ApiError> {
    let caller = caller?;
    let codes = api.visible_codes(&caller).await?;
    let query = StockQuery {
        marketplace: form.marketplace.clone(),
        sku: form.sku.clone(),
        limit: number("limit", &form.limit)?,
        offset: number("offset", &form.offset)?,
    };
    let filter = query.check(&codes)?;
    let found = stock::rows(&api.db, &filter).await?;
    let link = |offset: i64| {
        let offset = offset.to_string();
        format!(
            "/stock{}",
            query_string(&[
                ("marketplace", form.marketplace.as_deref()),
                ("sku", form.sku.as_deref()),
                ("limit", form.limit.as_deref()),
                ("offset", Some(offset.as_str())),
            ])
        )
    };
    let body = html! {
        h1 { "Stock" }
        form method="get" action="/stock" {
            (marketplace_choice(&codes, form.marketplace.as_deref()))
            (sku_field(form.sku.as_deref()))
            button { "Filter" }
        }
        (rows_table(&found.items, true))
        (pager(found.total, found.items.len(), filter.window, link))
    };
    Ok(layout("Stock", "/stock", body).into_response())
}

/// Stock rows as a table; `with_sku` adds the SKU column (linked).
fn rows_table(rows: &[StockRowView], with_sku: bool) -> Markup {
    html! {
        table {
            tr {
                @if with_sku { th { "SKU" } }
                th { "marketplace" } th { "mode" } th { "listed" } th { "locked" } th { "available" }
                th { "buffer rule" } th { "shown (buffered)" } th { "last pushed" } th { "pushed at" }
            }
            @for row in rows {
                @let behind = row.stock_known && row.last_api_quantity != i32::try_from(row.buffered).ok();
                tr {
                    @if with_sku { td { a href={ "/stock/" (segment(&row.sku)) } { (row.sku) } } }
                    td { (row.marketplace) }
                    td { (row.mode) }
                    td.num { (row.listed) }
                    td.num .bad[row.locked > row.listed && row.mode == "allocated"] { (row.locked) }
                    td.num { (row.available) }
                    td { (rule_text(&row.rule)) }
                    td.num { (row.buffered) @if !row.stock_known { span.bad { " stock unknown" } } }
                    td.num .bad[behind] { (row.last_api_quantity.map(|q| q.to_string()).unwrap_or_else(|| "–".into())) }
                    td { (row.last_synced_at.clone().unwrap_or_else(|| "never".into())) }
                }
            }
        }
    }
}

/// A buffer rule as a seller reads it: "10 % (up), ≥ 1 kept, ≤ 5 shown".
fn rule_text(rule: &BufferRule) -> String {
    let percent = f64::from(rule.basis_points) / 100.0;
    let rounding = serde_json::to_value(rule.rounding)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut text = format!("{percent} % ({rounding})");
    if rule.min_units > 0 {
        text.push_str(&format!(", ≥ {} kept", rule.min_units));
    }
    if let Some(max) = rule.max_shown {
        text.push_str(&format!(", ≤ {max} shown"));
    }
    text
}

/// The listing page's form: its history's page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListingForm {
    offset: Option<String>,
}

pub(super) async fn listing(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
    Path(sku): Path<String>,
    Query(form): Query<ListingForm>,
) -> Response {
    render_listing(&api, caller, &sku, form)
        .await
        .unwrap_or_else(refusal)
}

async fn render_listing(
    api: &Api,
    caller: Result<Caller, ApiError>,
    sku: &str,
    form: ListingForm,
) -> Result<Response, ApiError> {
    let caller = caller?;
    let codes = api.visible_codes(&caller).await?;
    let rows = stock::show(&api.db, sku, Some(&codes)).await?;
    let pool = match pools::view(&api.db, sku).await {
        Ok(view) => Some(view.seen_by(&caller.scope)),
        Err(PoolError::NotPooled(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let active = locks::locks(&api.db, &LockFilter::active_of_sku(&codes, sku)).await?;
    let history_query = HistoryQuery {
        offset: number("offset", &form.offset)?,
        ..HistoryQuery::default()
    };
    let history_filter = history_query.check(&codes)?;
    let history = overview::history(&api.db, sku, &history_filter).await?;
    let self_path = format!("/stock/{}", segment(sku));
    let all_locks = format!(
        "/locks{}",
        query_string(&[("sku", Some(sku)), ("status", Some(""))])
    );
    let body = html! {
        h1 { "Listing " (sku) }
        (rows_table(&rows, false))
        @if let Some(pool) = &pool { (pool_section(pool)) }

        h2 { "Active locks (" (active.page.total) ")" }
        @if active.page.items.is_empty() {
            p { "none" }
        } @else {
            table {
                tr { th { "marketplace" } th { "order" } th { "item" } th { "quantity" } th { "locked at" } }
                @for lock in &active.page.items {
                    tr {
                        td { (lock.marketplace) }
                        td { a href={ "/orders/" (segment(&lock.marketplace)) "/" (segment(&lock.order_id)) } { (lock.order_id) } }
                        td { (lock.item_id) } td.num { (lock.quantity) } td { (time(lock.locked_at)) }
                    }
                }
            }
        }
        p { a href=(all_locks) { "every lock of " (sku) } " (consumed and released too)" }

        h2 { "History (newest first)" }
        table {
            tr { th { "when" } th { "marketplace" } th { "change" } th { "listed" } th { "locked" } th { "available" } th { "order" } th { "actor" } th { "note" } }
            @for row in &history.items {
                tr {
                    td { (time(Some(row.created_at))) }
                    td { (row.marketplace) }
                    td { (row.change_type) " " (signed(row.quantity_change)) }
                    td.num { (row.listed_before) " → " (row.listed_after) }
                    td.num { (row.locked_before) " → " (row.locked_after) }
                    td.num { (row.available_before) " → " (row.available_after) }
                    td {
                        @if let Some(order) = &row.order_id {
                            a href={ "/orders/" (segment(&row.marketplace)) "/" (segment(order)) } { (order) }
                        }
                    }
                    td { (row.actor) }
                    td { (row.notes.clone().unwrap_or_default()) }
                }
            }
        }
        (pager(history.total, history.items.len(), history_filter.window, |offset| format!("{self_path}?offset={offset}")))
    };
    Ok(layout(&format!("Listing {sku}"), "/stock", body).into_response())
}

fn signed(change: i32) -> String {
    if change > 0 {
        format!("+{change}")
    } else {
        change.to_string()
    }
}

/// A pooled listing's shared count and what each marketplace shows of it.
fn pool_section(pool: &PoolView) -> Markup {
    html! {
        h2 { "Shared pool" }
        p {
            "on hand " b { (pool.on_hand) } " · locked " b { (pool.locked) } " · available " b { (pool.available) }
            @if pool.oversold > 0 { " · " span.bad { "oversold " (pool.oversold) } }
            @if pool.last_units > 0 {
                " · the last " (pool.last_units) " unit(s) shown on "
                b { (pool.last_units_marketplace.clone().unwrap_or_default()) } " only"
            }
        }
        table {
            tr { th { "marketplace" } th { "its locks" } th { "shown" } th { "rule" } th { "last pushed" } th { "last race window" } }
            @for row in &pool.marketplaces {
                tr {
                    td { (row.marketplace) }
                    td.num { (badge("locked")) " " (row.locked) }
                    td.num { (row.shown) }
                    td { (rule_text(&row.rule)) }
                    td.num { (row.last_api_quantity.map(|q| q.to_string()).unwrap_or_else(|| "–".into())) }
                    td {
                        @match (&row.propagation_ms, &row.propagation_from) {
                            (Some(ms), Some(from)) => { (ms) " ms after an order on " (from) }
                            _ => "–",
                        }
                    }
                }
            }
        }
    }
}
