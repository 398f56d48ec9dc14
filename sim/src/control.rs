//! The control API under `/control` (JSON): what tests and demos use to set
//! the scene and to read what the fleet did. Documented in docs/simulator.md.

use crate::Sim;
use crate::generator::{self, GeneratorConfig};
use crate::state::{
    CareCase, Faults, ItemSelector, Limits, Marketplace, MoveError, OrderRefused, Outage,
};
use crate::webhook::WebhookRequest;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/reset", post(reset))
        .route("/listings", get(list_listings).post(create_listing))
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{marketplace}/{id}", get(get_order))
        .route("/orders/{marketplace}/{id}/status", post(move_order))
        .route("/care", post(create_care))
        .route("/requests", get(list_requests))
        .route("/requests/rates", get(request_rates))
        .route("/pushes", get(list_pushes))
        .route("/faults", get(list_faults))
        .route(
            "/faults/{marketplace}",
            put(set_faults).delete(clear_faults),
        )
        .route("/rate-limits", get(list_rate_limits))
        .route("/rate-limits/{marketplace}", put(set_rate_limits))
        .route("/generator", get(generator_status))
        .route("/generator/start", post(start_generator))
        .route("/generator/stop", post(stop_generator))
        .route("/generator/step", post(step_generator))
        .route(
            "/webhooks/woocommerce",
            get(get_webhook).put(set_webhook).delete(delete_webhook),
        )
}

type Result<T> = std::result::Result<T, Response>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn marketplace(code: &str) -> Result<Marketplace> {
    Marketplace::parse(code).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("unknown marketplace {code:?}"),
        )
    })
}

/// `?marketplace=` narrows a listing to one marketplace.
#[derive(Deserialize)]
struct Filter {
    marketplace: Option<String>,
}

impl Filter {
    fn marketplaces(&self) -> Result<Vec<Marketplace>> {
        match &self.marketplace {
            Some(code) => Ok(vec![marketplace(code)?]),
            None => Ok(Marketplace::ALL.to_vec()),
        }
    }
}

fn respond<T: serde::Serialize>(result: Result<T>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(response) => response,
    }
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewListing {
    /// None = on every marketplace.
    marketplace: Option<String>,
    sku: String,
    quantity: i64,
    title: Option<String>,
    price: Option<String>,
    /// WooCommerce only: the id of the variable product this SKU is a variation of.
    variation_of: Option<u64>,
}

async fn create_listing(State(sim): State<Arc<Sim>>, Json(body): Json<NewListing>) -> Response {
    if body.variation_of.is_some() && body.marketplace.as_deref() != Some("woocommerce") {
        return error(
            StatusCode::BAD_REQUEST,
            "variation_of needs \"marketplace\": \"woocommerce\"",
        );
    }
    let filter = Filter {
        marketplace: body.marketplace.clone(),
    };
    respond(filter.marketplaces().map(|marketplaces| {
        let mut inner = sim.lock();
        marketplaces
            .into_iter()
            .map(|mp| {
                let mut listing = inner.upsert_listing(
                    mp,
                    &body.sku,
                    body.quantity,
                    body.title.clone(),
                    body.price.clone(),
                );
                if let Some(parent) = body.variation_of {
                    listing = inner.make_variation(mp, &body.sku, parent);
                }
                json!({"marketplace": mp, "listing": listing})
            })
            .collect::<Vec<_>>()
    }))
}

