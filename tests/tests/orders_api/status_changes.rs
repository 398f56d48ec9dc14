//! Status changes asked over the API: sent to the marketplace (the
//! simulator) and done, refused with 409 before anything is sent, or ended
//! failed with the marketplace's reason.

use super::WOO;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stockfleet::admin::tokens::Role;
use stockfleet_tests::{ApiServer, TestEnv, eventually};

/// Stores a WooCommerce order as the poller would, with one item.
async fn stored_order(env: &TestEnv, order_id: &str, status: &str) {
    sqlx::query(
        "WITH o AS (
             INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw)
             SELECT id, $1, $2, $2, '{}' FROM marketplaces WHERE code = 'woocommerce'
             RETURNING id)
         INSERT INTO order_items (order_id, external_id, sku, quantity, status, raw_status)
         SELECT id, '1', 'ST-1', 1, $2, $2 FROM o",
    )
    .bind(order_id)
    .bind(status)
    .execute(&env.db)
    .await
    .unwrap();
}

async fn change_state(api: &ApiServer, token: &str, order: &str) -> Value {
    let (_, detail) = api
        .get(&format!("/api/v1/orders/woocommerce/{order}"), token)
        .await;
    detail["status_changes"][0].clone()
}

#[tokio::test]
async fn a_status_change_reaches_the_marketplace_or_is_refused_before_it_is_sent() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(WOO, "ST-1", 10).await;
    let order = sim.place(WOO, "ST-1", 1).await;
    sim.move_order(WOO, &order, "processing").await;
    stored_order(&env, &order, "accepted").await;
    // An order the marketplace does not have: its change fails there.
    stored_order(&env, "999999", "accepted").await;
    let publisher = env.start_publisher(&sim).await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;
    let path = format!("/api/v1/orders/woocommerce/{order}/status");
    let ship = json!({"status": "shipped", "tracking": {"number": "1Z999", "carrier": "UPS"}});

    let put = |token: &str, path: &str, body: Value| {
        let request = api
            .http
            .put(format!("{}{path}", api.base))
            .bearer_auth(token.to_owned())
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(
        put(&viewer, &path, ship.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, change) = put(&operator, &path, ship.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{change}");
    assert_eq!(
        (&change["state"], &change["actor"], &change["from_status"]),
        (&json!("pending"), &json!("api:otto"), &json!("accepted"))
    );
    eventually("the simulator's order is completed", || async {
        sim.get(&format!("/orders/woocommerce/{order}")).await["status"] == "completed"
    })
    .await;
    eventually("the change is done", || async {
        change_state(&api, &viewer, &order).await["state"] == "done"
    })
    .await;

    // Illegal for WooCommerce from where the order is: 409, nothing recorded or sent.
    sqlx::query("UPDATE orders SET status = 'shipped' WHERE external_id = $1")
        .bind(&order)
        .execute(&env.db)
        .await
        .unwrap();
    let requests = sim.get("/requests?marketplace=woocommerce").await;
    let sent = requests.as_array().unwrap().len();
    let (status, refused) = put(&operator, &path, json!({"status": "accepted"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("shipped to accepted"),
        "{refused}"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM order_status_changes")
            .await,
        1
    );
    assert_eq!(env.outbox_len().await, 0);
    let requests = sim.get("/requests?marketplace=woocommerce").await;
    assert_eq!(requests.as_array().unwrap().len(), sent, "nothing sent");
    // Bad bodies name their field; another marketplace's path is a 404.
    let (status, bad) = put(&operator, &path, json!({"status": "teleported"})).await;
    assert_eq!(
        (status, &bad["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("status"))
    );
    let (status, _) = put(
        &operator,
        "/api/v1/orders/woocommerce/404404/status",
        ship.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The marketplace refuses: the change ends failed with its reason.
    let missing = "/api/v1/orders/woocommerce/999999/status";
    let (status, _) = put(&operator, missing, json!({"status": "cancelled"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually("the refused change is failed", || async {
        change_state(&api, &viewer, "999999").await["state"] == "failed"
    })
    .await;
    let failed = change_state(&api, &viewer, "999999").await;
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    api.stop().await;
    publisher.stop().await;
}
