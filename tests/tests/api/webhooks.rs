//! The WooCommerce webhook receiver of `stockfleet-api` (the simulator
//! delivering): signed deliveries stored like polled orders, forged, repeated
//! and stale ones changing nothing, and bounds on an order's fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use stockfleet::admin::tokens::Role;
use stockfleet_tests::{TestEnv, eventually, free_port, get_json, get_text, terminate};

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// `stockfleet-api` on free ports with the WooCommerce webhook secret, once it
/// answers: the process, its base URL and its health port.
async fn api_with_webhook_secret(
    env: &TestEnv,
    secret: &str,
) -> (tokio::process::Child, String, u16) {
    let (base, health) = (format!("http://127.0.0.1:{}", free_port()), free_port());
    let api = env
        .command("stockfleet-api")
        .env("API_ADDR", base.trim_start_matches("http://"))
        .env("HEALTH_ADDR", format!("127.0.0.1:{health}"))
        .env("WEBHOOK_SECRET_WOOCOMMERCE", secret)
        .kill_on_drop(true)
        .spawn()
        .expect("start stockfleet-api");
    let http = reqwest::Client::new();
    eventually("the api answers", || async {
        http.get(format!("{base}/login")).send().await.is_ok()
    })
    .await;
    (api, base, health)
}

#[tokio::test]
async fn woocommerce_webhooks_are_verified_and_stored_like_polled_orders() {
    const SECRET: &str = "wh-secret";
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing("woocommerce", "WOO-1", 5).await;
    env.set_stock_on("woocommerce", "WOO-1", 5).await;
    let events = env.observe("order.#").await;
    let (api, base, _) = api_with_webhook_secret(&env, SECRET).await;
    let http = reqwest::Client::new();

    let hook = format!("{base}/webhooks/woocommerce/woocommerce");
    sim.put(
        "/webhooks/woocommerce",
        json!({"url": hook, "secret": SECRET}),
    )
    .await;
    let order = sim.place("woocommerce", "WOO-1", 2).await;
    let stored = format!("SELECT count(*) FROM orders WHERE external_id = '{order}'");
    eventually("the order is stored from its webhook", || async {
        env.scalar(&stored).await == 1
    })
    .await;
    sim.move_order("woocommerce", &order, "completed").await;
    let shipped =
        format!("SELECT count(*) FROM orders WHERE external_id = '{order}' AND status = 'shipped'");
    eventually("the update is stored", || async {
        env.scalar(&shipped).await == 1
    })
    .await;
    eventually("both events out", || async { events.count().await == 2 }).await;
    // The stored order, item by item, with the marketplace's own JSON.
    let viewer = env.token("vera", Role::Viewer).await;
    let detail = get_json(
        &format!("{base}/api/v1/orders/woocommerce/{order}"),
        Some(&viewer),
    )
    .await;
    assert_eq!(detail["status"], "shipped", "{detail}");
    assert_eq!(detail["raw"]["id"].to_string(), order);
    let item = &detail["items"][0];
    assert_eq!(
        (&item["sku"], &item["known_sku"], &item["quantity"]),
        (&json!("WOO-1"), &json!(true), &json!(2))
    );
    let missing = http
        .get(format!("{base}/api/v1/orders/woocommerce/999999"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let kinds: Vec<String> = events.take().await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["order.created", "order.status_changed"]);
    let deliveries = sim.get("/webhooks/woocommerce").await["deliveries"].clone();
    let statuses: Vec<&Value> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(200); 3],
        "ping, created, updated: {deliveries}"
    );

    // A forged delivery, the same delivery again (WooCommerce retries one it
    // thinks failed), an older copy of the order and a body that is no order
    // change nothing: the next real change is the next event.
    let later = env.observe("order.#").await;
    let raw: Value = serde_json::from_str(
        &sqlx::query_scalar::<_, String>("SELECT raw::text FROM orders WHERE external_id = $1")
            .bind(&order)
            .fetch_one(&env.db)
            .await
            .unwrap(),
    )
    .unwrap();
    let mut older = raw.clone();
    older["status"] = json!("processing");
    older["date_modified_gmt"] = json!("2000-01-01T00:00:00");
    let deliver = |order: &Value, secret: &str| {
        let body = serde_json::to_vec(order).unwrap();
        http.post(&hook)
            .header("content-type", "application/json")
            .header("x-wc-webhook-topic", "order.updated")
            .header("x-wc-webhook-signature", sign(&body, secret))
            .body(body)
            .send()
    };
    let forged = deliver(&older, "not the secret").await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let again = deliver(&raw, SECRET).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["events"], 0);
    let late = deliver(&older, SECRET).await.unwrap();
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(late.json::<Value>().await.unwrap()["events"], 0);
    assert_eq!(env.scalar(&shipped).await, 1);
    let garbage = b"{\"id\": \"not an order\"".to_vec();
    let refused = http
        .post(&hook)
        .header("x-wc-webhook-topic", "order.created")
        .header("x-wc-webhook-signature", sign(&garbage, SECRET))
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    sim.move_order("woocommerce", &order, "refunded").await;
    eventually("the refund's event out", || async {
        later.count().await == 1
    })
    .await;
    let next = later.take().await;
    assert_eq!(next[0].payload["status"], "returned", "{:?}", next[0]);
    assert_eq!(env.scalar(&stored).await, 1);

    terminate(api).await;
}

