//! Marketplace settings over the API: only admins change them, bad values
//! are refused whole, and a cap on quantity updates is set and removed.

use reqwest::StatusCode;
use serde_json::{Value, json};
use stockfleet::admin::tokens::Role;
use stockfleet_tests::TestEnv;

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
