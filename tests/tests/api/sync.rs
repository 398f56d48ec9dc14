//! Sync requests from the API reach the fleet as commands through the
//! outbox, which drains once the broker confirmed them.

use reqwest::StatusCode;
use serde_json::json;
use stockfleet::admin::tokens::Role;
use stockfleet::bus::Exchange;
use stockfleet_tests::{TestEnv, eventually};

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
