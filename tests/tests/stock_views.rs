//! The stock and locks views, API and pages: every filter for real (an
//! empty one means any, an unknown value is refused by name), pagination
//! with totals, counts per status, and a token scoped to one marketplace
//! that never sees another's rows.

use reqwest::StatusCode;
use serde_json::{Value, json};
use stockfleet::admin::tokens::{self, Role};
use stockfleet::bus::Envelope;
use stockfleet::domain::OrderStatus;
use stockfleet::events::{ORDER_CREATED, OrderEvent, OrderEventItem};
use stockfleet::ledger::Role as Worker;
use stockfleet_tests::{TestEnv, changed, created, eventually};

const BM: &str = "backmarket";
const WOO: &str = "woocommerce";

fn created_on_woo(order: &str, sku: &str, quantity: i64) -> Envelope {
    let event = OrderEvent {
        order_id: order.to_owned(),
        status: Some(OrderStatus::Pending),
        previous_status: None,
        raw_status: "processing".to_owned(),
        items: vec![OrderEventItem {
            item_id: format!("{order}-1"),
            sku: sku.to_owned(),
            quantity,
            status: None,
        }],
    };
    Envelope::new(ORDER_CREATED, WOO, &event)
}

/// The order ids of a list's items.
fn orders(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|lock| lock["order_id"].as_str().unwrap())
        .collect()
}

/// Two SKUs on Back Market, one of them on WooCommerce too; locks O-1
/// (taken 30 hours ago), O-2, W-1 and O-3 (released).
async fn locked_fleet() -> TestEnv {
    let env = TestEnv::new().await;
    env.set_stock_on(BM, "LK-A1", 10).await;
    env.set_stock_on(BM, "LK-B2", 10).await;
    env.set_stock_on(WOO, "LK-A1", 10).await;
    let locker = env.start(Worker::Locker).await;
    env.publish(&[
        created("O-1", "LK-A1", 2),
        created("O-2", "LK-B2", 1),
        created("O-3", "LK-A1", 1),
        created_on_woo("W-1", "LK-A1", 3),
    ])
    .await;
    env.publish(&[changed("O-3", "LK-A1", 1, OrderStatus::Cancelled)])
        .await;
    eventually("three locks held, one released", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
            .await
            == 3
            && env.lock_state("O-3", "O-3-1").await.as_deref() == Some("released")
    })
    .await;
    locker.stop().await;
    sqlx::query(
        "UPDATE marketplace_stock_locks SET locked_at = now() - interval '30 hours',
                created_at = now() - interval '30 hours'
         WHERE order_external_id = 'O-1'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    env
}

