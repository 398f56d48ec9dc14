//! The orders API against real PostgreSQL and RabbitMQ (and the simulator
//! for status changes): pagination past the first 500 orders, sorting and
//! filters, statistics against a known set of orders, status changes that
//! reach the marketplace (or are refused with 409 before anything is sent,
//! or end failed), and tokens scoped to marketplaces on every endpoint.

use reqwest::StatusCode;
use serde_json::{Value, json};
use stockfleet::admin::tokens::{self, Role};
use stockfleet_tests::{TestEnv, eventually};

const WOO: &str = "woocommerce";
const BM: &str = "backmarket";

/// `count` orders on `marketplace`, ids `<prefix>-1`…, one item each (SKU
/// `<prefix>-SKU-<n mod 3>`), order n placed n minutes ago with total n.00 EUR
/// (Back Market's `price`, WooCommerce's `total`).
async fn orders(env: &TestEnv, marketplace: &str, prefix: &str, count: i32, status: &str) {
    sqlx::query(
        "WITH placed AS (
             INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw, placed_at)
             SELECT m.id, $2 || '-' || g, $4, $4,
                    jsonb_build_object('price', g || '.00', 'total', g || '.00', 'currency', 'EUR'),
                    now() - g * interval '1 minute'
             FROM marketplaces m, generate_series(1, $3) g WHERE m.code = $1
             RETURNING id, external_id)
         INSERT INTO order_items (order_id, external_id, sku, quantity, status, raw_status)
         SELECT id, '1', $2 || '-SKU-' || (split_part(external_id, '-', 2)::int % 3), 1, $4, $4
         FROM placed",
    )
    .bind(marketplace)
    .bind(prefix)
    .bind(count)
    .bind(status)
    .execute(&env.db)
    .await
    .expect("insert orders");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|order| order["order_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_order_is_reachable_sorted_and_filtered() {
    let env = TestEnv::new().await;
    orders(&env, WOO, "W", 505, "accepted").await;
    orders(&env, BM, "B", 3, "shipped").await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;

    // Past the first 500: the 501st to the 508th order by placing time.
    let (status, first) = api
        .get("/api/v1/orders?sort=placed&order=desc&limit=500", &viewer)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["total"].as_i64(), ids(&first).len()),
        (Some(508), 500)
    );
    let (_, rest) = api
        .get(
            "/api/v1/orders?sort=placed&order=desc&limit=500&offset=500",
            &viewer,
        )
        .await;
    assert_eq!(ids(&rest).len(), 8, "{rest}");
    let mut every: Vec<String> = ids(&first).into_iter().chain(ids(&rest)).collect();
    assert_eq!(every.last().map(String::as_str), Some("W-505"));
    every.sort();
    every.dedup();
    assert_eq!(every.len(), 508, "no order twice, none missed");

    // Sorted by total, both ways; ties broken the same way every time.
    let (_, cheapest) = api
        .get(
            "/api/v1/orders?marketplace=woocommerce&sort=total&order=asc&limit=3",
            &viewer,
        )
        .await;
    assert_eq!(ids(&cheapest), ["W-1", "W-2", "W-3"]);
    assert_eq!(cheapest["items"][0]["total"], "1.00");
    assert_eq!(cheapest["items"][0]["currency"], "EUR");
    let (_, dearest) = api
        .get("/api/v1/orders?sort=total&order=desc&limit=1", &viewer)
        .await;
    assert_eq!(ids(&dearest), ["W-505"]);

    // Filters: status, marketplace, an empty filter meaning any, SKU search, dates.
    let (_, shipped) = api.get("/api/v1/orders?status=shipped", &viewer).await;
    assert_eq!(shipped["total"], 3);
    let (_, any) = api
        .get("/api/v1/orders?status=&marketplace=&limit=1", &viewer)
        .await;
    assert_eq!(any["total"], 508);
    let (_, by_sku) = api.get("/api/v1/orders?search=b-sku-1", &viewer).await;
    assert_eq!(ids(&by_sku), ["B-1"], "case-insensitive SKU search");
    let (_, by_id) = api
        .get(
            "/api/v1/orders?search=W-50&sort=order_id&order=asc",
            &viewer,
        )
        .await;
    assert_eq!(
        ids(&by_id),
        ["W-50", "W-500", "W-501", "W-502", "W-503", "W-504", "W-505"]
    );
    let since = (chrono::Utc::now() - chrono::Duration::seconds(150)).to_rfc3339();
    let (_, recent) = api
        .get(
            &format!(
                "/api/v1/orders?since={}",
                url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>()
            ),
            &viewer,
        )
        .await;
    assert_eq!(recent["total"], 4, "W-1, W-2, B-1, B-2: {recent}");

    // Unknown values are refused with the value named; out-of-range windows too.
    for (query, field, value) in [
        ("status=open", "status", "\"open\""),
        ("sort=price", "sort", "\"price\""),
        ("order=up", "order", "\"up\""),
        ("marketplace=amazon", "marketplace", "\"amazon\""),
    ] {
        let (status, body) = api.get(&format!("/api/v1/orders?{query}"), &viewer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["field"], field);
        assert!(body["error"].as_str().unwrap().contains(value), "{body}");
    }
    for (query, field) in [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("since=yesterday", "since"),
    ] {
        let (status, body) = api.get(&format!("/api/v1/orders?{query}"), &viewer).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}");
    }
    api.stop().await;
}