#[tokio::test]
async fn a_webhook_order_is_bounded_by_field_a_long_note_is_stored_and_a_long_sku_refused_and_counted()
 {
    const SECRET: &str = "wh-secret";
    let env = TestEnv::new().await;
    env.set_stock_on("woocommerce", "WOO-NOTE", 5).await;
    let (api, base, health) = api_with_webhook_secret(&env, SECRET).await;
    let http = reqwest::Client::new();
    let hook = format!("{base}/webhooks/woocommerce/woocommerce");
    let deliver = |order: Value| {
        let body = serde_json::to_vec(&order).unwrap();
        http.post(&hook)
            .header("content-type", "application/json")
            .header("x-wc-webhook-topic", "order.created")
            .header("x-wc-webhook-signature", sign(&body, SECRET))
            .body(body)
            .send()
    };
    let order = |id: u32, sku: &str, note: &str| {
        json!({
            "id": id, "status": "processing", "customer_note": note,
            "date_created_gmt": "2026-12-06T10:00:00", "date_modified_gmt": "2026-12-06T10:00:00",
            "line_items": [{"id": id * 10, "sku": sku, "quantity": 1, "name": note}],
        })
    };

    // A buyer's note of 20,000 characters (and a product name as long) is free text: stored.
    let long_note = "n".repeat(20_000);
    let stored = deliver(order(7001, "WOO-NOTE", &long_note)).await.unwrap();
    assert_eq!(
        stored.status(),
        StatusCode::OK,
        "{}",
        stored.text().await.unwrap()
    );
    let kept: String =
        sqlx::query_scalar("SELECT raw->>'customer_note' FROM orders WHERE external_id = '7001'")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(kept.len(), 20_000);

    // A SKU of 5,000 characters is an identifier: refused, the field named and counted.
    let refused = deliver(order(7002, &"S".repeat(5_000), "short"))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["field"], "item.sku", "{answer}");
    assert_eq!(
        env.scalar("SELECT count(*) FROM orders WHERE external_id = '7002'")
            .await,
        0
    );
    let metrics = get_text(&format!("http://127.0.0.1:{health}/metrics")).await;
    let counted = metrics.lines().find(|line| {
        line.starts_with("stockfleet_webhooks_rejected_total")
            && line.contains(r#"reason="field""#)
            && line.contains(r#"field="item.sku""#)
    });
    assert!(
        counted.is_some_and(|line| line.ends_with(" 1")),
        "{metrics}"
    );
    terminate(api).await;
}
