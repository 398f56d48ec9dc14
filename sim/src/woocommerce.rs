//! The WooCommerce-like REST API v3 under `/woocommerce/wp-json/wc/v3/…`.

use crate::pages::{QueryPairs, page_and_size, param, slice, url_with_page};
use crate::php_input::{PhpQuery, rest_integer};
use crate::state::{Listing, Marketplace, MarketplaceState, MoveError, Order, parse_time};
use crate::{Reject, Sim, money};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

const MP: Marketplace = Marketplace::WooCommerce;
const MAX_PER_PAGE: usize = 100;
const MAX_BATCH: usize = 100;
const API: &str = "/wp-json/wc/v3";

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route(&format!("{API}/orders"), get(list_orders))
        .route(
            &format!("{API}/orders/{{id}}"),
            get(get_order).put(update_order),
        )
        .route(&format!("{API}/products"), get(list_products))
        .route(&format!("{API}/products/batch"), post(batch_products))
        .route(
            &format!("{API}/products/{{id}}"),
            get(get_product).put(update_product),
        )
        .route(
            &format!("{API}/products/{{parent}}/variations/{{id}}"),
            get(get_variation).put(update_variation),
        )
        .fallback(|| async {
            reject(
                StatusCode::NOT_FOUND,
                "rest_no_route",
                "No route was found matching the URL and request method.",
            )
        })
}

fn reject(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    Reject::new(status, code, message).respond(MP)
}

/// WooCommerce dates: zone-less, here always GMT.
fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub(crate) fn render_order(state: &MarketplaceState, order: &Order) -> Value {
    let line_items: Vec<Value> = order
        .items
        .iter()
        .map(|item| {
            let listing = state.listings.get(&item.sku);
            let unit = money::unit_cents(&state.listings, item);
            // A variation's line names its parent product and the variation.
            let (product_id, variation_id) = match listing {
                Some(Listing {
                    id,
                    parent_id: Some(parent),
                    ..
                }) => (*parent, *id),
                Some(listing) => (listing.id, 0),
                None => (0, 0),
            };
            json!({
                "id": item.id,
                "name": listing.map(|l| l.title.clone()).unwrap_or_default(),
                "product_id": product_id,
                "variation_id": variation_id,
                "quantity": item.quantity,
                "sku": item.sku,
                "price": unit as f64 / 100.0,
                "total": money::format(unit * i64::from(item.quantity)),
            })
        })
        .collect();
    let address = json!({"first_name": "Ada", "last_name": "Lovelace", "address_1": "1 rue de la Paix",
                         "city": "Paris", "postcode": "75002", "country": "FR", "email": "ada@example.com"});
    let completed = order.completed_at.map(time);
    json!({
        "id": order.id,
        "parent_id": 0,
        "number": order.id.to_string(),
        "status": order.status,
        "currency": "EUR",
        "date_created": time(order.created_at),
        "date_created_gmt": time(order.created_at),
        "date_modified": time(order.modified_at),
        "date_modified_gmt": time(order.modified_at),
        "date_completed": completed,
        "date_completed_gmt": completed,
        "total": money::order_total(&state.listings, &order.items),
        "billing": address,
        "shipping": address,
        "line_items": line_items,
        "meta_data": [],
    })
}

/// A product or variation; a product with variations is `variable`.
fn render_product(state: &MarketplaceState, listing: &Listing) -> Value {
    let kind = if listing.parent_id.is_some() {
        "variation"
    } else if state
        .listings
        .values()
        .any(|l| l.parent_id == Some(listing.id))
    {
        "variable"
    } else {
        "simple"
    };
    json!({
        "id": listing.id,
        "name": listing.title,
        "type": kind,
        "status": "publish",
        "sku": listing.sku,
        "price": listing.price,
        "regular_price": listing.price,
        "parent_id": listing.parent_id.unwrap_or(0),
        "manage_stock": true,
        "stock_quantity": listing.quantity,
        "stock_status": if listing.quantity > 0 { "instock" } else { "outofstock" },
    })
}

fn product_json(sim: &Sim, listing: &Listing) -> Value {
    render_product(sim.lock().mp(MP), listing)
}

