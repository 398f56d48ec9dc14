//! Back Market contract: every endpoint the adapter uses, answered with the
//! required fields and types of Back Market's document (common/schema.rs).

mod common;

use common::schema::*;
use common::*;
use serde_json::{Value, json};

const BM: &str = "backmarket";

/// A raw Back Market call with the documented headers.
async fn call(env: &Env, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    env.call(BM, method, path, body).await
}

async fn get(env: &Env, path: &str) -> Value {
    let (status, body) = call(env, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn check_listing(path: &str, listing: &Value) {
    check(path, BM_LISTING, listing);
    for (i, shipping) in listing["shippings"].as_array().unwrap().iter().enumerate() {
        check(&format!("{path}.shippings[{i}]"), BM_SHIPPING, shipping);
    }
}

fn check_order(path: &str, order: &Value) {
    check(path, BM_ORDER, order);
    for (i, line) in order["orderlines"].as_array().unwrap().iter().enumerate() {
        check(&format!("{path}.orderlines[{i}]"), BM_ORDERLINE, line);
    }
}

async fn priced_listing(env: &Env, sku: &str, price: &str) -> Value {
    env.control
        .post(
            "/listings",
            json!({"marketplace": BM, "sku": sku, "quantity": 20, "price": price}),
        )
        .await[0]["listing"]
        .clone()
}

#[tokio::test]
async fn listings_carry_every_required_field() {
    let env = start().await;
    let listing = priced_listing(&env, "IPH12", "160.99").await;
    let page = get(&env, "/ws/listings").await;
    check("listings", BM_PAGE, &page);
    check_listing("listings.results[0]", &page["results"][0]);

    let uuid = page["results"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/ws/listings/{uuid}"),
        format!("/ws/listings/{}", listing["id"]),
        "/ws/listings/detail?sku=IPH12".to_owned(),
    ] {
        let one = get(&env, &path).await;
        check_listing(&path, &one);
        check(&path, BM_SINGLE_LISTING, &one);
    }

    // A quantity as a string is allowed by the document.
    let (status, updated) = call(
        &env,
        reqwest::Method::POST,
        &format!("/ws/listings/{uuid}"),
        Some(json!({"quantity": "8"})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    check_listing("update", &updated);
    check("update", BM_SINGLE_LISTING, &updated);
    assert_eq!(updated["quantity"], 8);
    let (status, body) = call(
        &env,
        reqwest::Method::POST,
        &format!("/ws/listings/{uuid}"),
        Some(json!({"quantity": "eight"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.is_string(),
        "listing writes answer a JSON string: {body}"
    );

    let (status, body) = call(
        &env,
        reqwest::Method::GET,
        "/ws/listings/detail?sku=NOPE",
        None,
    )
    .await;
    assert_eq!(status, 404);
    check("404", BM_ERROR, &body);
    check("404.error", BM_ERROR_DETAIL, &body["error"]);
}

#[tokio::test]
async fn order_price_is_the_sum_of_its_lines() {
    let env = start().await;
    priced_listing(&env, "A", "299.25").await;
    priced_listing(&env, "B", "199.00").await;
    let order = env.control.order(BM, &[("A", 1), ("B", 2)], "1").await;
    let path = format!("/ws/orders/{}", id(&order));
    let order = get(&env, &path).await;
    check_order(&path, &order);
    assert_eq!(order["price"], "697.25");
    let lines = order["orderlines"].as_array().unwrap();
    assert_eq!(
        (&lines[0]["price"], &lines[1]["price"]),
        (&json!("299.25"), &json!("199.00"))
    );

    let page = get(&env, "/ws/orders?state=1").await;
    check("orders", BM_PAGE, &page);
    check_order("orders.results[0]", &page["results"][0]);
    assert_eq!(page["results"][0]["price"], "697.25");
}

#[tokio::test]
async fn shipping_keeps_tracking_url_and_shipper_and_dates_the_shipment() {
    let env = start().await;
    let order = env.control.order(BM, &[("A", 1)], "2").await;
    let path = format!("/ws/orders/{}", id(&order));
    let before = get(&env, &path).await;
    assert_eq!(before["date_shipping"], Value::Null);
    let ship = json!({"order_id": order["id"], "new_state": 3, "tracking_number": "1Z999",
                      "tracking_url": "https://ups.example/1Z999", "shipper": "UPS"});
    let (status, shipped) = call(&env, reqwest::Method::POST, &path, Some(ship)).await;
    assert_eq!(status, 200, "{shipped}");
    check_order("shipped", &shipped);
    assert_eq!(shipped["state"], 9);
    assert_eq!(shipped["tracking_number"], "1Z999");
    assert_eq!(shipped["tracking_url"], "https://ups.example/1Z999");
    assert_eq!(shipped["shipper"], "UPS");
    assert!(shipped["date_shipping"].is_string(), "{shipped}");
    assert_eq!(
        get(&env, &path).await["tracking_url"],
        "https://ups.example/1Z999"
    );
}

#[tokio::test]
async fn orders_shipped_through_the_control_api_carry_a_parcel_and_its_date() {
    let env = start().await;
    let placed_shipped = env.control.order(BM, &[("A", 1)], "3").await;
    let accepted = env.control.order(BM, &[("B", 1)], "2").await;
    let accepted_path = format!("/ws/orders/{}", id(&accepted));
    let before = get(&env, &accepted_path).await;
    assert_eq!(
        (&before["date_shipping"], &before["tracking_number"]),
        (&Value::Null, &Value::Null)
    );
    env.control.move_order(BM, &id(&accepted), "3").await;

    let mut numbers = Vec::new();
    for order in [&placed_shipped, &accepted] {
        let path = format!("/ws/orders/{}", id(order));
        let shipped = get(&env, &path).await;
        check_order(&path, &shipped);
        assert_eq!(shipped["state"], 9, "{shipped}");
        for field in [
            "date_shipping",
            "tracking_number",
            "tracking_url",
            "shipper",
        ] {
            assert!(shipped[field].is_string(), "{path}.{field}: {shipped}");
        }
        assert!(
            shipped["date_shipping"].as_str() >= shipped["date_creation"].as_str(),
            "{shipped}"
        );
        let number = shipped["tracking_number"].as_str().unwrap().to_owned();
        assert!(shipped["tracking_url"].as_str().unwrap().contains(&number));
        numbers.push(number);
    }
    assert_ne!(numbers[0], numbers[1], "each parcel its own number");
}

#[tokio::test]
async fn a_listing_price_write_applies_the_price_and_pushes_no_quantity() {
    let env = start().await;
    let listing = priced_listing(&env, "IPH12", "160.99").await;
    let path = format!("/ws/listings/{}", listing["id"]);
    let post = |body: Value| call(&env, reqwest::Method::POST, &path, Some(body));

    let (status, updated) = post(json!({"price": "289.00"})).await;
    assert_eq!(status, 200, "{updated}");
    check("update", BM_SINGLE_LISTING, &updated);
    assert_eq!(
        (&updated["price"], &updated["quantity"]),
        (&json!("289.00"), &json!(20))
    );
    assert_eq!(get(&env, &path).await["price"], "289.00");
    assert_eq!(
        env.control.pushes().await["history"],
        json!([]),
        "no quantity was written"
    );

    for bad in [
        json!({"price": "289.001"}),
        json!({"price": "abc"}),
        json!({"price": 289}),
        json!({"price": "-1.00"}),
        json!({"price": "12", "quantity": "eight"}),
        json!({"price": "1.2.3", "quantity": 3}),
    ] {
        let (status, body) = post(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body.is_string(),
            "listing writes answer a JSON string: {body}"
        );
    }
    let unchanged = get(&env, &path).await;
    assert_eq!(
        (&unchanged["price"], &unchanged["quantity"]),
        (&json!("289.00"), &json!(20))
    );

    let (status, both) = post(json!({"price": "150.5", "quantity": 3})).await;
    assert_eq!(status, 200, "{both}");
    assert_eq!(
        (&both["price"], &both["quantity"]),
        (&json!("150.50"), &json!(3))
    );
    let history = env.control.pushes().await["history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["quantity"], 3);
}

#[tokio::test]
async fn pages_link_only_to_pages_that_exist() {
    let env = start().await;
    for i in 0..5 {
        env.control.order(BM, &[(&format!("S{i}"), 1)], "1").await;
    }
    let (status, body) = call(&env, reqwest::Method::GET, "/ws/orders?page-size=51", None).await;
    assert_eq!(
        status, 400,
        "page-size has a documented maximum of 50: {body}"
    );
    check("400", BM_ERROR, &body);

    let first = get(&env, "/ws/orders?page-size=2").await;
    assert_eq!(first["count"], 5);
    let next = first["next"].as_str().unwrap();
    assert!(
        next.contains("page-size=2") && next.contains("page=2"),
        "{next}"
    );

    let past = get(&env, "/ws/orders?page-size=2&page=9").await;
    assert_eq!(past["results"], json!([]));
    assert_eq!(past["next"], Value::Null);
    let previous = past["previous"].as_str().unwrap().to_owned();
    let last = get(&env, &previous).await;
    assert_eq!(last["results"].as_array().unwrap().len(), 1, "{previous}");
}

#[tokio::test]
async fn care_count_is_the_pages() {
    let env = start().await;
    let order = env.control.order(BM, &[("A", 12)], "3").await;
    for _ in 0..12 {
        env.control
            .post("/care", json!({"marketplace": BM, "order_id": order["id"]}))
            .await;
    }
    let first = get(&env, "/ws/sav").await;
    check("sav", BM_PAGE, &first);
    check("sav.results[0]", BM_CARE, &first["results"][0]);
    assert_eq!(
        first["count"], 10,
        "the document: number of care folders on the page"
    );
    let second = get(&env, first["next"].as_str().unwrap()).await;
    assert_eq!(second["count"], 2);
    assert_eq!(second["next"], Value::Null);
}

#[tokio::test]
async fn refusals_use_the_documented_envelopes() {
    let env = start().await;
    let url = format!("{}/ws/orders", env.sim.base_url(BM));
    let no_token = reqwest::Client::new()
        .get(&url)
        .header("User-Agent", "BM-stockfleet-tests;dev@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let body: Value = no_token.json().await.unwrap();
    check("401", BM_ERROR, &body);
    check("401.error", BM_ERROR_DETAIL, &body["error"]);

    let (status, body) = call(&env, reqwest::Method::GET, "/ws/orders/424242", None).await;
    assert_eq!(status, 404);
    check("404", BM_ERROR, &body);

    env.control
        .faults(BM, json!({"rate_limit_storm_secs": 10}))
        .await;
    let (status, body) = call(&env, reqwest::Method::GET, "/ws/orders", None).await;
    assert_eq!(status, 429);
    check("429", BM_ERROR, &body);
    check("429.error", BM_ERROR_DETAIL, &body["error"]);
}
