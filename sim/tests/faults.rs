//! The control API's timed and counted faults: quantity writes acked
//! without being applied, and a full outage that ends by itself.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CODES: [&str; 3] = ["backmarket", "refurbed", "woocommerce"];

/// Listings of `sku` with 10 units on every marketplace; their ids by marketplace.
async fn listed_everywhere(env: &Env, sku: &str) -> Vec<(&'static str, u64)> {
    let created = env
        .control
        .post("/listings", json!({"sku": sku, "quantity": 10}))
        .await;
    CODES
        .into_iter()
        .map(|code| {
            let listing = created
                .as_array()
                .unwrap()
                .iter()
                .find(|row| row["marketplace"] == code)
                .unwrap();
            (code, listing["listing"]["id"].as_u64().unwrap())
        })
        .collect()
}

/// One quantity write through the marketplace's own endpoint (Back Market
/// POST /ws/listings/{id}, Refurbed UpdateOffer, WooCommerce PUT product);
/// answers the quantity its 200 answer shows.
async fn write_quantity(env: &Env, code: &str, sku: &str, id: u64, quantity: i64) -> i64 {
    let (status, body) = match code {
        "backmarket" => {
            let path = format!("/ws/listings/{id}");
            let body = json!({"quantity": quantity});
            env.call(code, Method::POST, &path, Some(body)).await
        }
        "refurbed" => {
            let path = "/refb.merchant.v1.OfferService/UpdateOffer";
            let body = json!({"identifier": {"sku": sku}, "stock": quantity});
            env.call(code, Method::POST, path, Some(body)).await
        }
        _ => {
            let path = format!("/wp-json/wc/v3/products/{id}");
            let body = json!({"stock_quantity": quantity});
            env.call(code, Method::PUT, &path, Some(body)).await
        }
    };
    assert_eq!(status, 200, "{code}: {body}");
    let shown = match code {
        "backmarket" => &body["quantity"],
        "refurbed" => &body["offer"]["stock"],
        _ => &body["stock_quantity"],
    };
    shown.as_i64().unwrap()
}

/// `(quantity, applied)` of every push to `code`, in order.
async fn pushes_to(env: &Env, code: &str) -> Vec<(i64, bool)> {
    let pushes = env.control.pushes().await;
    pushes["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|push| push["marketplace"] == code)
        .map(|push| {
            let quantity = push["quantity"].as_i64().unwrap();
            (quantity, push["applied"].as_bool().unwrap())
        })
        .collect()
}

/// What the control API shows as stored for `sku` on `code`.
async fn stored_quantity(env: &Env, code: &str, sku: &str) -> Value {
    let listings = env
        .control
        .get(&format!("/listings?marketplace={code}"))
        .await;
    let listing = listings
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["listing"]["sku"] == sku)
        .unwrap();
    listing["listing"]["quantity"].clone()
}

#[tokio::test]
async fn counted_writes_are_acked_as_applied_but_nothing_is_stored() {
    let env = start().await;
    for (code, id) in listed_everywhere(&env, "ACK").await {
        env.control
            .faults(code, json!({"ack_without_apply_writes": 2}))
            .await;
        assert_eq!(write_quantity(&env, code, "ACK", id, 3).await, 3, "{code}");
        assert_eq!(write_quantity(&env, code, "ACK", id, 4).await, 4, "{code}");
        // The marketplace's own read, and the control API, show what is stored.
        let adapter = env.adapter(code);
        assert_eq!(adapter.listing_quantity("ACK").await, Ok(10), "{code}");
        assert_eq!(stored_quantity(&env, code, "ACK").await, 10, "{code}");
        assert_eq!(env.control.pushes().await["current"][code]["ACK"], 10);
        let faults = env.control.get("/faults").await;
        assert_eq!(
            faults[code]["ack_without_apply_writes"], 0,
            "{code}: used up"
        );

        assert_eq!(write_quantity(&env, code, "ACK", id, 5).await, 5, "{code}");
        assert_eq!(adapter.listing_quantity("ACK").await, Ok(5), "{code}");
        assert_eq!(
            pushes_to(&env, code).await,
            [(3, false), (4, false), (5, true)],
            "{code}"
        );
    }
}

