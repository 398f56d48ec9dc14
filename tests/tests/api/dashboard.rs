//! The dashboard and its API: locks, queues and dead letters shown, sign-in
//! with a token and a cookie, dead letters replayed by operators and purged
//! by admins.

use reqwest::StatusCode;
use serde_json::json;
use stockfleet::admin::tokens::Role;
use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role as Worker;
use stockfleet_tests::{TestEnv, created, eventually};

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