async fn list_listings(State(sim): State<Arc<Sim>>, Query(filter): Query<Filter>) -> Response {
    respond(filter.marketplaces().map(|marketplaces| {
        let mut inner = sim.lock();
        marketplaces
            .into_iter()
            .flat_map(|mp| {
                inner
                    .mp(mp)
                    .listings
                    .values()
                    .map(|listing| json!({"marketplace": mp, "listing": listing}))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    marketplace: String,
    items: Vec<NewItem>,
    /// Raw initial status: Back Market line state ("1"), Refurbed item state
    /// ("NEW"), WooCommerce order status ("processing").
    status: Option<String>,
    /// Back Market delivery note / Refurbed label.
    document_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    sku: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

async fn create_order(State(sim): State<Arc<Sim>>, Json(body): Json<NewOrder>) -> Response {
    let result = marketplace(&body.marketplace).and_then(|mp| {
        let items: Vec<(String, u32)> = body
            .items
            .iter()
            .map(|i| (i.sku.clone(), i.quantity))
            .collect();
        sim.create_order(
            mp,
            &items,
            body.status.as_deref(),
            body.document_url.clone(),
        )
        .map_err(|refused| refusal(mp, &refused))
    });
    match result {
        Ok(order) => (StatusCode::CREATED, Json(order)).into_response(),
        Err(response) => response,
    }
}

/// 400 for a malformed order; 409 with the listing, its quantity and the
/// marketplace's own error body when the listing shows too few units.
fn refusal(mp: Marketplace, refused: &OrderRefused) -> Response {
    match refused {
        OrderRefused::Invalid(message) => error(StatusCode::BAD_REQUEST, message.clone()),
        OrderRefused::NotEnoughShown { listing, requested } => {
            let message = refused.to_string();
            let code = match mp {
                Marketplace::BackMarket => "listing-out-of-stock",
                Marketplace::Refurbed => "FAILED_PRECONDITION",
                Marketplace::WooCommerce => "woocommerce_rest_product_out_of_stock",
            };
            let marketplace_error = crate::api_error_body(mp, StatusCode::CONFLICT, code, &message);
            let body = json!({
                "error": message,
                "listing": listing,
                "quantity": listing.quantity,
                "requested": requested,
                "marketplace_error": marketplace_error,
            });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
    }
}

async fn list_orders(State(sim): State<Arc<Sim>>, Query(filter): Query<Filter>) -> Response {
    respond(filter.marketplaces().map(|marketplaces| {
        let mut inner = sim.lock();
        marketplaces
            .into_iter()
            .flat_map(|mp| inner.mp(mp).orders.values().cloned().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    }))
}

async fn get_order(State(sim): State<Arc<Sim>>, Path((code, id)): Path<(String, u64)>) -> Response {
    respond(marketplace(&code).and_then(|mp| {
        sim.lock()
            .mp(mp)
            .orders
            .get(&id)
            .cloned()
            .ok_or_else(|| error(StatusCode::NOT_FOUND, "order not found"))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    status: String,
    /// None = every item that can make the move (WooCommerce: the order).
    item_id: Option<u64>,
}

async fn move_order(
    State(sim): State<Arc<Sim>>,
    Path((code, id)): Path<(String, u64)>,
    Json(body): Json<Move>,
) -> Response {
    respond(marketplace(&code).and_then(|mp| {
        sim.move_order(mp, id, body.item_id.map(ItemSelector::Id), &body.status)
            .map_err(|e| match e {
                MoveError::NoOrder | MoveError::NoItem => {
                    error(StatusCode::NOT_FOUND, e.to_string())
                }
                MoveError::Illegal(message) => error(StatusCode::CONFLICT, message),
            })
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCare {
    marketplace: String,
    order_id: u64,
    /// Default: the order's first item.
    item_id: Option<u64>,
    #[serde(default = "yes")]
    open: bool,
}

fn yes() -> bool {
    true
}

/// Opens a Back Market care folder or a Refurbed return on an order item.
async fn create_care(State(sim): State<Arc<Sim>>, Json(body): Json<NewCare>) -> Response {
    let result = marketplace(&body.marketplace).and_then(|mp| {
        let mut inner = sim.lock();
        let order = inner
            .mp(mp)
            .orders
            .get(&body.order_id)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, "order not found"))?;
        let item_id = match body.item_id {
            Some(id) if order.items.iter().any(|i| i.id == id) => id,
            Some(_) => return Err(error(StatusCode::NOT_FOUND, "order item not found")),
            None => order.items[0].id,
        };
        let now = Utc::now();
        let case = CareCase {
            id: inner.next_id(),
            marketplace: mp,
            order_id: body.order_id,
            item_id,
            open: body.open,
            created_at: now,
            modified_at: now,
        };
        inner.mp(mp).care.insert(case.id, case.clone());
        Ok(case)
    });
    match result {
        Ok(case) => (StatusCode::CREATED, Json(case)).into_response(),
        Err(response) => response,
    }
}

async fn list_requests(State(sim): State<Arc<Sim>>, Query(filter): Query<Filter>) -> Response {
    respond(filter.marketplaces().map(|marketplaces| {
        sim.lock()
            .requests
            .iter()
            .filter(|r| marketplaces.contains(&r.marketplace))
            .cloned()
            .collect::<Vec<_>>()
    }))
}

/// Requests per marketplace, class and caller, with the busiest minute and
/// the class's limit over a minute (null = none).
async fn request_rates(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let mut inner = sim.lock();
    let rates = crate::rates::summarise(&inner.requests);
    let rows: Vec<Value> = rates
        .into_iter()
        .map(|rate| {
            let limit =
                crate::rates::limit_per_minute(&inner.mp(rate.marketplace).limits, rate.class);
            let mut row = serde_json::to_value(&rate).unwrap_or_default();
            row["limit_per_minute"] = json!(limit);
            row
        })
        .collect();
    Json(Value::Array(rows))
}

/// Every quantity pushed through a marketplace API, and each listing's current quantity.
async fn list_pushes(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let mut inner = sim.lock();
    let history = inner.pushes.clone();
    let current: BTreeMap<Marketplace, BTreeMap<String, i64>> = Marketplace::ALL
        .into_iter()
        .map(|mp| {
            let quantities = inner
                .mp(mp)
                .listings
                .values()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect();
            (mp, quantities)
        })
        .collect();
    Json(json!({"history": history, "current": current}))
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Json<BTreeMap<Marketplace, Faults>> {
    let mut inner = sim.lock();
    Json(
        Marketplace::ALL
            .into_iter()
            .map(|mp| (mp, inner.mp(mp).faults.clone()))
            .collect(),
    )
}

/// Replaces a marketplace's faults; an unknown field, a wrong type or a
/// value out of range is refused with 400 naming the field. A timed outage
/// starts now.
async fn set_faults(
    State(sim): State<Arc<Sim>>,
    Path(code): Path<String>,
    body: std::result::Result<Json<Faults>, JsonRejection>,
) -> Response {
    let mut faults = match body {
        Ok(Json(faults)) => faults,
        // axum's message names the field and what was wrong with it.
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if let Err(message) = faults.validate() {
        return error(StatusCode::BAD_REQUEST, message);
    }
    faults.outage = faults.outage_secs.map(Outage::starting_now);
    respond(marketplace(&code).map(|mp| {
        sim.lock().mp(mp).faults = faults.clone();
        faults
    }))
}

async fn clear_faults(State(sim): State<Arc<Sim>>, Path(code): Path<String>) -> Response {
    respond(marketplace(&code).map(|mp| {
        sim.lock().mp(mp).faults = Faults::default();
        Faults::default()
    }))
}

async fn list_rate_limits(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let mut inner = sim.lock();
    let limits: serde_json::Map<String, Value> = Marketplace::ALL
        .into_iter()
        .map(|mp| {
            let state = inner.mp(mp);
            let entry = json!({"limits": state.limits, "violations": state.violations});
            (mp.as_str().to_owned(), entry)
        })
        .collect();
    Json(Value::Object(limits))
}

async fn set_rate_limits(
    State(sim): State<Arc<Sim>>,
    Path(code): Path<String>,
    Json(limits): Json<Limits>,
) -> Response {
    let zero = [limits.general, limits.listings, limits.quantity_updates]
        .into_iter()
        .flatten()
        .any(|l| l.requests == 0 || l.window_ms == 0);
    if zero {
        return error(
            StatusCode::BAD_REQUEST,
            "requests and window_ms must be positive (null = no limit)",
        );
    }
    respond(marketplace(&code).map(|mp| {
        sim.lock().mp(mp).limits = limits;
        limits
    }))
}

async fn generator_status(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let config = sim.generator.config();
    Json(json!({
        "running": sim.generator.running(),
        "config": config.as_ref().map(|(config, _, _)| config),
        "created": config.as_ref().map(|(_, created, _)| *created).unwrap_or_default(),
        "refused": config.map(|(_, _, refused)| refused).unwrap_or_default(),
    }))
}

async fn start_generator(
    State(sim): State<Arc<Sim>>,
    Json(config): Json<GeneratorConfig>,
) -> Response {
    match generator::start(&sim, config) {
        Ok(()) => generator_status(State(sim)).await.into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn stop_generator(State(sim): State<Arc<Sim>>) -> Json<Value> {
    sim.generator.stop();
    generator_status(State(sim)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    count: u64,
}

/// Places `count` orders at once with the configured generator.
async fn step_generator(State(sim): State<Arc<Sim>>, Json(step): Json<Step>) -> Response {
    let mut generator = sim.generator.generator();
    match generator.as_mut() {
        Some(generator) => {
            let placed = generator.step(&sim, step.count, Instant::now());
            Json(json!({"placed": placed})).into_response()
        }
        None => error(
            StatusCode::CONFLICT,
            "start the generator first (orders_per_second may be 0)",
        ),
    }
}

async fn set_webhook(State(sim): State<Arc<Sim>>, Json(request): Json<WebhookRequest>) -> Response {
    Json(sim.webhooks.configure(request)).into_response()
}

async fn get_webhook(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let (webhook, deliveries) = sim.webhooks.snapshot();
    Json(json!({"webhook": webhook, "deliveries": deliveries}))
}

async fn delete_webhook(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.webhooks.clear();
    StatusCode::NO_CONTENT
}