#[tokio::test]
async fn each_sku_of_a_batch_is_one_counted_write() {
    let env = start().await;
    let mut ids = Vec::new();
    for sku in ["A", "B", "C"] {
        ids.push(listed_everywhere(&env, sku).await[2].1);
    }
    for code in ["refurbed", "woocommerce"] {
        env.control
            .faults(code, json!({"ack_without_apply_writes": 2}))
            .await;
    }
    let offers: Vec<Value> = ["A", "B", "C"]
        .iter()
        .zip(1..)
        .map(|(sku, stock)| json!({"identifier": {"sku": sku}, "stock": stock}))
        .collect();
    let path = "/refb.merchant.v1.OfferService/BatchUpdateOffers";
    let (status, body) = env
        .call(
            "refurbed",
            Method::POST,
            path,
            Some(json!({"offers": offers})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let shown: Vec<&Value> = (0..3)
        .map(|i| &body["results"][i]["offer"]["stock"])
        .collect();
    assert_eq!(shown, [&json!(1), &json!(2), &json!(3)], "{body}");

    let updates: Vec<Value> = ids
        .iter()
        .zip(1..)
        .map(|(id, stock)| json!({"id": id, "stock_quantity": stock}))
        .collect();
    let path = "/wp-json/wc/v3/products/batch";
    let (status, body) = env
        .call(
            "woocommerce",
            Method::POST,
            path,
            Some(json!({"update": updates})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let shown: Vec<&Value> = (0..3)
        .map(|i| &body["update"][i]["stock_quantity"])
        .collect();
    assert_eq!(shown, [&json!(1), &json!(2), &json!(3)], "{body}");

    for code in ["refurbed", "woocommerce"] {
        assert_eq!(
            pushes_to(&env, code).await,
            [(1, false), (2, false), (3, true)],
            "{code}"
        );
        let current = &env.control.pushes().await["current"][code];
        assert_eq!(
            (&current["A"], &current["B"], &current["C"]),
            (&json!(10), &json!(10), &json!(3))
        );
    }
}

#[tokio::test]
async fn a_rate_of_one_acks_every_write_without_applying_it() {
    let env = start().await;
    let (code, id) = listed_everywhere(&env, "ACK").await[0];
    env.control
        .faults(code, json!({"ack_without_apply_rate": 1.0}))
        .await;
    for quantity in [1, 2, 3] {
        assert_eq!(
            write_quantity(&env, code, "ACK", id, quantity).await,
            quantity
        );
    }
    assert_eq!(env.adapter(code).listing_quantity("ACK").await, Ok(10));
    assert_eq!(
        pushes_to(&env, code).await,
        [(1, false), (2, false), (3, false)]
    );
}

/// Every kind of Back Market route (list, read, write, unknown, unauthenticated).
async fn backmarket_routes(env: &Env) -> Vec<(u16, Value)> {
    let mut answers = vec![
        env.call("backmarket", Method::GET, "/ws/orders", None)
            .await,
        env.call(
            "backmarket",
            Method::GET,
            "/ws/listings/detail?sku=OUT",
            None,
        )
        .await,
        env.call(
            "backmarket",
            Method::POST,
            "/ws/listings/1",
            Some(json!({"quantity": 1})),
        )
        .await,
        env.call("backmarket", Method::GET, "/ws/no-such-route", None)
            .await,
    ];
    let anonymous = reqwest::get(format!("{}/ws/orders", env.sim.base_url("backmarket")))
        .await
        .unwrap();
    answers.push((anonymous.status().as_u16(), anonymous.json().await.unwrap()));
    answers
}

#[tokio::test]
async fn an_outage_answers_every_route_503_in_the_marketplace_s_format() {
    let env = start().await;
    env.control
        .faults("backmarket", json!({"outage_secs": 1200}))
        .await;
    for (status, body) in backmarket_routes(&env).await {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("outage")
        );
    }
    let outage = &env.control.get("/faults").await["backmarket"]["outage"];
    assert_eq!(outage["refused_requests"], 5, "{outage}");
    assert!(outage["until"].is_string(), "{outage}");
    let log = env.control.get("/requests?marketplace=backmarket").await;
    assert!(
        log.as_array().unwrap().iter().all(|r| r["status"] == 503),
        "{log}"
    );

    // The other marketplaces and the control API are not affected.
    let orders = "/refb.merchant.v1.OrderService/ListOrders";
    let (status, _) = env
        .call("refurbed", Method::POST, orders, Some(json!({})))
        .await;
    assert_eq!(status, 200);

    env.control
        .faults("refurbed", json!({"outage_secs": 1200}))
        .await;
    env.control
        .faults("woocommerce", json!({"outage_secs": 1200}))
        .await;
    let (status, body) = env
        .call("refurbed", Method::POST, orders, Some(json!({})))
        .await;
    assert_eq!(status, 503);
    assert_eq!(
        (&body["code"], &body["details"]),
        (&json!(14), &json!([])),
        "{body}"
    );
    let (status, body) = env
        .call("woocommerce", Method::GET, "/wp-json/wc/v3/orders", None)
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "service_unavailable", "{body}");
    assert_eq!(body["data"]["status"], 503, "{body}");

    // Clearing the faults ends the outage at once.
    env.control
        .send(Method::DELETE, "/faults/refurbed", None)
        .await;
    let (status, _) = env
        .call("refurbed", Method::POST, orders, Some(json!({})))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_outage_ends_by_itself_after_its_seconds() {
    let env = start().await;
    let set_at = Instant::now();
    env.control
        .faults("backmarket", json!({"outage_secs": 1}))
        .await;
    let recovered = loop {
        let (status, _) = env
            .call("backmarket", Method::GET, "/ws/orders", None)
            .await;
        if status == 200 {
            break set_at.elapsed();
        }
        assert_eq!(status, 503);
        assert!(
            set_at.elapsed() < Duration::from_secs(10),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(recovered >= Duration::from_secs(1), "{recovered:?}");
    let outage = &env.control.get("/faults").await["backmarket"]["outage"];
    assert!(
        outage["refused_requests"].as_u64().unwrap() >= 1,
        "{outage}"
    );
}

#[tokio::test]
async fn fault_bodies_are_refused_with_400_naming_the_field() {
    let env = start().await;
    let refused = [
        (json!({"outage_sec": 5}), "unknown field `outage_sec`"),
        (
            json!({"outage_secs": 0}),
            "outage_secs must be between 1 and 86400",
        ),
        (
            json!({"outage_secs": 86_401}),
            "outage_secs must be between 1 and 86400",
        ),
        (json!({"outage_secs": "soon"}), "outage_secs: invalid type"),
        (
            json!({"ack_without_apply_writes": -1}),
            "ack_without_apply_writes: invalid value",
        ),
        (
            json!({"ack_without_apply_rate": 1.5}),
            "ack_without_apply_rate must be between 0 and 1",
        ),
        (
            json!({"error_rate": 2.0}),
            "error_rate must be between 0 and 1",
        ),
        // Shown by GET /faults, never set.
        (
            json!({"outage": {"refused_requests": 0}}),
            "unknown field `outage`",
        ),
    ];
    for (body, expected) in refused {
        let (status, answer) = env
            .control
            .send(Method::PUT, "/faults/woocommerce", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(
        env.control.get("/faults").await["woocommerce"]["outage"],
        Value::Null,
        "nothing was set"
    );
}
