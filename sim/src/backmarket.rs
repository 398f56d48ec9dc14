//! The Back Market-like seller API under `/backmarket/ws/…`.

use crate::pages::{QueryPairs, page_and_size, param, slice, url_with_page};
use crate::state::{
    CareCase, ItemSelector, Listing, Marketplace, MarketplaceState, MoveError, Order, Shipment,
    backmarket_order_state, parse_time,
};
use crate::{Reject, Sim, money};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

const MP: Marketplace = Marketplace::BackMarket;
const MAX_PAGE_SIZE: usize = 50;
const CARE_PAGE_SIZE: usize = 10;

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/ws/orders", get(list_orders))
        .route("/ws/orders/{id}", get(get_order).post(update_order))
        .route("/ws/listings", get(list_listings))
        .route("/ws/listings/detail", get(listing_detail))
        .route("/ws/listings/{id}", get(get_listing).post(update_listing))
        .route("/ws/sav", get(list_care))
        .fallback(|| async { reject(StatusCode::NOT_FOUND, "not_found", "Not found.") })
}

fn reject(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    Reject::new(status, code, message).respond(MP)
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn address() -> Value {
    json!({"first_name": "Ada", "last_name": "Lovelace", "street": "1 rue de la Paix", "street2": "",
           "postal_code": "75002", "city": "Paris", "country": "FR", "phone": "+33100000000",
           "email": "ada@example.com", "company": ""})
}

fn render_order(state: &MarketplaceState, order: &Order) -> Value {
    let lines: Vec<Value> = order
        .items
        .iter()
        .map(|item| {
            let listing = state.listings.get(&item.sku);
            json!({
                "id": item.id,
                "state": item.state.parse::<u8>().unwrap_or_default(),
                "listing": item.sku,
                "listing_id": listing.map(|l| l.id),
                "product": listing.map(|l| l.title.clone()).unwrap_or_default(),
                "quantity": item.quantity,
                "price": money::format(money::unit_cents(&state.listings, item)),
                "shipping_price": "0.00",
                "currency": "EUR",
                "imei": null,
                "serial_number": null,
                "return_reason": null,
                "return_message": null,
            })
        })
        .collect();
    json!({
        "order_id": order.id,
        "state": backmarket_order_state(&order.items),
        "date_creation": time(order.created_at),
        "date_modification": time(order.modified_at),
        "date_payment": time(order.created_at),
        "date_shipping": order.shipped_at.map(time),
        "shipping_address": address(),
        "billing_address": address(),
        "delivery_note": order.document_url,
        "tracking_number": order.tracking_number,
        "tracking_url": order.tracking_url,
        "shipper": order.shipper,
        "shipper_display": order.shipper,
        "price": money::order_total(&state.listings, &order.items),
        "shipping_price": "0.00",
        "currency": "EUR",
        "country_code": "fr-fr",
        "orderlines": lines,
    })
}

/// Every field ListingPublic requires. The simulator keeps only SKU, title,
/// quantity and price; the rest are one plausible refurbished phone's.
fn render_listing(listing: &Listing) -> Value {
    json!({
        "id": listing.uuid(),
        "listing_id": listing.id,
        "product_id": format!("00000000-0000-4000-9000-{:012x}", listing.id),
        "backmarket_id": listing.id,
        "sku": listing.sku,
        "title": listing.title,
        "quantity": listing.quantity,
        "price": listing.price,
        "min_price": null,
        "max_price": listing.price,
        "currency": "EUR",
        "publication_state": if listing.quantity > 0 { 2 } else { 3 },
        "state": 0,
        "grade": "EXCELLENT",
        "warranty_delay": 12,
        "comment": "Refurbished and tested",
        "shippings": [{"shipping_price": "0.00", "shipping_delay": 24, "shipper": "UPS",
                       "shipper_display": "UPS", "country_code": "fr-fr"}],
    })
}

/// A single-listing answer: the listing and `statuscode`, as the document requires.
fn render_one_listing(listing: &Listing) -> Value {
    let mut body = render_listing(listing);
    body["statuscode"] = json!(200);
    body
}

fn render_care(case: &CareCase) -> Value {
    json!({
        "id": case.id,
        "orderline": case.item_id,
        "state": if case.open { 0 } else { 9 },
        "lines": [],
        "country_code": "fr-fr",
        "date_creation": time(case.created_at),
        "date_modification": time(case.modified_at),
        "date_closed": (!case.open).then(|| time(case.modified_at)),
    })
}

/// `{count, next, previous, results}` with absolute next/previous URLs;
/// `count` is every result (orders, listings) or the page's (care, as the
/// document says). Past the end, `previous` is the last page.
fn paginated(
    sim: &Sim,
    path: &str,
    query: &QueryPairs,
    results: Vec<Value>,
    (page, size): (usize, usize),
    count: Count,
) -> Response {
    let total = results.len();
    let (results, pages) = slice(results, page, size);
    let url = format!("{}/backmarket{path}", sim.base_url);
    let next = (page < pages).then(|| url_with_page(&url, query, page + 1));
    let previous =
        (page > 1 && pages > 0).then(|| url_with_page(&url, query, (page - 1).min(pages)));
    let count = match count {
        Count::All => total,
        Count::Page => results.len(),
    };
    Json(json!({"count": count, "next": next, "previous": previous, "results": results}))
        .into_response()
}

enum Count {
    All,
    Page,
}

/// `page` and `page-size`; a size over the documented maximum (50) is refused.
fn page_params(query: &QueryPairs, default: usize) -> Result<(usize, usize), Response> {
    let bad = |message: String| reject(StatusCode::BAD_REQUEST, "invalid_parameter", message);
    let (page, size) = page_and_size(query, "page-size", default).map_err(bad)?;
    if size > MAX_PAGE_SIZE {
        return Err(bad(format!("page-size must be at most {MAX_PAGE_SIZE}")));
    }
    Ok((page, size))
}

fn time_param(query: &QueryPairs, key: &str) -> Result<Option<DateTime<Utc>>, Response> {
    param(query, key)
        .map(|text| {
            parse_time(text).ok_or_else(|| {
                reject(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("invalid date in {key}"),
                )
            })
        })
        .transpose()
}

async fn list_orders(State(sim): State<Arc<Sim>>, Query(query): Query<QueryPairs>) -> Response {
    let page = match page_params(&query, 10) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let state_filter = match param(&query, "state").map(str::parse::<u8>).transpose() {
        Ok(state) => state,
        Err(_) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                "state must be an integer",
            );
        }
    };
    let (created, modified) = match (
        time_param(&query, "date_creation"),
        time_param(&query, "date_modification"),
    ) {
        (Ok(created), Ok(modified)) => (created, modified),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let results = {
        let mut inner = sim.lock();
        let state = inner.mp(MP);
        state
            .orders
            .values()
            .filter(|order| {
                let order_state = backmarket_order_state(&order.items);
                match state_filter {
                    Some(wanted) => order_state == wanted,
                    // Without a state filter Back Market leaves out 0 and 8.
                    None => !matches!(order_state, 0 | 8),
                }
            })
            .filter(|order| created.is_none_or(|at| order.created_at >= at))
            .filter(|order| modified.is_none_or(|at| order.modified_at >= at))
            .map(|order| render_order(state, order))
            .collect()
    };
    paginated(&sim, "/ws/orders", &query, results, page, Count::All)
}