/// One page with X-WP-Total, X-WP-TotalPages and Link headers.
fn paginated(sim: &Sim, path: &str, query: &QueryPairs, results: Vec<Value>) -> Response {
    let (page, per_page) = match page_and_size(query, "per_page", 10) {
        Ok(params) => params,
        Err(message) => return reject(StatusCode::BAD_REQUEST, "rest_invalid_param", message),
    };
    if per_page > MAX_PER_PAGE {
        return reject(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): per_page (per_page must be between 1 (inclusive) and 100 (inclusive))",
        );
    }
    let total = results.len();
    let (results, pages) = slice(results, page, per_page);
    let url = format!("{}/woocommerce{API}{path}", sim.base_url);
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!(
            "<{}>; rel=\"prev\"",
            url_with_page(&url, query, page - 1)
        ));
    }
    if page < pages {
        links.push(format!(
            "<{}>; rel=\"next\"",
            url_with_page(&url, query, page + 1)
        ));
    }
    let mut response = Json(results).into_response();
    let headers = response.headers_mut();
    headers.insert("x-wp-total", HeaderValue::from(total));
    headers.insert("x-wp-totalpages", HeaderValue::from(pages));
    if let Ok(link) = HeaderValue::from_str(&links.join(", "))
        && !links.is_empty()
    {
        headers.insert("link", link);
    }
    response
}

fn time_param(query: &QueryPairs, key: &str) -> Result<Option<DateTime<Utc>>, Response> {
    param(query, key)
        .map(|text| {
            parse_time(text).ok_or_else(|| {
                reject(
                    StatusCode::BAD_REQUEST,
                    "rest_invalid_param",
                    format!("Invalid parameter(s): {key}"),
                )
            })
        })
        .transpose()
}

async fn list_orders(State(sim): State<Arc<Sim>>, PhpQuery(query): PhpQuery) -> Response {
    let statuses: Option<Vec<&str>> = param(&query, "status")
        .filter(|s| *s != "any")
        .map(|s| s.split(',').map(str::trim).collect());
    let bounds =
        ["after", "before", "modified_after", "modified_before"].map(|key| time_param(&query, key));
    let [after, before, modified_after, modified_before] = match bounds {
        [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
        bounds => {
            return bounds
                .into_iter()
                .find_map(Result::err)
                .expect("one bound failed");
        }
    };
    let mut orders: Vec<Order> = {
        let mut inner = sim.lock();
        inner
            .mp(MP)
            .orders
            .values()
            .filter(|o| match &statuses {
                Some(statuses) => statuses.contains(&o.status.as_str()),
                None => !matches!(o.status.as_str(), "trash" | "checkout-draft"),
            })
            .filter(|o| after.is_none_or(|t| o.created_at > t))
            .filter(|o| before.is_none_or(|t| o.created_at < t))
            .filter(|o| modified_after.is_none_or(|t| o.modified_at > t))
            .filter(|o| modified_before.is_none_or(|t| o.modified_at < t))
            .cloned()
            .collect()
    };
    match param(&query, "orderby").unwrap_or("date") {
        "id" => orders.sort_by_key(|o| o.id),
        "modified" => orders.sort_by_key(|o| (o.modified_at, o.id)),
        _ => orders.sort_by_key(|o| (o.created_at, o.id)),
    }
    if param(&query, "order").unwrap_or("desc") == "desc" {
        orders.reverse();
    }
    let results = {
        let mut inner = sim.lock();
        let state = inner.mp(MP);
        orders.iter().map(|o| render_order(state, o)).collect()
    };
    paginated(&sim, "/orders", &query, results)
}

fn invalid_order_id(status: StatusCode) -> Response {
    reject(
        status,
        "woocommerce_rest_shop_order_invalid_id",
        "Invalid ID.",
    )
}

async fn get_order(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let mut inner = sim.lock();
    let state = inner.mp(MP);
    match id.parse().ok().and_then(|id: u64| state.orders.get(&id)) {
        Some(order) => Json(render_order(state, order)).into_response(),
        None => invalid_order_id(StatusCode::NOT_FOUND),
    }
}

async fn update_order(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return invalid_order_id(StatusCode::BAD_REQUEST);
    };
    let result = match body["status"].as_str() {
        Some(status) => sim.move_order(MP, id, None, status),
        None => sim
            .lock()
            .mp(MP)
            .orders
            .get(&id)
            .cloned()
            .ok_or(MoveError::NoOrder),
    };
    match result {
        Ok(order) => Json(render_order(sim.lock().mp(MP), &order)).into_response(),
        Err(MoveError::NoOrder | MoveError::NoItem) => invalid_order_id(StatusCode::BAD_REQUEST),
        Err(MoveError::Illegal(_)) => reject(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): status",
        ),
    }
}

