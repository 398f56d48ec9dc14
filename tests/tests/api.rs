//! The REST API, the dashboard and the WooCommerce webhook receiver against
//! real PostgreSQL and RabbitMQ (and the simulator for webhooks).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use stockfleet::admin::tokens::{self, Role};
use stockfleet::bus::{Exchange, QueueSpec};
use stockfleet::ledger::Role as Worker;
use stockfleet_tests::{TestEnv, created, eventually, free_port, get_json, get_text, terminate};

#[tokio::test]
async fn tokens_and_roles_guard_every_change() {
    let env = TestEnv::new().await;
    env.set_stock("API-1", 10).await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;

    let anonymous = api
        .http
        .get(format!("{}/api/v1/stock", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        api.get("/api/v1/stock", "sft_forged").await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, page) = api.get("/api/v1/stock?sku=API-1", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1, "{page}");
    let rows = &page["items"];
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(
        (rows[0]["listed"].as_i64(), rows[0]["available"].as_i64()),
        (Some(10), Some(10))
    );

    let topup = json!({"adjust": 5, "reason": "delivery from the workshop"});
    let path = "/api/v1/stock/API-1/backmarket";
    assert_eq!(
        api.post(path, &viewer, topup.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, row) = api.post(path, &operator, topup).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["listed"], 15);
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM marketplace_stock_history
             WHERE actor = 'api:otto' AND change_type = 'topup' AND quantity_change = 5"
        )
        .await,
        1
    );
    let (_, history) = api.get("/api/v1/stock/API-1/history", &viewer).await;
    let newest = &history["items"][0];
    assert_eq!(newest["actor"], "api:otto", "{history}");
    assert_eq!(newest["notes"], "delivery from the workshop");

    // Bad requests say what is wrong and change nothing.
    for (body, path, expected) in [
        (
            json!({"set": 3, "adjust": 1, "reason": "x"}),
            path,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"adjust": 1, "reason": " "}),
            path,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"set": -1, "reason": "x"}),
            path,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"adjust": 1, "reason": "x"}),
            "/api/v1/stock/NO-SUCH/backmarket",
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"adjust": 1, "reason": "x"}),
            "/api/v1/stock/API-1/ebay",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, answer) = api.post(path, &operator, body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    assert_eq!(env.levels("API-1").await, (15, 0, 15));

    // The dashboard's cookie reads but never writes.
    let cookie = format!("stockfleet_token={operator}");
    let read = api
        .http
        .get(format!("{}/api/v1/whoami", api.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write = api
        .http
        .post(format!("{}{path}", api.base))
        .header("cookie", &cookie)
        .json(&json!({"adjust": 1, "reason": "cross-site"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(env.levels("API-1").await, (15, 0, 15));

    // Requests are counted by route template, never by raw path.
    let metrics = stockfleet::telemetry::metrics().render();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("stockfleet_http_requests_total")
                && line.contains(r#"route="/api/v1/stock/{sku}/{marketplace}""#)
                && line.contains(r#"status="403""#)),
        "{metrics}"
    );
    assert!(!metrics.contains("API-1"), "no SKU in a label");

    tokens::revoke(&env.db, "otto").await.unwrap();
    assert_eq!(
        api.get("/api/v1/whoami", &operator).await.0,
        StatusCode::UNAUTHORIZED
    );
    api.stop().await;
}

#[tokio::test]
async fn only_admins_change_marketplaces_and_bad_values_are_refused() {
    let env = TestEnv::new().await;
    let api = env.api().await;
    let operator = env.token("otto", Role::Operator).await;
    let admin = env.token("ada", Role::Admin).await;
    let path = "/api/v1/marketplaces/refurbed";
    let pause =
        json!({"sync_enabled": false, "rate_limit_requests": 5, "rate_limit_window_seconds": 2});

    assert_eq!(
        api.patch(path, &operator, pause.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, row) = api.patch(path, &admin, pause).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(
        (
            &row["sync_enabled"],
            &row["rate_limit_requests"],
            &row["rate_limit_window_seconds"]
        ),
        (&json!(false), &json!(5), &json!(2))
    );
    let stored = "SELECT count(*) FROM marketplaces WHERE code = 'refurbed'
                  AND NOT sync_enabled AND rate_limit_requests = 5 AND rate_limit_window_seconds = 2";
    assert_eq!(env.scalar(stored).await, 1);

    for (body, expected) in [
        (
            json!({"rate_limit_requests": 0, "rate_limit_window_seconds": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"rate_limit_requests": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"default_buffer_percentage": 150}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"colour": "blue"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, answer) = api.patch(path, &admin, body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(
        env.scalar(stored).await,
        1,
        "refused changes change nothing"
    );

    // A cap on quantity updates is set whole and removed with null.
    let capped = json!({"quantity_updates": {"limit": 100, "window_seconds": 60}});
    let (_, row) = api.patch(path, &admin, capped).await;
    assert_eq!(
        (
            &row["quantity_update_limit"],
            &row["quantity_update_window_seconds"]
        ),
        (&json!(100), &json!(60))
    );
    let (_, row) = api.patch(path, &admin, json!({"sync_enabled": true})).await;
    assert_eq!(row["quantity_update_limit"], 100, "left out: kept");
    let (_, row) = api
        .patch(path, &admin, json!({"quantity_updates": null}))
        .await;
    assert_eq!(row["quantity_update_limit"], Value::Null, "null: removed");
    let (status, _) = api
        .patch(
            "/api/v1/marketplaces/ebay",
            &admin,
            json!({"sync_enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[tokio::test]
async fn sync_requests_reach_the_fleet_through_the_outbox() {
    let env = TestEnv::new().await;
    let observer = env.observe_on(Exchange::Commands, "sync.#").await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;

    let new_orders = json!({"marketplace": "backmarket", "type": "new", "force": true});
    assert_eq!(
        api.post("/api/v1/sync", &viewer, new_orders.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = api
        .post(
            "/api/v1/sync",
            &operator,
            json!({"marketplace": "nowhere", "type": "new"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(
            "/api/v1/sync",
            &operator,
            json!({"marketplace": "backmarket", "type": "weekly"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, answer) = api.post("/api/v1/sync", &operator, new_orders).await;
    assert_eq!(
        (status, &answer["queued"]),
        (StatusCode::ACCEPTED, &json!(1))
    );
    let (status, answer) = api
        .post(
            "/api/v1/sync",
            &operator,
            json!({"marketplace": "all", "type": "stock"}),
        )
        .await;
    assert_eq!(
        (status, &answer["queued"]),
        (StatusCode::ACCEPTED, &json!(3))
    );

    eventually("4 sync commands delivered", || async {
        observer.count().await == 4
    })
    .await;
    let mut requests: Vec<(String, String, bool, String)> = observer
        .take()
        .await
        .into_iter()
        .map(|envelope| {
            let payload = envelope.payload;
            (
                envelope.marketplace,
                payload["sync_type"].as_str().unwrap().to_owned(),
                payload["force"].as_bool().unwrap(),
                payload["requested_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    requests.sort();
    let otto = "api:otto".to_owned();
    assert_eq!(
        requests,
        vec![
            ("backmarket".into(), "new".into(), true, otto.clone()),
            ("backmarket".into(), "stock".into(), false, otto.clone()),
            ("refurbed".into(), "stock".into(), false, otto.clone()),
            ("woocommerce".into(), "stock".into(), false, otto),
        ]
    );
    // The relay deletes its rows once the broker confirmed them.
    eventually("the outbox drains", || async {
        env.outbox_len().await == 0
    })
    .await;
    api.stop().await;
}

#[tokio::test]
async fn the_dashboard_and_api_show_locks_queues_and_dead_letters_which_operators_replay() {
    let env = TestEnv::new().await;
    env.set_stock("DASH-1", 4).await;
    let locker = env.start(Worker::Locker).await;
    env.publish(&[created("D-100", "DASH-1", 2)]).await;
    env.publish_raw("order.created.backmarket", b"{not json".to_vec())
        .await;
    env.publish(&[created("D-NEG", "DASH-1", -2)]).await;
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::locker());
    eventually("lock taken", || async {
        env.levels("DASH-1").await == (4, 2, 2)
    })
    .await;
    eventually("both poisons dead-lettered", || async {
        env.depth(&dlq).await == 2
    })
    .await;

    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;
    let admin = env.token("ada", Role::Admin).await;

    let (_, locks) = api.get("/api/v1/locks?sku=DASH-1", &viewer).await;
    let items = &locks["items"];
    assert_eq!(items.as_array().unwrap().len(), 1, "{locks}");
    assert_eq!(
        (&items[0]["order_id"], &items[0]["quantity"]),
        (&json!("D-100"), &json!(2))
    );
    let (_, first) = api.get("/api/v1/dlq?limit=1", &viewer).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["total"], 2, "{first}");
    eventually("the listed letter is handed back", || async {
        env.depth(&dlq).await == 2
    })
    .await;
    let (_, letters) = api.get("/api/v1/dlq", &viewer).await;
    let letters = &letters["items"];
    assert_eq!(letters.as_array().unwrap().len(), 2, "{letters}");
    assert_eq!(letters[0]["queue"], dlq.as_str());
    assert_eq!(letters[0]["error_kind"], "permanent");
    let (_, queues) = api.get("/api/v1/queues", &viewer).await;
    let locker_queue = env.queue(&QueueSpec::locker());
    let row = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == locker_queue.as_str())
        .expect("the locker queue is listed");
    assert!(row["consumers"].as_u64().unwrap() >= 1, "{row}");

    // The page: sign in with a token, then read it with the cookie.
    let page = api.http.get(format!("{}/", api.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    let refused = api
        .http
        .post(format!("{}/login", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=sft_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let signed_in = api
        .http
        .post(format!("{}/login", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={viewer}")) // tokens are URL-safe base64
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let html = api
        .http
        .get(format!("{}/", api.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "DASH-1",
        "D-100",
        locker_queue.as_str(),
        "malformed",
        "Signed in as",
    ] {
        assert!(html.contains(expected), "the dashboard shows {expected:?}");
    }

    // Replay is for operators, purge for admins; a dry run moves nothing.
    let locker_letters = json!({"queue": "locker", "dry_run": true});
    assert_eq!(
        api.post("/api/v1/dlq/replay", &viewer, locker_letters.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, answer) = api
        .post("/api/v1/dlq/replay", &operator, locker_letters)
        .await;
    assert_eq!((status, &answer["count"]), (StatusCode::OK, &json!(2)));
    // Looked at and handed back (a requeue the broker settles asynchronously).
    eventually("the dry run leaves the letters", || async {
        env.depth(&dlq).await == 2
    })
    .await;
    let purge = json!({"queue": "locker"});
    assert_eq!(
        api.post("/api/v1/dlq/purge", &operator, purge.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // One message by its id, then the rest by the filter.
    let one = letters[0]["message_id"].clone();
    let (status, answer) = api
        .post("/api/v1/dlq/purge", &admin, json!({"ids": [one.clone()]}))
        .await;
    assert_eq!((status, &answer["count"]), (StatusCode::OK, &json!(1)));
    assert_eq!(answer["messages"][0]["message_id"], one);
    eventually("one letter left", || async { env.depth(&dlq).await == 1 }).await;
    let (status, answer) = api.post("/api/v1/dlq/purge", &admin, purge).await;
    assert_eq!((status, &answer["count"]), (StatusCode::OK, &json!(1)));
    assert_eq!(env.depth(&dlq).await, 0);

    api.stop().await;
    locker.stop().await;
}

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
