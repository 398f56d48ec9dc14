//! Every error kind, for every adapter, against the simulator's faults.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use stockfleet::marketplace::{Marketplace, MarketplaceError};

const CODES: [&str; 3] = ["backmarket", "refurbed", "woocommerce"];

async fn probe(adapter: &dyn Marketplace) -> Result<u32, MarketplaceError> {
    adapter.listing_quantity("PROBE").await
}

async fn setup() -> Env {
    let env = start().await;
    env.control
        .post("/listings", json!({"sku": "PROBE", "quantity": 4}))
        .await;
    env
}

#[tokio::test]
async fn healthy_calls_succeed() {
    let env = setup().await;
    for code in CODES {
        assert_eq!(probe(&*env.adapter(code)).await, Ok(4), "{code}");
    }
}

#[tokio::test]
async fn rate_limit_storm_is_rate_limited_with_its_retry_after() {
    let env = setup().await;
    for code in CODES {
        env.control
            .faults(code, json!({"rate_limit_storm_secs": 7}))
            .await;
        let error = probe(&*env.adapter(code)).await.unwrap_err();
        assert_eq!(error.kind(), "rate_limited", "{code}: {error}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)), "{code}");
        assert!(
            error.message().contains("Too many requests"),
            "{code}: {error}"
        );
        assert_no_credentials(&error);
    }
}

#[tokio::test]
async fn past_the_configured_rate_the_sim_answers_429_and_counts_violations() {
    let env = setup().await;
    for code in CODES {
        env.control
            .put(
                &format!("/rate-limits/{code}"),
                json!({"general": {"requests": 2, "window_ms": 60000}}),
            )
            .await;
        let adapter = env.adapter(code);
        // Back Market resolves a SKU once per read: one call each.
        probe(&*adapter).await.unwrap();
        probe(&*adapter).await.unwrap();
        let error = probe(&*adapter).await.unwrap_err();
        let MarketplaceError::RateLimited { retry_after, .. } = &error else {
            panic!("{code}: expected rate limited, got {error:?}");
        };
        assert!(
            (Duration::from_secs(1)..=Duration::from_secs(60)).contains(retry_after),
            "{code}: {retry_after:?}"
        );
        let limits = env.control.get("/rate-limits").await;
        assert_eq!(limits[code]["violations"], 1, "{code}: {limits}");
    }
}

#[tokio::test]
async fn backmarket_listing_endpoints_have_their_own_tighter_limit() {
    let env = setup().await;
    let limits = env.control.get("/rate-limits").await;
    assert_eq!(limits["backmarket"]["limits"]["general"]["requests"], 200);
    assert_eq!(limits["backmarket"]["limits"]["listings"]["requests"], 20);
    assert_eq!(
        limits["backmarket"]["limits"]["listings"]["window_ms"],
        10000
    );
    let adapter = env.adapter("backmarket");
    for _ in 0..20 {
        probe(&*adapter).await.unwrap();
    }
    assert_eq!(probe(&*adapter).await.unwrap_err().kind(), "rate_limited");
    // Orders are not listing endpoints: still under the general limit.
    let order = env.control.order("backmarket", &[("PROBE", 1)], "1").await;
    adapter.get_order(&id(&order)).await.unwrap();
}

#[tokio::test]
async fn backmarket_caps_quantity_updates_apart_from_reads() {
    let env = setup().await;
    let limits = env.control.get("/rate-limits").await;
    let cap = &limits["backmarket"]["limits"]["quantity_updates"];
    assert_eq!(
        (&cap["requests"], &cap["window_ms"]),
        (&json!(2000), &json!(3_600_000))
    );
    // Scaled down: 3 updates per minute, generous request limits.
    let generous = json!({"requests": 1000, "window_ms": 1000});
    let three = json!({"requests": 3, "window_ms": 60_000});
    let limits = json!({"general": generous, "listings": generous, "quantity_updates": three});
    env.control.put("/rate-limits/backmarket", limits).await;
    let adapter = env.adapter("backmarket");
    for quantity in 1..=3 {
        adapter
            .set_listing_quantity("PROBE", quantity)
            .await
            .unwrap();
    }
    let error = adapter.set_listing_quantity("PROBE", 9).await.unwrap_err();
    assert_eq!(error.kind(), "rate_limited", "{error}");
    assert!(
        error
            .retry_after()
            .is_some_and(|wait| wait > Duration::from_secs(1))
    );
    // Reads are not updates.
    assert_eq!(probe(&*adapter).await.unwrap(), 3);
    let limits = env.control.get("/rate-limits").await;
    assert_eq!(limits["backmarket"]["violations"], 1);
}

#[tokio::test]
async fn server_errors_and_outages_are_transient() {
    let env = setup().await;
    for code in CODES {
        env.control.faults(code, json!({"error_rate": 1.0})).await;
        let error = probe(&*env.adapter(code)).await.unwrap_err();
        assert_eq!(error.kind(), "transient", "{code}: {error}");
        assert!(error.message().contains("HTTP 500"), "{code}: {error}");
        assert!(
            error.message().contains("simulated server error"),
            "{code}: {error}"
        );

        env.control.faults(code, json!({"down": true})).await;
        let error = probe(&*env.adapter(code)).await.unwrap_err();
        assert_eq!(error.kind(), "transient", "{code}: {error}");
        assert!(error.message().contains("HTTP 503"), "{code}: {error}");
        assert_no_credentials(&error);
    }
}

#[tokio::test]
async fn timeouts_are_transient() {
    let env = setup().await;
    for code in CODES {
        env.control.faults(code, json!({"timeout_ms": 30000})).await;
        let credential = env.sim.credentials().for_marketplace(code).unwrap();
        let adapter = env.adapter_with(code, &credential, Duration::from_millis(200));
        let error = probe(&*adapter).await.unwrap_err();
        assert_eq!(error.kind(), "transient", "{code}: {error}");
        assert!(error.message().contains("timed out"), "{code}: {error}");
        assert_no_credentials(&error);
    }
}

#[tokio::test]
async fn refused_connections_are_transient() {
    for code in CODES {
        let adapter = adapter_at(
            code,
            &closed_port_url(code),
            "WRONG-SECRET-TOKEN:x",
            Duration::from_secs(2),
        );
        let error = probe(&*adapter).await.unwrap_err();
        assert_eq!(error.kind(), "transient", "{code}: {error}");
        assert_no_credentials(&error);
    }
}

#[tokio::test]
async fn latency_is_added_but_calls_succeed() {
    let env = setup().await;
    env.control
        .faults("refurbed", json!({"latency_ms": 50}))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(probe(&*env.adapter("refurbed")).await, Ok(4));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// A write carried out whose answer never reaches the client (it gave up).
#[tokio::test]
async fn a_held_back_answer_still_applies_the_write() {
    let env = setup().await;
    env.control
        .faults("refurbed", json!({"answer_delay_ms": 5000}))
        .await;
    let impatient = env.adapter_with(
        "refurbed",
        &env.sim.credentials().for_marketplace("refurbed").unwrap(),
        Duration::from_millis(300),
    );
    let error = impatient
        .set_listing_quantity("PROBE", 9)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "transient", "{error}");
    env.control.faults("refurbed", json!({})).await;
    assert_eq!(probe(&*env.adapter("refurbed")).await, Ok(9));
}

#[tokio::test]
async fn malformed_bodies_are_permanent() {
    let env = setup().await;
    for code in CODES {
        env.control.faults(code, json!({"malformed": true})).await;
        let error = probe(&*env.adapter(code)).await.unwrap_err();
        assert_eq!(error.kind(), "permanent", "{code}: {error}");
        assert!(
            error.message().contains("malformed response body"),
            "{code}: {error}"
        );
    }
}

#[tokio::test]
async fn bad_credentials_are_permanent_with_the_marketplace_message_and_never_leak() {
    let env = setup().await;
    let expected = [
        (
            "backmarket",
            "WRONG-SECRET-TOKEN".to_owned(),
            "Invalid or missing token",
        ),
        (
            "refurbed",
            "WRONG-SECRET-TOKEN".to_owned(),
            "invalid or missing token",
        ),
        (
            "woocommerce",
            format!(
                "{}:WRONG-SECRET-TOKEN",
                common::credentials().woocommerce_key
            ),
            "woocommerce_rest_authentication_error",
        ),
        // Over plain HTTP the adapter signs with OAuth 1.0a, whose check
        // names an unknown key.
        (
            "woocommerce",
            "ck_unknown:WRONG-SECRET-TOKEN".to_owned(),
            "Consumer key is invalid.",
        ),
    ];
    for (code, credential, message) in expected {
        let adapter = env.adapter_with(code, &credential, Duration::from_secs(5));
        let error = probe(&*adapter).await.unwrap_err();
        assert_eq!(
            error,
            MarketplaceError::Permanent {
                status: Some(401),
                message: error.message().to_owned()
            },
            "{code}"
        );
        assert!(error.message().contains(message), "{code}: {error}");
        assert_no_credentials(&error);
    }
}

#[tokio::test]
async fn unknown_things_are_permanent_404s_with_the_marketplace_message() {
    let env = setup().await;
    let expected = [
        ("backmarket", "No order with this id"),
        ("refurbed", "order not found"),
        ("woocommerce", "woocommerce_rest_shop_order_invalid_id"),
    ];
    for (code, message) in expected {
        let adapter = env.adapter(code);
        let error = adapter.get_order("999999").await.unwrap_err();
        assert_eq!(error.kind(), "permanent", "{code}");
        assert!(
            matches!(
                error,
                MarketplaceError::Permanent {
                    status: Some(404),
                    ..
                }
            ),
            "{code}: {error:?}"
        );
        assert!(error.message().contains(message), "{code}: {error}");
        let error = adapter.listing_quantity("NO-SUCH-SKU").await.unwrap_err();
        assert!(
            matches!(
                error,
                MarketplaceError::Permanent {
                    status: Some(404),
                    ..
                }
            ),
            "{code}: {error:?}"
        );
    }
}

#[tokio::test]
async fn requests_are_logged_with_their_outcome() {
    let env = setup().await;
    probe(&*env.adapter("woocommerce")).await.unwrap();
    env.control
        .faults("woocommerce", json!({"down": true}))
        .await;
    probe(&*env.adapter("woocommerce")).await.unwrap_err();
    let requests = env.control.get("/requests?marketplace=woocommerce").await;
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["method"], "GET");
    // The query as sent, OAuth 1.0a parameters after the adapter's own.
    let path = requests[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with("/woocommerce/wp-json/wc/v3/products?sku=PROBE&oauth_"),
        "{path}"
    );
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[1]["status"], 503);
    env.control.post("/reset", json!({})).await;
    assert_eq!(env.control.get("/requests").await, json!([]));
}