fn parse_id(id: &str) -> Result<u64, Response> {
    id.parse()
        .map_err(|_| reject(StatusCode::NOT_FOUND, "not_found", "No order with this id"))
}

async fn get_order(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let mut inner = sim.lock();
    let state = inner.mp(MP);
    match state.orders.get(&id) {
        Some(order) => Json(render_order(state, order)).into_response(),
        None => reject(StatusCode::NOT_FOUND, "not_found", "No order with this id"),
    }
}

/// `POST /ws/orders/{id}`: accept (2), cancel (4), ship (3), refund (5, 6).
async fn update_order(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let bad = |message: &str| reject(StatusCode::BAD_REQUEST, "invalid_parameter", message);
    let Some(new_state) = body["new_state"].as_u64() else {
        return bad("new_state is required");
    };
    let sku = body["sku"].as_str();
    let result = match (new_state, sku) {
        (3, _) => {
            let Some(tracking) = body["tracking_number"].as_str().filter(|t| !t.is_empty()) else {
                return bad("tracking_number is required to ship");
            };
            let result = sim.move_order(MP, id, None, "3");
            if result.is_ok() {
                let mut inner = sim.lock();
                if let Some(order) = inner.mp(MP).orders.get_mut(&id) {
                    // The merchant's parcel, in place of the one the move recorded.
                    let text = |key: &str| body[key].as_str().map(str::to_owned);
                    let shipment = Shipment {
                        tracking_number: tracking.to_owned(),
                        shipper: text("shipper"),
                        tracking_url: text("tracking_url"),
                    };
                    order.ship(shipment, order.modified_at);
                }
            }
            result
        }
        (2 | 4, None) => return bad("sku is required"),
        (2 | 4 | 5 | 6, sku) => {
            sim.move_order(MP, id, sku.map(ItemSelector::Sku), &new_state.to_string())
        }
        _ => return bad("new_state must be 2, 3, 4, 5 or 6"),
    };
    match result {
        Ok(_) => get_order(State(sim), Path(id.to_string())).await,
        Err(MoveError::NoOrder) => {
            reject(StatusCode::NOT_FOUND, "not_found", "No order with this id")
        }
        Err(MoveError::NoItem) => bad("no orderline with this sku"),
        Err(MoveError::Illegal(message)) => bad(&message),
    }
}