#[tokio::test]
async fn stats_count_a_known_set_of_orders() {
    let env = TestEnv::new().await;
    // WooCommerce: 4 accepted (1+2+3+4 = 10.00 EUR), 2 cancelled (not revenue).
    orders(&env, WOO, "W", 4, "accepted").await;
    orders(&env, WOO, "C", 2, "cancelled").await;
    // Back Market: 3 shipped (6.00 EUR), one of them with an unknown SKU.
    orders(&env, BM, "B", 3, "shipped").await;
    // A Refurbed order in another currency, of a status we cannot read.
    sqlx::query(
        "INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw, has_unknown_sku)
         SELECT id, 'R-1', NULL, 'WEIRD', '{\"total_charged\": \"99.50\", \"currency_code\": \"GBP\"}', true
         FROM marketplaces WHERE code = 'refurbed'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    sqlx::query("UPDATE orders SET has_unknown_sku = true WHERE external_id = 'B-2'")
        .execute(&env.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sync_runs (marketplace_id, sync_type, trigger, status, started_at)
         SELECT id, 'new', 'schedule', s.status, now() - s.age * interval '1 hour'
         FROM marketplaces, (VALUES ('succeeded', 2), ('succeeded', 1), ('failed', 0)) s(status, age)
         WHERE code = 'woocommerce'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;

    let (status, stats) = api.get("/api/v1/orders/stats", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["orders"], 10);
    assert_eq!(
        stats["by_status"],
        json!({"unpaid": 0, "pending": 0, "accepted": 4, "shipped": 3,
               "cancelled": 2, "returned": 0, "unknown": 1})
    );
    // Revenue: paid and not undone, per currency (the unknown-status GBP order is not).
    assert_eq!(
        stats["revenue"],
        json!([{"currency": "EUR", "amount": "16.00", "orders": 7}])
    );
    assert_eq!(stats["orders_with_unknown_sku"], 2);
    let last = &stats["last_sync"];
    assert_eq!(last.as_array().unwrap().len(), 1, "{last}");
    assert_eq!(
        (&last[0]["marketplace"], &last[0]["sync_type"]),
        (&json!(WOO), &json!("new"))
    );
    let succeeded: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(last[0]["succeeded_at"].clone()).unwrap();
    let age = chrono::Utc::now() - succeeded;
    assert!(
        age > chrono::Duration::minutes(59) && age < chrono::Duration::minutes(61),
        "the later success, not the failure after it: {age}"
    );

    let (_, woo) = api
        .get("/api/v1/orders/stats?marketplace=woocommerce", &viewer)
        .await;
    assert_eq!(woo["orders"], 6);
    assert_eq!(woo["revenue"][0]["amount"], "10.00");
    let since = (chrono::Utc::now() - chrono::Duration::seconds(150)).format("%Y-%m-%dT%H:%M:%SZ");
    let (_, recent) = api
        .get(
            &format!("/api/v1/orders/stats?marketplace=backmarket&since={since}"),
            &viewer,
        )
        .await;
    assert_eq!(
        recent["orders"], 2,
        "B-1 and B-2 were placed in the last 150 s: {recent}"
    );
    assert_eq!(
        api.get("/api/v1/orders/stats?marketplace=nope", &viewer)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    api.stop().await;
}

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

async fn change_state(api: &stockfleet_tests::ApiServer, token: &str, order: &str) -> Value {
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

#[tokio::test]
async fn a_token_scoped_to_a_marketplace_sees_only_its_rows_everywhere() {
    let env = TestEnv::new().await;
    orders(&env, WOO, "W", 2, "accepted").await;
    orders(&env, BM, "B", 2, "accepted").await;
    sqlx::query(
        "INSERT INTO sync_runs (marketplace_id, sync_type, trigger, status)
         SELECT id, 'new', 'schedule', 'succeeded' FROM marketplaces",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let api = env.api().await;
    let woo = tokens::create_scoped(&env.db, "woo team", Role::Operator, &[WOO.to_owned()])
        .await
        .unwrap();
    assert!(matches!(
        tokens::create_scoped(&env.db, "typo", Role::Viewer, &["wocommerce".to_owned()]).await,
        Err(tokens::TokenError::UnknownMarketplace(..))
    ));

    let (_, me) = api.get("/api/v1/whoami", &woo).await;
    assert_eq!(me["marketplaces"], json!([WOO]));
    let (_, orders) = api.get("/api/v1/orders", &woo).await;
    assert_eq!((ids(&orders).len(), &orders["total"]), (2, &json!(2)));
    assert!(ids(&orders).iter().all(|id| id.starts_with("W-")));
    let (_, stats) = api.get("/api/v1/orders/stats", &woo).await;
    assert_eq!(stats["orders"], 2);
    assert_eq!(stats["last_sync"].as_array().unwrap().len(), 1);
    let (_, runs) = api.get("/api/v1/sync/runs", &woo).await;
    assert_eq!(runs["total"], 1, "{runs}");
    let (_, board) = api.get("/api/v1/sync", &woo).await;
    assert_eq!(board.as_array().unwrap().len(), 1);
    let (_, markets) = api.get("/api/v1/marketplaces", &woo).await;
    assert_eq!(markets.as_array().unwrap().len(), 1);
    assert_eq!(markets[0]["code"], WOO);
    let (_, queues) = api.get("/api/v1/queues", &woo).await;
    assert!(
        queues
            .as_array()
            .unwrap()
            .iter()
            .all(|q| !q["name"].as_str().unwrap().contains("backmarket")),
        "{queues}"
    );
    let (status, _) = api.get("/api/v1/dlq", &woo).await;
    assert_eq!(status, StatusCode::OK);

    // Another marketplace's single items answer 404, its filters 400.
    for path in ["/api/v1/orders/backmarket/B-1", "/api/v1/validate"] {
        assert_eq!(api.get(path, &woo).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/api/v1/orders?marketplace=backmarket",
        "/api/v1/orders/stats?marketplace=backmarket",
        "/api/v1/sync/runs?marketplace=backmarket",
        "/api/v1/dlq?marketplace=backmarket",
        "/api/v1/dlq?queue=publisher.backmarket",
    ] {
        assert_eq!(
            api.get(path, &woo).await.0,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    let (status, _) = api
        .post(
            "/api/v1/sync",
            &woo,
            json!({"marketplace": BM, "type": "new"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, queued) = api
        .post(
            "/api/v1/sync",
            &woo,
            json!({"marketplace": "all", "type": "new"}),
        )
        .await;
    assert_eq!(
        (status, &queued["queued"]),
        (StatusCode::ACCEPTED, &json!(1))
    );
    let change = api
        .http
        .put(format!("{}/api/v1/orders/backmarket/B-1/status", api.base))
        .bearer_auth(&woo)
        .json(&json!({"status": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        env.scalar("SELECT count(*) FROM order_status_changes")
            .await,
        0
    );

    // The CLI makes scoped tokens and lists their scope.
    let made = env
        .cli(&["token", "create", "--name", "shop", "--marketplace", WOO])
        .await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let typo = env
        .cli(&["token", "create", "--name", "x", "--marketplace", "nope"])
        .await;
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown marketplace \"nope\""));
    let listed = env.cli(&["token", "list"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|line| line.contains("shop") && line.contains(WOO)),
        "{listed}"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_order_pages_link_filter_and_show_locks_and_the_operators_form() {
    let env = TestEnv::new().await;
    orders(&env, WOO, "W", 3, "accepted").await;
    orders(&env, BM, "B", 1, "accepted").await;
    sqlx::raw_sql(
        "INSERT INTO variations (sku) VALUES ('W-SKU-1');
         INSERT INTO marketplace_stock (variation_id, marketplace_id, listed_stock)
         SELECT v.id, m.id, 5 FROM variations v, marketplaces m
         WHERE v.sku = 'W-SKU-1' AND m.code = 'woocommerce';",
    )
    .execute(&env.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO marketplace_stock_locks (stock_id, marketplace_id, order_external_id,
             order_item_external_id, quantity_locked, lock_status, locked_at)
         SELECT s.id, s.marketplace_id, 'W-1', '1', 1, 'locked', now() FROM marketplace_stock s",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;
    let scoped = tokens::create_scoped(&env.db, "bm team", Role::Operator, &[BM.to_owned()])
        .await
        .unwrap();

    let (status, list) = api
        .page(
            &viewer,
            "/orders?marketplace=woocommerce&sort=total&order=asc",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.contains("1–3 of 3"), "{list}");
    assert!(list.contains(r#"href="/orders/woocommerce/W-1""#), "{list}");
    assert!(
        list.contains("sort=total&amp;order=desc"),
        "the active column sorts the other way: {list}"
    );
    assert!(!list.contains("B-1"));
    let (status, paged) = api.page(&viewer, "/orders?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(paged.contains("offset=2"), "a next link: {paged}");
    let (status, refused) = api.page(&viewer, "/orders?status=open").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused.contains("\"open\"") || refused.contains("&quot;open&quot;"),
        "{refused}"
    );

    let (status, detail) = api.page(&viewer, "/orders/woocommerce/W-1").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(
        detail.contains(r#"<span class="badge locked">locked</span>"#),
        "{detail}"
    );
    assert!(detail.contains(r#"href="/stock/W-SKU-1""#), "{detail}");
    assert!(detail.contains("<details>"), "raw JSON folded");
    assert!(!detail.contains(r#"name="proof""#), "a viewer gets no form");
    let (_, as_operator) = api.page(&operator, "/orders/woocommerce/W-1").await;
    let proof = as_operator
        .split(r#"name="proof" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an operator gets the form")
        .to_owned();

    // The form sends the change with the page's proof; without it, nothing.
    let post = |proof: &str| {
        api.http
            .post(format!("{}/orders/woocommerce/W-1", api.base))
            .header("cookie", format!("stockfleet_token={operator}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("proof={proof}&status=shipped&tracking_number="))
            .send()
    };
    let forged = post("0000").await.unwrap();
    assert_eq!(
        forged.headers()["location"],
        "/login",
        "sent to sign in again"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM order_status_changes")
            .await,
        0
    );
    let sent = post(&proof).await.unwrap();
    assert_eq!(sent.headers()["location"], "/orders/woocommerce/W-1");
    let (_, after) = api.page(&operator, "/orders/woocommerce/W-1").await;
    assert!(
        after.contains(r#"<span class="badge pending">pending</span>"#),
        "{after}"
    );
    assert!(after.contains("dashboard:otto"), "{after}");

    // A token of another marketplace: the order is a 404 page, the list empty of it.
    let (status, hidden) = api.page(&scoped, "/orders/woocommerce/W-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(hidden.contains("<html"), "a page, not JSON: {hidden}");
    let (_, theirs) = api.page(&scoped, "/orders").await;
    assert!(
        theirs.contains("B-1") && !theirs.contains("W-1"),
        "{theirs}"
    );
    api.stop().await;
}