#[tokio::test]
async fn locks_filter_for_real_count_per_status_and_page_with_totals() {
    let env = locked_fleet().await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;

    let (status, all) = api.get("/api/v1/locks", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(orders(&all), ["O-1", "O-2", "W-1"], "oldest first: {all}");
    assert_eq!(all["total"], 3);
    assert_eq!(
        all["by_status"],
        json!({"locked": 3, "consumed": 0, "released": 1})
    );
    for (path, expected) in [
        ("/api/v1/locks?marketplace=backmarket", vec!["O-1", "O-2"]),
        ("/api/v1/locks?marketplace=&sku=", vec!["O-1", "O-2", "W-1"]),
        ("/api/v1/locks?sku=lk-a", vec!["O-1", "W-1"]),
        ("/api/v1/locks?marketplace=backmarket&sku=A1", vec!["O-1"]),
        ("/api/v1/locks?order_id=O-3", vec![]),
        ("/api/v1/locks?order_id=O-3&status=released", vec!["O-3"]),
        ("/api/v1/locks?order_id=O-3&status=", vec!["O-3"]),
        ("/api/v1/locks?status=", vec!["O-1", "O-2", "O-3", "W-1"]),
        ("/api/v1/locks?older_than_hours=24", vec!["O-1"]),
        ("/api/v1/locks?limit=1&offset=1", vec!["O-2"]),
    ] {
        let (status, page) = api.get(path, &viewer).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert_eq!(orders(&page), expected, "{path}");
    }
    let (_, second) = api.get("/api/v1/locks?limit=1&offset=1", &viewer).await;
    assert_eq!(
        (&second["total"], &second["offset"]),
        (&json!(3), &json!(1))
    );

    for (path, expected, field) in [
        (
            "/api/v1/locks?status=lockd",
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            "/api/v1/locks?marketplace=ebay",
            StatusCode::BAD_REQUEST,
            "marketplace",
        ),
        (
            "/api/v1/locks?older_than_hours=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "older_than_hours",
        ),
        (
            "/api/v1/locks?limit=501",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            "/api/v1/stock?offset=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "offset",
        ),
        (
            "/api/v1/stock/LK-A1/history?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
    ] {
        let (status, answer) = api.get(path, &viewer).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (expected, Some(field)),
            "{path}: {answer}"
        );
    }
    let (status, answer) = api.get("/api/v1/locks?colour=red", &viewer).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    let (_, stock) = api.get("/api/v1/stock?sku=lk-a1", &viewer).await;
    assert_eq!(stock["total"], 2, "{stock}");
    let (_, page) = api.get("/api/v1/stock?limit=2&offset=2", &viewer).await;
    assert_eq!(
        (&page["total"], page["items"].as_array().unwrap().len()),
        (&json!(3), 1)
    );
    let (_, history) = api
        .get(
            "/api/v1/stock/LK-A1/history?marketplace=backmarket&limit=1",
            &viewer,
        )
        .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(
        history["items"][0]["change_type"], "order_cancelled",
        "newest first: {history}"
    );
    assert_eq!(
        history["total"], 4,
        "count, O-1, O-3 and its release: {history}"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_token_scoped_to_one_marketplace_never_sees_another_s_stock_or_locks() {
    let env = locked_fleet().await;
    let api = env.api().await;
    let woo = tokens::create_scoped(&env.db, "woo team", Role::Operator, &[WOO.to_owned()])
        .await
        .unwrap();

    let (_, locks) = api.get("/api/v1/locks?status=", &woo).await;
    assert_eq!(orders(&locks), ["W-1"], "{locks}");
    assert_eq!(locks["by_status"]["released"], 0);
    let (_, stock) = api.get("/api/v1/stock", &woo).await;
    assert_eq!(stock["total"], 1, "{stock}");
    assert_eq!(stock["items"][0]["marketplace"], WOO);
    let (_, rows) = api.get("/api/v1/stock/LK-A1", &woo).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    let (_, history) = api.get("/api/v1/stock/LK-A1/history", &woo).await;
    let markets: Vec<&Value> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["marketplace"])
        .collect();
    assert!(
        !markets.is_empty() && markets.iter().all(|m| *m == WOO),
        "{history}"
    );

    for path in [
        "/api/v1/stock/LK-B2",
        "/api/v1/stock/LK-B2/history",
        "/api/v1/stock/LK-A1/pool",
    ] {
        assert_eq!(api.get(path, &woo).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/api/v1/locks?marketplace=backmarket",
        "/api/v1/stock?marketplace=backmarket",
    ] {
        assert_eq!(
            api.get(path, &woo).await.0,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    let (status, _) = api
        .post(
            "/api/v1/stock/LK-B2/backmarket",
            &woo,
            json!({"adjust": 5, "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let pooled = api
        .http
        .put(format!("{}/api/v1/stock/LK-A1/pool", api.base))
        .bearer_auth(&woo)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        pooled.status(),
        StatusCode::NOT_FOUND,
        "a pool spans Back Market's row too"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_history WHERE actor LIKE 'api:%'")
            .await,
        0,
        "nothing changed"
    );
    assert_eq!(env.scalar("SELECT count(*) FROM stock_pools").await, 0);

    // The pages apply the same scope.
    let (status, listing) = api.page(&woo, "/stock/LK-A1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listing.contains("W-1") && !listing.contains("O-1"),
        "{listing}"
    );
    assert_eq!(
        api.page(&woo, "/stock/LK-B2").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, locks_page) = api.page(&woo, "/locks?status=").await;
    assert!(
        locks_page.contains("W-1") && !locks_page.contains("O-2"),
        "{locks_page}"
    );
    let (_, overview) = api.page(&woo, "/").await;
    assert!(!overview.contains("LK-B2"), "{overview}");
    api.stop().await;
}

#[tokio::test]
async fn the_locks_and_listing_pages_link_filter_and_page() {
    let env = locked_fleet().await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;

    let (status, locks) = api.page(&viewer, "/locks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(locks.contains(r#"name="viewport""#));
    for link in [
        r#"href="/orders/backmarket/O-1""#,
        r#"href="/stock/LK-A1""#,
        r#"href="/locks?status=released""#,
    ] {
        assert!(locks.contains(link), "{link} in {locks}");
    }
    assert!(
        !locks.contains("O-3"),
        "released locks only when asked: {locks}"
    );
    let (_, stale) = api
        .page(
            &viewer,
            "/locks?marketplace=&sku=&order_id=&status=locked&older_than_hours=24",
        )
        .await;
    assert!(stale.contains("O-1") && !stale.contains("O-2"), "{stale}");
    let (status, refused) = api.page(&viewer, "/locks?status=lockd").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("lockd"), "{refused}");
    let (status, _) = api.page(&viewer, "/locks?older_than_hours=soon").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, listing) = api.page(&viewer, "/stock/LK-A1").await;
    assert_eq!(status, StatusCode::OK);
    for shown in [
        "backmarket",
        "woocommerce",
        "10 % (up)",
        r#"href="/orders/woocommerce/W-1""#,
        "order_cancelled",
    ] {
        assert!(listing.contains(shown), "{shown} in {listing}");
    }
    // A pooled listing shows its pool: on hand, locks and each marketplace's share.
    stockfleet::admin::pools::pool(&env.db, "LK-B2", None, "test")
        .await
        .unwrap();
    let (_, pooled) = api.page(&viewer, "/stock/LK-B2").await;
    for shown in [
        "Shared pool",
        "on hand <b>10</b>",
        "locked <b>1</b>",
        "available <b>9</b>",
    ] {
        assert!(pooled.contains(shown), "{shown} in {pooled}");
    }
    let (status, unknown) = api.page(&viewer, "/stock/NOPE").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(unknown.contains("NOPE"), "{unknown}");

    let (_, stock) = api.page(&viewer, "/stock?sku=b2").await;
    assert!(
        stock.contains("LK-B2") && !stock.contains(r#"href="/stock/LK-A1""#),
        "{stock}"
    );
    let (_, first) = api.page(&viewer, "/stock?limit=2").await;
    assert!(
        first.contains("1–2 of 3") && first.contains("offset=2"),
        "{first}"
    );
    let (_, overview) = api.page(&viewer, "/").await;
    assert!(overview.contains(r#"href="/locks""#) && overview.contains(r#"href="/stock/LK-A1""#));
    api.stop().await;
}
