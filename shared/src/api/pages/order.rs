//! `/orders/{marketplace}/{order_id}`: one order with its status (normalised
//! and raw), times and documents; each item with its SKU (linked to its
//! listing), quantity and lock badge (locked, consumed or released, with
//! when); the stock history it caused; the raw JSON folded away; and, for
//! operators, the status-change form with the state of each change asked.

use super::layout::{badge, page as layout, time};
use super::{refusal, segment};
use crate::admin::orders::{self, OrderDetail};
use crate::admin::tokens::{Caller, Role};
use crate::api::auth::{self, require};
use crate::api::{Api, ApiError};
use crate::domain::input::Invalid;
use crate::domain::status_change::TARGETS;
use crate::status_changes;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

pub(super) async fn page(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path((marketplace, order_id)): Path<(String, String)>,
) -> Response {
    let shown = async {
        let caller = caller?;
        let codes = api.visible_codes(&caller).await?;
        let detail = orders::order(&api.db, &codes, &marketplace, &order_id)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("no order {order_id:?} on {marketplace:?}"))
            })?;
        let proof = auth::cookie(&headers).map(auth::form_proof);
        let form = (caller.role >= Role::Operator).then_some(proof).flatten();
        Ok::<_, ApiError>(layout(
            &format!("Order {order_id}"),
            "/orders",
            render(&detail, form.as_deref()),
        ))
    };
    match shown.await {
        Ok(page) => page.into_response(),
        Err(error) => refusal(error),
    }
}

fn render(detail: &OrderDetail, form_proof: Option<&str>) -> Markup {
    let order = &detail.order;
    let self_path = format!(
        "/orders/{}/{}",
        segment(&order.marketplace),
        segment(&order.order_id)
    );
    html! {
        h1 { "Order " (order.order_id) " on " (order.marketplace) }
        table {
            tr { th { "status" } td { b { (order.status.clone().unwrap_or_else(|| "unknown".into())) } " (raw " code { (order.raw_status) } ")" } }
            tr { th { "total" } td { (order.total.clone().unwrap_or_else(|| "–".into())) " " (order.currency.clone().unwrap_or_default()) } }
            tr { th { "placed" } td { (time(order.placed_at)) } }
            tr { th { "first seen" } td { (time(Some(order.first_seen_at))) } }
            tr { th { "updated" } td { (time(Some(order.updated_at))) } }
            @if let Some(url) = &detail.delivery_note_url { tr { th { "delivery note" } td { a href=(url) { "delivery note" } } } }
            @if let Some(url) = &detail.label_url { tr { th { "label" } td { a href=(url) { "shipping label" } } } }
        }

        h2 { "Items" }
        table {
            tr { th { "item" } th { "SKU" } th { "quantity" } th { "status" } th { "lock" } th { "since" } }
            @for item in &detail.items {
                tr {
                    td { (item.item_id) }
                    td { a href={ "/stock/" (segment(&item.sku)) } { (item.sku) } @if !item.known_sku { span.bad { " unknown SKU" } } }
                    td.num { (item.quantity) }
                    td { (item.status.clone().unwrap_or_else(|| "unknown".into())) " (" (item.raw_status) ")" }
                    @match item.lock_status.as_deref() {
                        Some(state) => {
                            td { (badge(state)) }
                            td { (time(match state {
                                "consumed" => item.consumed_at,
                                "released" => item.released_at,
                                _ => item.locked_at,
                            })) }
                        }
                        None => { td { "no lock" } td { "–" } }
                    }
                }
            }
        }

        h2 { "Stock history of this order" }
        @if detail.history.is_empty() { p { "none" } } @else {
            table {
                tr { th { "when" } th { "SKU" } th { "item" } th { "change" } th { "quantity" } th { "listed" } th { "locked" } th { "available" } th { "by" } }
                @for row in &detail.history {
                    tr {
                        td { (time(Some(row.created_at))) }
                        td { a href={ "/stock/" (segment(&row.sku)) } { (row.sku) } }
                        td { (row.item_id.clone().unwrap_or_default()) }
                        td { (row.change_type) } td.num { (row.quantity_change) }
                        td.num { (row.listed_after) } td.num { (row.locked_after) } td.num { (row.available_after) }
                        td { (row.actor) }
                    }
                }
            }
        }

        h2 { "Status changes" }
        @if detail.status_changes.is_empty() { p { "none asked for" } } @else {
            table {
                tr { th { "asked" } th { "by" } th { "from" } th { "to" } th { "state" } th { "marketplace said" } }
                @for change in &detail.status_changes {
                    tr {
                        td { (time(Some(change.requested_at))) } td { (change.actor) }
                        td { (change.from_status) } td { (change.requested_status) }
                        td { (badge(&change.state)) } td { (change.error.clone().unwrap_or_default()) }
                    }
                }
            }
        }
        @if let Some(proof) = form_proof {
            form method="post" action=(self_path) {
                input type="hidden" name="proof" value=(proof);
                label { "move to "
                    select name="status" { @for target in TARGETS { option value=(target.as_str()) { (target.as_str()) } } }
                }
                " " label { "tracking number " input name="tracking_number"; }
                " " button { "Send to " (order.marketplace) }
            }
        }

        details {
            summary { "The order as " (order.marketplace) " sent it" }
            pre { (serde_json::to_string_pretty(&detail.raw).unwrap_or_default()) }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct StatusForm {
    proof: String,
    status: String,
    #[serde(default)]
    tracking_number: String,
}

/// The status-change form (operators): checked and sent as the API's PUT
/// is, then back to the order page, which shows the change's state.
pub(super) async fn change_status(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((marketplace, order_id)): Path<(String, String)>,
    Form(form): Form<StatusForm>,
) -> Response {
    let sent = async {
        let caller = auth::form_caller(&api, &headers, &form.proof).await?;
        require(&caller, Role::Operator)?;
        if !caller.scope.sees(&marketplace) {
            return Err(ApiError::NotFound(format!(
                "no order {order_id:?} on {marketplace:?}"
            )));
        }
        let target = form
            .status
            .parse()
            .map_err(|reason: String| Invalid::new("status", reason))?;
        let number = form.tracking_number.trim();
        let actor = format!("dashboard:{}", caller.name);
        let request = status_changes::Request {
            marketplace: &marketplace,
            order_id: &order_id,
            target,
            items: &[],
            tracking: (!number.is_empty()).then(|| crate::events::CommandTracking {
                number: Some(number.to_owned()),
                url: None,
                carrier: None,
            }),
            actor: &actor,
        };
        status_changes::request(&api.db, &request).await?;
        Ok::<_, ApiError>(())
    };
    match sent.await {
        Ok(()) => Redirect::to(&format!(
            "/orders/{}/{}",
            segment(&marketplace),
            segment(&order_id)
        ))
        .into_response(),
        Err(error) => refusal(error),
    }
}
