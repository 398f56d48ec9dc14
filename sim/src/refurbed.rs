//! The Refurbed-like merchant API (HTTP/JSON gateway) under
//! `/refurbed/refb.merchant.v1.<Service>/<Method>`.

use crate::state::{
    CareCase, Item, ItemSelector, Listing, Marketplace, MoveError, Order, parse_time,
    refurbed_order_state,
};
use crate::{Reject, Sim, grpc_code, money};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

const MP: Marketplace = Marketplace::Refurbed;
const MAX_LIMIT: u64 = 100;
const MAX_BATCH: usize = 50;

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/{service}/{method}", post(call))
        .fallback(|| async { not_found("unknown method").respond(MP) })
}

fn invalid(message: impl Into<String>) -> Reject {
    Reject::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

fn not_found(message: impl Into<String>) -> Reject {
    Reject::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

async fn call(
    State(sim): State<Arc<Sim>>,
    Path((service, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = match serde_json::from_slice::<Value>(&body) {
        Err(error) => Err(invalid(format!("invalid JSON body: {error}"))),
        Ok(body) => {
            let service = service
                .strip_prefix("refb.merchant.v1.")
                .unwrap_or_default();
            match (service, method.as_str()) {
                ("OrderService", "ListOrders") => list_orders(&sim, &body),
                ("OrderService", "GetOrder") => get_order(&sim, &body),
                ("OrderItemService", "UpdateOrderItemState") => update_item(&sim, &body),
                ("OrderItemService", "BatchUpdateOrderItemsState") => {
                    batch_update_items(&sim, &body)
                }
                ("OrderItemReturnService", "ListOrderItemReturns") => list_returns(&sim, &body),
                ("OfferService", "ListOffers") => list_offers(&sim, &body),
                ("OfferService", "GetOffer") => get_offer(&sim, &body),
                ("OfferService", "UpdateOffer") => update_offer(&sim, &body),
                ("OfferService", "BatchUpdateOffers") => batch_update_offers(&sim, &body),
                _ => Err(not_found(format!("unknown method {service}/{method}"))),
            }
        }
    };
    match result {
        Ok(value) => Json(value).into_response(),
        Err(reject) => reject.respond(MP),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn render_item(order_id: u64, item: &Item, listing: Option<&Listing>) -> Value {
    // No quantity field: every Refurbed item is one unit.
    json!({
        "id": item.id.to_string(),
        "order_id": order_id.to_string(),
        "name": listing.map(|l| l.title.clone()).unwrap_or_default(),
        "sku": item.sku,
        "state": item.state,
        "parcel_tracking_url": item.tracking_url.clone().unwrap_or_default(),
        "offer_data": {"offer_id": listing.map(|l| l.id.to_string()).unwrap_or_default()},
    })
}

fn render_order(
    sim_listings: &std::collections::BTreeMap<String, Listing>,
    order: &Order,
) -> Value {
    let address = json!({"first_name": "Ada", "family_name": "Lovelace", "street_name": "Hauptstrasse",
                         "house_no": "1", "post_code": "1010", "town": "Wien", "country_code": "AT"});
    let labels: Vec<Value> = order
        .document_url
        .iter()
        .map(|url| json!({"url": url}))
        .collect();
    json!({
        "id": order.id.to_string(),
        "released_at": time(order.created_at),
        "state": refurbed_order_state(&order.items),
        "labels": labels,
        "customer_email": "ada@example.com",
        "shipping_address": address,
        "invoice_address": address,
        "currency_code": "EUR",
        "total_charged": money::order_total(sim_listings, &order.items),
        "total_paid": money::order_total(sim_listings, &order.items),
        "items": order.items.iter().map(|item| render_item(order.id, item, sim_listings.get(&item.sku))).collect::<Vec<_>>(),
    })
}

fn render_offer(listing: &Listing) -> Value {
    json!({
        "id": listing.id.to_string(),
        "sku": listing.sku,
        "stock": listing.quantity.max(0),
        "state": "ACTIVE",
        "reference_price": listing.price,
        "reference_currency_code": "EUR",
    })
}

fn render_return(case: &CareCase) -> Value {
    json!({
        "id": case.id.to_string(),
        "order_id": case.order_id.to_string(),
        "order_item_id": case.item_id.to_string(),
        "state": if case.open { "INITIATED" } else { "CONCLUDED" },
        "return_initiated_at": time(case.created_at),
        "tracking_url": "",
    })
}

/// An int64 id as the gateway takes it: string or number.
fn id_value(value: &Value, field: &str) -> Result<Option<u64>, Reject> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => text
            .parse()
            .map(Some)
            .map_err(|_| invalid(format!("{field} must be an int64"))),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{field} must be an int64"))),
        _ => Err(invalid(format!("{field} must be an int64"))),
    }
}

/// `pagination` + `sort` over items sorted by ascending id: returns the page
/// and `has_more`.
fn paginate(items: Vec<(u64, Value)>, body: &Value) -> Result<(Vec<Value>, bool), Reject> {
    let pagination = &body["pagination"];
    let limit = match &pagination["limit"] {
        Value::Null => MAX_LIMIT,
        value => value
            .as_u64()
            .ok_or_else(|| invalid("pagination.limit must be an integer"))?,
    };
    if limit > MAX_LIMIT {
        return Err(invalid("pagination.limit must be at most 100"));
    }
    let limit = if limit == 0 { MAX_LIMIT } else { limit } as usize;
    let after = id_value(&pagination["starting_after"], "pagination.starting_after")?;
    let before = id_value(&pagination["ending_before"], "pagination.ending_before")?;
    let descending = body["sort"]["order"].as_str() == Some("DESC");
    let mut items = items;
    if descending {
        items.reverse();
    }
    // "After" and "before" follow the sort order.
    let precedes = |a: u64, b: u64| if descending { a > b } else { a < b };
    match (after, before) {
        (Some(_), Some(_)) => Err(invalid("starting_after and ending_before are exclusive")),
        (None, Some(before)) => {
            let earlier: Vec<_> = items
                .into_iter()
                .filter(|(id, _)| precedes(*id, before))
                .collect();
            let has_more = earlier.len() > limit;
            let start = earlier.len().saturating_sub(limit);
            Ok((
                earlier.into_iter().skip(start).map(|(_, v)| v).collect(),
                has_more,
            ))
        }
        (after, None) => {
            let later: Vec<_> = items
                .into_iter()
                .filter(|(id, _)| after.is_none_or(|after| precedes(after, *id)))
                .collect();
            let has_more = later.len() > limit;
            Ok((
                later.into_iter().take(limit).map(|(_, v)| v).collect(),
                has_more,
            ))
        }
    }
}

/// `{"any_of": [...], "none_of": [...]}` over a string.
fn matches_set(filter: &Value, value: &str) -> bool {
    let contains = |list: &Value| {
        list.as_array()
            .is_some_and(|list| list.iter().any(|v| v.as_str() == Some(value)))
    };
    (filter["any_of"].is_null() || contains(&filter["any_of"]))
        && (filter["none_of"].is_null() || !contains(&filter["none_of"]))
}

/// `{"gt"|"ge"|"lt"|"le": time}`.
fn matches_range(filter: &Value, at: DateTime<Utc>) -> Result<bool, Reject> {
    let bound = |key: &str| {
        filter[key]
            .as_str()
            .map(|text| parse_time(text).ok_or_else(|| invalid(format!("invalid time in {key}"))))
            .transpose()
    };
    Ok(bound("gt")?.is_none_or(|t| at > t)
        && bound("ge")?.is_none_or(|t| at >= t)
        && bound("lt")?.is_none_or(|t| at < t)
        && bound("le")?.is_none_or(|t| at <= t))
}

fn list_orders(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let filter = &body["filter"];
    let mut inner = sim.lock();
    let state = inner.mp(MP);
    let mut items = Vec::new();
    for order in state.orders.values() {
        if matches_set(&filter["state"], refurbed_order_state(&order.items))
            && matches_range(&filter["released_at"], order.created_at)?
        {
            items.push((order.id, render_order(&state.listings, order)));
        }
    }
    let (orders, has_more) = paginate(items, body)?;
    Ok(json!({"orders": orders, "has_more": has_more}))
}

fn get_order(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let id = id_value(&body["id"], "id")?.ok_or_else(|| invalid("id is required"))?;
    let mut inner = sim.lock();
    let state = inner.mp(MP);
    let order = state
        .orders
        .get(&id)
        .ok_or_else(|| not_found("order not found"))?;
    Ok(json!({"order": render_order(&state.listings, order)}))
}

fn update_item(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let item_id = id_value(&body["id"], "id")?.ok_or_else(|| invalid("id is required"))?;
    let to = body["state"]
        .as_str()
        .ok_or_else(|| invalid("state is required"))?;
    let tracking = body["parcel_tracking_url"]
        .as_str()
        .filter(|url| !url.is_empty());
    if to == "SHIPPED" && tracking.is_none() {
        return Err(invalid("parcel_tracking_url is required to ship"));
    }
    let order_id = sim
        .lock()
        .mp(MP)
        .orders
        .values()
        .find(|order| order.items.iter().any(|item| item.id == item_id))
        .map(|order| order.id)
        .ok_or_else(|| not_found("order item not found"))?;
    sim.move_order(MP, order_id, Some(ItemSelector::Id(item_id)), to)
        .map_err(|error| match error {
            MoveError::NoOrder | MoveError::NoItem => not_found(error.to_string()),
            MoveError::Illegal(message) => invalid(message),
        })?;
    let mut inner = sim.lock();
    let state = inner.mp(MP);
    let order = state
        .orders
        .get_mut(&order_id)
        .ok_or_else(|| not_found("order not found"))?;
    let item = order
        .items
        .iter_mut()
        .find(|item| item.id == item_id)
        .ok_or_else(|| not_found("order item not found"))?;
    if let Some(url) = tracking {
        item.tracking_url = Some(url.to_owned());
    }
    let item = item.clone();
    Ok(json!({"order_item": render_item(order_id, &item, state.listings.get(&item.sku))}))
}

/// `{"updates": [UpdateOrderItemState body, …]}`, 1 to 50: each update is
/// applied on its own (one illegal transition does not stop the others) and
/// answered in request order, see [`batch_results`].
fn batch_update_items(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    batch_results(body, "updates", |update| update_item(sim, update))
}

fn list_returns(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let items = sim
        .lock()
        .mp(MP)
        .care
        .values()
        .map(|case| (case.id, render_return(case)))
        .collect();
    let (returns, has_more) = paginate(items, body)?;
    Ok(json!({"returns": returns, "has_more": has_more}))
}

fn list_offers(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let filter = &body["filter"];
    let mut inner = sim.lock();
    let listings = &inner.mp(MP).listings;
    // An `any_of` list is looked up, not scanned (a reconciliation reads every row).
    let candidates: Vec<&Listing> = match filter["sku"]["any_of"].as_array() {
        Some(wanted) => {
            let mut found: Vec<&Listing> = wanted
                .iter()
                .filter_map(|sku| listings.get(sku.as_str()?))
                .collect();
            found.sort_by(|a, b| a.sku.cmp(&b.sku));
            found.dedup_by(|a, b| a.sku == b.sku);
            found
        }
        None => listings.values().collect(),
    };
    let items = candidates
        .into_iter()
        .filter(|listing| matches_set(&filter["sku"], &listing.sku))
        .map(|listing| (listing.id, render_offer(listing)))
        .collect();
    drop(inner);
    let (offers, has_more) = paginate(items, body)?;
    Ok(json!({"offers": offers, "has_more": has_more}))
}

/// The SKU an `identifier` (`{"sku"}` or `{"id"}`) names.
fn offer_sku(sim: &Sim, identifier: &Value) -> Result<String, Reject> {
    let mut inner = sim.lock();
    let listings = &inner.mp(MP).listings;
    let found = if let Some(sku) = identifier["sku"].as_str() {
        listings.get(sku)
    } else {
        let id = id_value(&identifier["id"], "identifier.id")?
            .ok_or_else(|| invalid("identifier needs a sku or an id"))?;
        listings.values().find(|listing| listing.id == id)
    };
    found
        .map(|listing| listing.sku.clone())
        .ok_or_else(|| not_found("offer not found"))
}

fn get_offer(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let sku = offer_sku(sim, &body["identifier"])?;
    let listing = sim.lock().mp(MP).listings.get(&sku).cloned();
    let listing = listing.ok_or_else(|| not_found("offer not found"))?;
    Ok(json!({"offer": render_offer(&listing)}))
}

fn update_offer(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    let sku = offer_sku(sim, &body["identifier"])?;
    let stock = match &body["stock"] {
        Value::Null => None,
        value => Some(
            value
                .as_u64()
                .filter(|stock| *stock <= u64::from(u32::MAX))
                .ok_or_else(|| invalid("stock must be a uint32"))?,
        ),
    };
    let mut inner = sim.lock();
    let listing = match stock {
        Some(stock) => inner.push_quantity(MP, &sku, stock as i64),
        None => inner.mp(MP).listings.get(&sku).cloned(),
    };
    let listing = listing.ok_or_else(|| not_found("offer not found"))?;
    Ok(json!({"offer": render_offer(&listing)}))
}

fn batch_update_offers(sim: &Sim, body: &Value) -> Result<Value, Reject> {
    batch_results(body, "offers", |update| update_offer(sim, update))
}

/// A batch call: `body[field]` holds 1 to 50 single-call bodies (else the
/// whole call is 400 INVALID_ARGUMENT); the answer is `{"results": [...]}`,
/// one per update in request order: the single call's answer, or
/// `{"error": {"code": <google.rpc code>, "message"}}` where it failed.
fn batch_results(
    body: &Value,
    field: &str,
    apply: impl Fn(&Value) -> Result<Value, Reject>,
) -> Result<Value, Reject> {
    let updates = body[field]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if updates.is_empty() || updates.len() > MAX_BATCH {
        return Err(invalid(format!(
            "{field} must hold 1 to {MAX_BATCH} updates"
        )));
    }
    let results: Vec<Value> = updates
        .iter()
        .map(|update| match apply(update) {
            Ok(answer) => answer,
            Err(reject) => {
                json!({"error": {"code": grpc_code(reject.status), "message": reject.message}})
            }
        })
        .collect();
    Ok(json!({"results": results}))
}
