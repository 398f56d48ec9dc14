//! Tokens and roles guard every change: viewers read, operators correct
//! stock (with the actor and reason recorded), bad requests say why and
//! change nothing, the dashboard's cookie never writes, and a revoked token
//! stops working.

use reqwest::StatusCode;
use serde_json::json;
use stockfleet::admin::tokens::{self, Role};
use stockfleet_tests::TestEnv;

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
