//! The simulator's own features: the seeded generator, reset, validation.

mod common;

use common::*;
use serde_json::{Value, json};

/// What the generator decided for each order: marketplace, SKUs, quantities.
fn shape(orders: &Value) -> Vec<(String, Vec<(String, u64)>)> {
    orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let items = o["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        i["sku"].as_str().unwrap().to_owned(),
                        i["quantity"].as_u64().unwrap(),
                    )
                })
                .collect();
            (o["marketplace"].as_str().unwrap().to_owned(), items)
        })
        .collect()
}

async fn generate(env: &Env, seed: u64) -> Value {
    env.control.post("/reset", json!({})).await;
    env.control
        .post(
            "/generator/start",
            json!({"seed": seed, "orders_per_second": 0.0, "max_items": 3, "max_quantity": 2,
                   "skus": [{"sku": "HOT", "weight": 8}, {"sku": "COLD", "weight": 1}]}),
        )
        .await;
    let placed = env
        .control
        .post("/generator/step", json!({"count": 30}))
        .await;
    assert_eq!(placed["placed"].as_array().unwrap().len(), 30);
    env.control.get("/orders").await
}

#[tokio::test]
async fn the_generator_is_deterministic_per_seed_and_follows_the_sku_mix() {
    let env = start().await;
    let first = shape(&generate(&env, 42).await);
    let again = shape(&generate(&env, 42).await);
    let other = shape(&generate(&env, 43).await);
    assert_eq!(first, again);
    assert_ne!(first, other);
    let units = |sku: &str| {
        first
            .iter()
            .flat_map(|(_, items)| items)
            .filter(|(s, _)| s == sku)
            .count()
    };
    assert!(
        units("HOT") > units("COLD") * 2,
        "weights respected: {first:?}"
    );
    let marketplaces: std::collections::BTreeSet<_> =
        first.iter().map(|(mp, _)| mp.clone()).collect();
    assert_eq!(marketplaces.len(), 3);
    let status = env.control.get("/generator").await;
    assert_eq!(status["created"], 30);
}

#[tokio::test]
async fn the_generator_flow_places_orders_that_adapters_see() {
    let env = start().await;
    env.control
        .post("/listings", json!({"sku": "HOT", "quantity": 1000}))
        .await;
    env.control
        .post(
            "/generator/start",
            json!({"seed": 7, "orders_per_second": 0.0, "marketplaces": ["backmarket"]}),
        )
        .await;
    env.control
        .post("/generator/step", json!({"count": 5}))
        .await;
    let page = env
        .adapter("backmarket")
        .list_orders(&stockfleet::marketplace::OrderQuery::New, None)
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 5);
    // Back Market decremented its own quantity for each.
    let pushes = env.control.pushes().await;
    assert_eq!(pushes["current"]["backmarket"]["HOT"], 995);
    assert_eq!(
        pushes["history"],
        json!([]),
        "the marketplace's own decrement is not a push"
    );
    env.control.post("/generator/stop", json!({})).await;
    assert_eq!(env.control.get("/generator").await["running"], false);
}

#[tokio::test]
async fn the_control_api_validates_its_input() {
    let env = start().await;
    let post = |path: &'static str, body: Value| {
        let control = &env.control;
        async move {
            control
                .send(reqwest::Method::POST, path, Some(body))
                .await
                .0
        }
    };
    assert_eq!(
        post(
            "/orders",
            json!({"marketplace": "amazon", "items": [{"sku": "A"}]})
        )
        .await,
        404
    );
    assert_eq!(
        post(
            "/orders",
            json!({"marketplace": "refurbed", "items": [{"sku": "A"}], "status": "LOST"})
        )
        .await,
        400
    );
    assert_eq!(
        post("/orders", json!({"marketplace": "refurbed", "items": []})).await,
        400
    );
    assert_eq!(post("/generator/step", json!({"count": 1})).await, 409);
    assert_eq!(
        post("/generator/start", json!({"orders_per_second": -1.0})).await,
        400
    );
    let (status, _) = env
        .control
        .send(
            reqwest::Method::PUT,
            "/faults/backmarket",
            Some(json!({"error_rate": 2.0})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .control
        .send(
            reqwest::Method::PUT,
            "/rate-limits/woocommerce",
            Some(json!({"general": {"requests": 0, "window_ms": 10}})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_order_for_more_than_a_listing_shows_is_refused_with_409_and_the_marketplaces_error() {
    let env = start().await;
    // Each marketplace's own error body: Back Market {"error": {code}},
    // Refurbed's gateway {"code": 10 (ABORTED)}, WooCommerce {"code", "data"}.
    let shapes = [
        (
            "backmarket",
            "/marketplace_error/error/code",
            json!("listing-out-of-stock"),
        ),
        ("refurbed", "/marketplace_error/code", json!(10)),
        (
            "woocommerce",
            "/marketplace_error/code",
            json!("woocommerce_rest_product_out_of_stock"),
        ),
    ];
    for (marketplace, pointer, code) in shapes {
        env.control.listing(marketplace, "LOW", 2).await;
        let (status, body) = env
            .control
            .send(
                reqwest::Method::POST,
                "/orders",
                Some(json!({"marketplace": marketplace, "items": [{"sku": "LOW", "quantity": 3}]})),
            )
            .await;
        assert_eq!(status, 409, "{marketplace}: {body}");
        assert_eq!(body["quantity"], 2, "{body}");
        assert_eq!(body["requested"], 3, "{body}");
        assert_eq!(body["listing"]["sku"], "LOW", "{body}");
        assert_eq!(body.pointer(pointer), Some(&code), "{marketplace}: {body}");
        env.control
            .post(
                "/orders",
                json!({"marketplace": marketplace, "items": [{"sku": "LOW", "quantity": 2}]}),
            )
            .await;
    }
    // Each marketplace took the 2 units off its own listing: a further order is refused.
    let orders = env.control.get("/orders").await;
    assert_eq!(orders.as_array().unwrap().len(), 3);
    for marketplace in ["backmarket", "refurbed", "woocommerce"] {
        let (status, _) = env
            .control
            .send(
                reqwest::Method::POST,
                "/orders",
                Some(json!({"marketplace": marketplace, "items": [{"sku": "LOW"}]})),
            )
            .await;
        assert_eq!(status, 409, "{marketplace} shows 0 after selling 2 of 2");
    }
    assert_eq!(
        env.control.get("/orders").await.as_array().unwrap().len(),
        3
    );
}

#[tokio::test]
async fn the_generator_only_sells_what_listings_show_and_counts_what_it_could_not_place() {
    let env = start().await;
    env.control.listing("backmarket", "FEW", 5).await;
    env.control.listing("backmarket", "NONE", 0).await;
    env.control
        .post(
            "/generator/start",
            json!({"seed": 7, "orders_per_second": 0.0, "marketplaces": ["backmarket"]}),
        )
        .await;
    env.control
        .post("/generator/step", json!({"count": 8}))
        .await;
    let orders = env.control.get("/orders?marketplace=backmarket").await;
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 5, "FEW had 5 units, NONE had none");
    assert!(orders.iter().all(|o| o["items"][0]["sku"] == "FEW"));
    let status = env.control.get("/generator").await;
    assert_eq!(status["created"], 5, "{status}");
    assert_eq!(status["refused"], 3, "{status}");
}
