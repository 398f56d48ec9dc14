//! WooCommerce webhooks the api stores per second, against the real services.
//!
//! `cargo bench -p stockfleet-tests --bench webhook_ingest [-- N]`
//!
//! N signed `order.created` deliveries (default 2,000, one item each over 50
//! SKUs) are posted by 16 concurrent senders, as a busy shop's WooCommerce
//! would, to an api served in this process; each is verified, parsed and
//! stored with its `order.created` event in one transaction. The figure is N
//! over the time until every delivery was answered; the bench then checks
//! that every order was stored and announced once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Instant;
use stockfleet_tests::{TestEnv, eventually};

const SECRET: &str = "bench-secret";
const SENDERS: usize = 16;

fn delivery(order: usize) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&serde_json::json!({
        "id": order,
        "status": "processing",
        "date_created_gmt": "2026-11-23T10:00:00",
        "date_modified_gmt": "2026-11-23T10:00:00",
        "line_items": [{"id": order * 10, "sku": format!("WH-{:02}", order % 50), "quantity": 1}],
    }))
    .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = BASE64.encode(mac.finalize().into_bytes());
    (body, signature)
}

fn main() {
    // Before the runtime starts any thread: the api reads the secret per request.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("WEBHOOK_SECRET_WOOCOMMERCE", SECRET) };
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let deliveries: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(2_000);
    let env = TestEnv::new().await;
    for n in 0..50 {
        env.set_stock_on("woocommerce", &format!("WH-{n:02}"), 1_000)
            .await;
    }
    let events = env.observe("order.created.#").await;
    let api = env.api().await;
    let hook = format!("{}/webhooks/woocommerce/woocommerce", api.base);
    let bodies: Vec<(Vec<u8>, String)> = (1..=deliveries).map(delivery).collect();

    let started = Instant::now();
    let answered: Vec<reqwest::StatusCode> = futures::stream::iter(bodies)
        .map(|(body, signature)| {
            let request = api
                .http
                .post(&hook)
                .header("content-type", "application/json")
                .header("x-wc-webhook-topic", "order.created")
                .header("x-wc-webhook-signature", signature)
                .body(body);
            async move { request.send().await.expect("api answers").status() }
        })
        .buffer_unordered(SENDERS)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(answered.iter().all(|status| status.is_success()));
    println!(
        "{deliveries} webhooks stored in {:.2} s = {:.0} webhooks/s ({SENDERS} concurrent senders)",
        elapsed.as_secs_f64(),
        deliveries as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM orders").await,
        deliveries as i64
    );
    eventually("every order announced", || async {
        events.count().await as usize == deliveries
    })
    .await;
    api.stop().await;
}