async fn list_listings(State(sim): State<Arc<Sim>>, Query(query): Query<QueryPairs>) -> Response {
    let page = match page_params(&query, 10) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let results = sim
        .lock()
        .mp(MP)
        .listings
        .values()
        .map(render_listing)
        .collect();
    paginated(&sim, "/ws/listings", &query, results, page, Count::All)
}

fn listing_response(listing: Option<Listing>) -> Response {
    match listing {
        Some(listing) => Json(render_one_listing(&listing)).into_response(),
        None => reject(StatusCode::NOT_FOUND, "not_found", "Listing not found"),
    }
}

async fn listing_detail(State(sim): State<Arc<Sim>>, Query(query): Query<QueryPairs>) -> Response {
    let sku = param(&query, "sku").unwrap_or_default();
    listing_response(sim.lock().mp(MP).listings.get(sku).cloned())
}

async fn get_listing(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    listing_response(sim.lock().listing_by_id(MP, &id))
}

/// `POST /ws/listings/{id}`: `quantity` and `price` apply at once (a push
/// is recorded only for a quantity); 400 bodies are bare JSON strings and
/// nothing is applied then.
async fn update_listing(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = sim.lock();
    let Some(mut listing) = inner.listing_by_id(MP, &id) else {
        return reject(StatusCode::NOT_FOUND, "not_found", "Listing not found");
    };
    let bad = |message: &str| (StatusCode::BAD_REQUEST, Json(json!(message))).into_response();
    let quantity = match &body["quantity"] {
        Value::Null => None,
        // The document allows an integer or a string ("8").
        value => match value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
        {
            Some(quantity) => Some(quantity as i64),
            None => return bad("quantity must be a positive integer"),
        },
    };
    let price = match &body["price"] {
        Value::Null => None,
        value => match value.as_str().and_then(money::parse_price) {
            Some(cents) => Some(money::format(cents)),
            None => return bad("price must be a decimal string with at most 2 decimals"),
        },
    };
    if let Some(price) = price {
        listing = inner.set_price(MP, &listing.sku, price).unwrap_or(listing);
    }
    if let Some(quantity) = quantity {
        listing = inner
            .push_quantity(MP, &listing.sku, quantity)
            .unwrap_or(listing);
    }
    Json(render_one_listing(&listing)).into_response()
}

async fn list_care(State(sim): State<Arc<Sim>>, Query(query): Query<QueryPairs>) -> Response {
    let (page, _) = match page_params(&query, CARE_PAGE_SIZE) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let since = match time_param(&query, "last_modification_date") {
        Ok(since) => since,
        Err(response) => return response,
    };
    let state_filter = param(&query, "state").and_then(|s| s.parse::<u8>().ok());
    let orderline = param(&query, "orderline").and_then(|s| s.parse::<u64>().ok());
    let results = sim
        .lock()
        .mp(MP)
        .care
        .values()
        .filter(|case| state_filter.is_none_or(|s| s == if case.open { 0 } else { 9 }))
        .filter(|case| orderline.is_none_or(|line| line == case.item_id))
        .filter(|case| since.is_none_or(|at| case.modified_at >= at))
        .map(render_care)
        .collect();
    let page = (page, CARE_PAGE_SIZE);
    paginated(&sim, "/ws/sav", &query, results, page, Count::Page)
}
