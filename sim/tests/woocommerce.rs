//! WooCommerce adapter against the simulator: every operation, pagination
//! and signed webhooks.

mod common;

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine;
use chrono::{Duration as Days, Utc};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;
use stockfleet::domain::OrderStatus;
use stockfleet::marketplace::{OrderItemRef, OrderQuery, OrderStatusUpdate, PageToken};
use tokio::sync::mpsc;

const WOO: &str = "woocommerce";

#[tokio::test]
async fn product_stock_by_sku() {
    let env = start().await;
    env.control.listing(WOO, "MBA", 6).await;
    let adapter = env.adapter(WOO);
    assert_eq!(adapter.listing_quantity("MBA").await, Ok(6));
    adapter.set_listing_quantity("MBA", 2).await.unwrap();
    assert_eq!(adapter.listing_quantity("MBA").await, Ok(2));
    assert_eq!(env.control.pushes().await["current"][WOO]["MBA"], 2);
    let requests = env.control.get("/requests?marketplace=woocommerce").await;
    let paths: Vec<_> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        paths[1].starts_with("PUT /woocommerce/wp-json/wc/v3/products/"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_variation_s_stock_is_written_under_its_parent() {
    let env = start().await;
    let (status, created) = env
        .control
        .send(
            reqwest::Method::POST,
            "/listings",
            Some(
                json!({"marketplace": WOO, "sku": "MBA-16GB", "quantity": 4, "variation_of": 500}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let variation_id = created[0]["listing"]["id"].as_u64().unwrap();
    let adapter = env.adapter(WOO);
    assert_eq!(adapter.listing_quantity("MBA-16GB").await, Ok(4));
    adapter.set_listing_quantity("MBA-16GB", 1).await.unwrap();
    assert_eq!(env.control.pushes().await["current"][WOO]["MBA-16GB"], 1);
    let requests = env.control.get("/requests?marketplace=woocommerce").await;
    let last = requests.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        format!(
            "{} {}",
            last["method"].as_str().unwrap(),
            // Without the query's OAuth 1.0a parameters.
            last["path"].as_str().unwrap().split('?').next().unwrap()
        ),
        format!("PUT /woocommerce/wp-json/wc/v3/products/500/variations/{variation_id}")
    );

    // Like WooCommerce, a variation is not a product of its own: not listed
    // without a SKU filter, not writable at /products/{id}.
    let credentials = credentials();
    let api = format!("{}/wp-json/wc/v3", env.sim.base_url(WOO));
    let http = reqwest::Client::new();
    let woo = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{api}{path}")).basic_auth(
            &credentials.woocommerce_key,
            Some(&credentials.woocommerce_secret),
        )
    };
    let listed = woo(reqwest::Method::GET, "/products").send().await.unwrap();
    assert_eq!(listed.json::<Value>().await.unwrap(), json!([]));
    let direct = woo(reqwest::Method::PUT, &format!("/products/{variation_id}"))
        .json(&json!({"stock_quantity": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 404);
    let (status, _) = env
        .control
        .send(
            reqwest::Method::POST,
            "/listings",
            Some(json!({"sku": "X", "quantity": 1, "variation_of": 500})),
        )
        .await;
    assert_eq!(status, 400, "variations exist on WooCommerce only");
}

#[tokio::test]
async fn order_statuses_apply_to_every_line() {
    let env = start().await;
    let order = env
        .control
        .order(WOO, &[("A", 2), ("B", 1)], "processing")
        .await;
    env.control.order(WOO, &[("A", 1)], "completed").await;
    let adapter = env.adapter(WOO);
    let page = adapter.list_orders(&OrderQuery::New, None).await.unwrap();
    assert_eq!(page.orders.len(), 1);
    let seen = &page.orders[0];
    assert_eq!(seen.external_id, id(&order));
    assert_eq!(seen.status, Some(OrderStatus::Accepted));
    assert!(
        seen.items
            .iter()
            .all(|i| i.status == Some(OrderStatus::Accepted) && !i.needs_acceptance)
    );
    assert_eq!(seen.items[0].quantity, 2);
    // Nothing to accept on WooCommerce.
    adapter
        .accept_orderline(&seen.external_id, &OrderItemRef::from(&seen.items[0]))
        .await
        .unwrap();
    adapter
        .update_order_status(
            &seen.external_id,
            &OrderStatusUpdate::whole_order(OrderStatus::Shipped),
        )
        .await
        .unwrap();
    adapter
        .update_order_status(
            &seen.external_id,
            &OrderStatusUpdate::whole_order(OrderStatus::Returned),
        )
        .await
        .unwrap();
    let now = adapter.get_order(&seen.external_id).await.unwrap();
    assert_eq!(now.raw_status, "refunded");
    assert_eq!(
        now.status,
        Some(OrderStatus::Returned),
        "refunded after completion is a return"
    );
    // A refund before completion is a cancellation; it is also a care case.
    let cancelled = env.control.order(WOO, &[("A", 1)], "refunded").await;
    assert_eq!(
        adapter.get_order(&id(&cancelled)).await.unwrap().status,
        Some(OrderStatus::Cancelled)
    );
    let care = adapter
        .list_care(Some(Utc::now() - Days::minutes(1)), None)
        .await
        .unwrap();
    assert_eq!(care.cases.len(), 2);
    // Woo core has no labels: nothing is ever incomplete.
    assert!(
        adapter
            .list_orders(&OrderQuery::Incomplete, None)
            .await
            .unwrap()
            .orders
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_plugin_statuses_map_to_none() {
    let env = start().await;
    let order = env.control.order(WOO, &[("A", 1)], "checkout-draft").await;
    let seen = env.adapter(WOO).get_order(&id(&order)).await.unwrap();
    assert_eq!(seen.status, None);
    assert_eq!(seen.raw_status, "checkout-draft");
}

#[tokio::test]
async fn pagination_follows_total_pages_over_several_pages() {
    let env = start().await;
    let before = Utc::now() - Days::seconds(5);
    let mut created = Vec::new();
    for _ in 0..230 {
        created.push(id(&env.control.order(WOO, &[("A", 1)], "processing").await));
    }
    let adapter = env.adapter(WOO);
    for query in [OrderQuery::New, OrderQuery::ModifiedSince(before)] {
        let (mut seen, mut page, mut pages) = (Vec::new(), None::<PageToken>, 0);
        loop {
            let result = adapter.list_orders(&query, page).await.unwrap();
            pages += 1;
            seen.extend(result.orders.into_iter().map(|o| o.external_id));
            page = result.next;
            if page.is_none() {
                break;
            }
        }
        assert_eq!(pages, 3, "{query:?}");
        seen.sort_by_key(|id| id.parse::<u64>().unwrap());
        assert_eq!(seen, created, "{query:?}");
    }
}

#[tokio::test]
async fn per_page_over_100_is_rejected_like_woocommerce() {
    let env = start().await;
    let creds = env.sim.credentials();
    let response = reqwest::Client::new()
        .get(format!(
            "{}/wp-json/wc/v3/orders?per_page=101",
            env.sim.base_url(WOO)
        ))
        .basic_auth(&creds.woocommerce_key, Some(&creds.woocommerce_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rest_invalid_param");
}

/// A webhook receiver on a free port: forwards every delivery to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (sender, deliveries) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            async move {
                let _ = sender.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, deliveries)
}

async fn next(deliveries: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) -> (HeaderMap, Bytes) {
    tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .expect("a delivery arrives")
        .expect("receiver open")
}

#[tokio::test]
async fn webhooks_are_signed_like_woocommerce() {
    let env = start().await;
    let (url, mut deliveries) = receiver().await;
    let secret = "whsec-test";
    env.control
        .put(
            "/webhooks/woocommerce",
            json!({"url": url, "secret": secret}),
        )
        .await;

    let (headers, body) = next(&mut deliveries).await;
    assert_eq!(&body[..], b"webhook_id=1", "the ping comes first");
    assert!(headers.get("x-wc-webhook-signature").is_none());

    let order = env.control.order(WOO, &[("A", 1)], "processing").await;
    let (headers, body) = next(&mut deliveries).await;
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("x-wc-webhook-topic"), "order.created");
    assert_eq!(header("x-wc-webhook-resource"), "order");
    assert_eq!(header("x-wc-webhook-event"), "created");
    assert_eq!(header("x-wc-webhook-id"), "1");
    assert!(headers.contains_key("x-wc-webhook-delivery-id"));
    assert!(header("x-wc-webhook-source").ends_with("/woocommerce/"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(header("x-wc-webhook-signature"), expected);
    // The body is the order exactly as GET /orders/{id} returns it.
    let payload: Value = serde_json::from_slice(&body).unwrap();
    let seen = env.adapter(WOO).get_order(&id(&order)).await.unwrap();
    assert_eq!(payload, seen.raw);

    env.adapter(WOO)
        .update_order_status(
            &id(&order),
            &OrderStatusUpdate::whole_order(OrderStatus::Shipped),
        )
        .await
        .unwrap();
    let (headers, body) = next(&mut deliveries).await;
    assert_eq!(headers["x-wc-webhook-topic"], "order.updated");
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["status"], "completed");

    let log = env.control.get("/webhooks/woocommerce").await;
    assert_eq!(log["webhook"]["status"], "active");
    assert!(
        log["webhook"].get("secret").is_none(),
        "the secret is never shown"
    );
}

/// Whether `agent` is `WooCommerce/<version> Hookshot (WordPress/<version>)`.
fn is_hookshot(agent: &str) -> bool {
    let is_version = |v: &str| !v.is_empty() && v.split('.').all(|n| n.parse::<u32>().is_ok());
    agent
        .strip_prefix("WooCommerce/")
        .and_then(|rest| rest.split_once(" Hookshot (WordPress/"))
        .and_then(|(woo, rest)| Some((woo, rest.strip_suffix(')')?)))
        .is_some_and(|(woo, wordpress)| is_version(woo) && is_version(wordpress))
}

#[tokio::test]
async fn webhook_deliveries_name_woocommerce_hookshot_as_their_user_agent() {
    let env = start().await;
    let (url, mut deliveries) = receiver().await;
    env.control
        .put("/webhooks/woocommerce", json!({"url": url, "secret": "s"}))
        .await;
    env.control.order(WOO, &[("A", 1)], "processing").await;
    for expected in ["ping", "order.created"] {
        let (headers, _) = next(&mut deliveries).await;
        let topic = headers
            .get("x-wc-webhook-topic")
            .map_or("ping", |t| t.to_str().unwrap());
        assert_eq!(topic, expected);
        let agent = headers["user-agent"].to_str().unwrap();
        assert!(is_hookshot(agent), "{expected}: {agent}");
    }
    assert!(
        !is_hookshot("WooCommerce/9.8 Hookshot"),
        "the checker checks"
    );
}

async fn put_stock(env: &Env, path: &str, value: Value) -> (u16, Value) {
    let body = json!({"stock_quantity": value});
    env.call(WOO, reqwest::Method::PUT, path, Some(body)).await
}

#[tokio::test]
async fn stock_quantity_takes_an_integer_or_a_string_of_one_as_wordpress_does() {
    let env = start().await;
    let listing = |body: Value| {
        let control = &env.control;
        async move {
            control.post("/listings", body).await[0]["listing"]["id"]
                .as_u64()
                .unwrap()
        }
    };
    let product = listing(json!({"marketplace": WOO, "sku": "MBA", "quantity": 6})).await;
    let variation =
        listing(json!({"marketplace": WOO, "sku": "MBA-16GB", "quantity": 4, "variation_of": 500}))
            .await;
    let product_path = format!("/wp-json/wc/v3/products/{product}");
    for (value, expected) in [
        (json!("7"), 7),
        (json!(" 8"), 8),
        (json!("9.0"), 9),
        (json!(2), 2),
    ] {
        let (status, body) = put_stock(&env, &product_path, value.clone()).await;
        assert_eq!(
            (status, &body["stock_quantity"]),
            (200, &json!(expected)),
            "{value}: {body}"
        );
    }
    for value in [json!("7.5"), json!("abc"), json!(""), json!(true)] {
        let (status, body) = put_stock(&env, &product_path, value.clone()).await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!("rest_invalid_param")),
            "{value}: {body}"
        );
        assert_eq!(body["message"], "Invalid parameter(s): stock_quantity");
    }
    assert_eq!(
        env.control.pushes().await["current"][WOO]["MBA"],
        2,
        "refusals change nothing"
    );

    let variation_path = format!("/wp-json/wc/v3/products/500/variations/{variation}");
    let (status, body) = put_stock(&env, &variation_path, json!("3")).await;
    assert_eq!(
        (status, &body["stock_quantity"]),
        (200, &json!(3)),
        "{body}"
    );
    let (status, _) = put_stock(&env, &variation_path, json!("3.5")).await;
    assert_eq!(status, 400);

    let batch = json!({"update": [{"id": product, "stock_quantity": "5"},
                                  {"id": product, "stock_quantity": "5.5"}]});
    let (status, body) = env
        .call(
            WOO,
            reqwest::Method::POST,
            "/wp-json/wc/v3/products/batch",
            Some(batch),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["update"][0]["stock_quantity"], 5, "{body}");
    assert_eq!(
        body["update"][1]["error"]["code"], "rest_invalid_param",
        "{body}"
    );
}