async fn list_products(State(sim): State<Arc<Sim>>, PhpQuery(query): PhpQuery) -> Response {
    // `sku=A,B` matches exactly, variations included; without it only
    // products are listed (variations live under their parent).
    let skus: Option<Vec<&str>> = param(&query, "sku").map(|s| s.split(',').collect());
    let results = {
        let mut inner = sim.lock();
        let state = inner.mp(MP);
        // By SKU: looked up, not scanned (a reconciliation reads every row).
        let listed: Vec<&Listing> = match &skus {
            Some(skus) => {
                let mut found: Vec<&Listing> = skus
                    .iter()
                    .filter_map(|sku| state.listings.get(*sku))
                    .collect();
                found.sort_by(|a, b| a.sku.cmp(&b.sku));
                found.dedup_by(|a, b| a.sku == b.sku);
                found
            }
            None => state
                .listings
                .values()
                .filter(|l| l.parent_id.is_none())
                .collect(),
        };
        listed
            .into_iter()
            .map(|l| render_product(state, l))
            .collect()
    };
    paginated(&sim, "/products", &query, results)
}

fn invalid_product_id() -> Response {
    reject(
        StatusCode::NOT_FOUND,
        "woocommerce_rest_product_invalid_id",
        "Invalid ID.",
    )
}

/// The listing with this id, if it is a variation of `parent` (None: a product).
fn listing_at(sim: &Sim, parent: Option<&str>, id: &str) -> Option<Listing> {
    sim.lock()
        .listing_by_id(MP, id)
        .filter(|listing| listing.parent_id.map(|p| p.to_string()).as_deref() == parent)
}

async fn get_product(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match listing_at(&sim, None, &id) {
        Some(listing) => Json(product_json(&sim, &listing)).into_response(),
        None => invalid_product_id(),
    }
}

async fn get_variation(
    State(sim): State<Arc<Sim>>,
    Path((parent, id)): Path<(String, String)>,
) -> Response {
    match listing_at(&sim, Some(&parent), &id) {
        Some(listing) => Json(product_json(&sim, &listing)).into_response(),
        None => invalid_product_id(),
    }
}

/// Applies `{"stock_quantity": n}` to a product (or a variation of
/// `parent`); Err(code, message) per item. The quantity is validated
/// first, as WordPress checks a request's parameters before its handler
/// looks anything up: an integer as `rest_is_integer` takes it ("7" too).
fn apply_stock(
    sim: &Sim,
    parent: Option<&str>,
    id: &str,
    body: &Value,
) -> Result<Listing, (&'static str, &'static str)> {
    let quantity = match &body["stock_quantity"] {
        Value::Null => None,
        value => Some(
            rest_integer(value)
                .ok_or(("rest_invalid_param", "Invalid parameter(s): stock_quantity"))?,
        ),
    };
    let listing = listing_at(sim, parent, id)
        .ok_or(("woocommerce_rest_product_invalid_id", "Invalid ID."))?;
    match quantity {
        None => Ok(listing),
        Some(quantity) => sim
            .lock()
            .push_quantity(MP, &listing.sku, quantity)
            .ok_or(("woocommerce_rest_product_invalid_id", "Invalid ID.")),
    }
}

fn stock_update(sim: &Sim, parent: Option<&str>, id: &str, body: &Value) -> Response {
    match apply_stock(sim, parent, id, body) {
        Ok(listing) => Json(product_json(sim, &listing)).into_response(),
        Err(("rest_invalid_param", message)) => {
            reject(StatusCode::BAD_REQUEST, "rest_invalid_param", message)
        }
        Err(_) => invalid_product_id(),
    }
}

async fn update_product(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    stock_update(&sim, None, &id, &body)
}

async fn update_variation(
    State(sim): State<Arc<Sim>>,
    Path((parent, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    stock_update(&sim, Some(&parent), &id, &body)
}

async fn batch_products(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    let updates = body["update"].as_array().cloned().unwrap_or_default();
    if updates.len() > MAX_BATCH {
        return reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "woocommerce_rest_request_entity_too_large",
            "Unable to accept more than 100 items for this request.",
        );
    }
    let results: Vec<Value> = updates
        .iter()
        .map(|update| {
            let id = match &update["id"] {
                Value::String(id) => id.clone(),
                other => other.to_string(),
            };
            match apply_stock(&sim, None, &id, update) {
                Ok(listing) => product_json(&sim, &listing),
                Err((code, message)) => json!({"id": update["id"], "error": {"code": code, "message": message, "data": {"status": 400}}}),
            }
        })
        .collect();
    Json(json!({"update": results})).into_response()
}
