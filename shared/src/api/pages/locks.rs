//! `/locks`: every stock lock of the caller's marketplaces, oldest first,
//! filtered by marketplace, SKU (part of it), order id, status (locked
//! unless chosen otherwise; "any") and age (older than N hours: the stale
//! ones), with the count per status and pagination links.

use super::layout::{badge, page as layout, time};
use super::{marketplace_choice, number, pager, query_string, refusal, segment, sku_field};
use crate::admin::locks::{self, LOCK_STATUSES, LockQuery};
use crate::admin::tokens::Caller;
use crate::api::{Api, ApiError};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

/// The filter form as the browser sends it: every field text, an empty
/// one meaning any (the number is read by [`number`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LockForm {
    marketplace: Option<String>,
    sku: Option<String>,
    order_id: Option<String>,
    status: Option<String>,
    older_than_hours: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

pub(super) async fn page(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
    Query(form): Query<LockForm>,
) -> Response {
    render(&api, caller, form).await.unwrap_or_else(refusal)
}

async fn render(
    api: &Api,
    caller: Result<Caller, ApiError>,
    form: LockForm,
) -> Result<Response, ApiError> {
    let caller = caller?;
    let codes = api.visible_codes(&caller).await?;
    let query = LockQuery {
        marketplace: form.marketplace.clone(),
        sku: form.sku.clone(),
        order_id: form.order_id.clone(),
        status: form.status.clone(),
        older_than_hours: number("older_than_hours", &form.older_than_hours)?,
        limit: number("limit", &form.limit)?,
        offset: number("offset", &form.offset)?,
    };
    let filter = query.check(&codes)?;
    let found = locks::locks(&api.db, &filter).await?;
    // Absent is "locked"; the form's "any" is the empty value.
    let status = form.status.as_deref().unwrap_or("locked");
    // `status=` (any) is kept, unlike the other empty filters.
    let link = |status: &str, offset: Option<i64>| {
        let offset = offset.map(|o| o.to_string());
        let mut url = format!(
            "/locks{}",
            query_string(&[
                ("marketplace", form.marketplace.as_deref()),
                ("sku", form.sku.as_deref()),
                ("order_id", form.order_id.as_deref()),
                ("older_than_hours", form.older_than_hours.as_deref()),
                ("limit", form.limit.as_deref()),
                ("offset", offset.as_deref()),
            ])
        );
        if status != "locked" {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("status=");
            url.push_str(status);
        }
        url
    };
    let counts = [
        ("locked", found.by_status.locked),
        ("consumed", found.by_status.consumed),
        ("released", found.by_status.released),
    ];
    let body = html! {
        h1 { "Stock locks" }
        form method="get" action="/locks" {
            (marketplace_choice(&codes, form.marketplace.as_deref()))
            (sku_field(form.sku.as_deref()))
            label { "order " input name="order_id" value=(form.order_id.clone().unwrap_or_default()); }
            label { "status "
                select name="status" {
                    @for choice in LOCK_STATUSES {
                        option value=(choice) selected[status == choice] { (choice) }
                    }
                    option value="" selected[status.is_empty()] { "any" }
                }
            }
            label { "older than (hours) " input type="number" min="0" name="older_than_hours" value=(form.older_than_hours.clone().unwrap_or_default()); }
            button { "Filter" }
        }
        p.counts {
            @for (state, count) in counts {
                a href=(link(state, None)) { (badge(state)) } " " b { (count) } " "
            }
        }
        table {
            tr { th { "status" } th { "marketplace" } th { "SKU" } th { "order" } th { "item" } th { "quantity" } th { "locked at" } th { "ended at" } }
            @for lock in &found.page.items {
                tr {
                    td { (badge(&lock.status)) }
                    td { (lock.marketplace) }
                    td { a href={ "/stock/" (segment(&lock.sku)) } { (lock.sku) } }
                    td { a href={ "/orders/" (segment(&lock.marketplace)) "/" (segment(&lock.order_id)) } { (lock.order_id) } }
                    td { (lock.item_id) }
                    td.num { (lock.quantity) }
                    td { (time(lock.locked_at)) }
                    td { (time(lock.consumed_at.or(lock.released_at))) }
                }
            }
        }
        (pager(found.page.total, found.page.items.len(), filter.window, |offset| link(status, Some(offset))))
    };
    Ok(layout("Locks", "/locks", body).into_response())
}
