//! Tokens scoped to marketplaces: every endpoint shows only their rows,
//! another marketplace's items answer 404 and its filters 400, and the CLI
//! makes and lists them.

use super::{BM, WOO, ids, orders};
use reqwest::StatusCode;
use serde_json::json;
use stockfleet::admin::tokens::{self, Role};
use stockfleet_tests::TestEnv;

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
