//! Issue 13: every hostile or careless input the issue lists (and its NUL,
//! huge-integer, wrong-type, unknown-type, oversized and overflow variants)
//! is refused with a 4xx naming the field, or dead-lettered with its reason;
//! nothing else changes and no process panics.

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Stdio;
use stockfleet::admin::tokens::Role;
use stockfleet::bus::QueueSpec;
use stockfleet::bus::headers::{ERROR, ERROR_KIND};
use stockfleet::ledger::Role as LedgerRole;
use stockfleet_tests::*;
use tokio::io::AsyncReadExt;

const SECRET: &str = "wh-secret";

/// What a refused request must leave as it was.
async fn snapshot(env: &TestEnv) -> String {
    sqlx::query_scalar(
        "SELECT json_build_array(
            (SELECT json_agg(s ORDER BY s.id) FROM (SELECT id, variation_id, marketplace_id,
                listed_stock, locked_stock FROM marketplace_stock) s),
            (SELECT count(*) FROM variations),
            (SELECT count(*) FROM marketplace_stock_history),
            (SELECT json_agg(m ORDER BY m.id) FROM (SELECT id, base_url, sync_offset_minutes,
                sync_enabled FROM marketplaces) m))::text",
    )
    .fetch_one(&env.db)
    .await
    .unwrap()
}

struct Client {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            let kind = if path == "/login" {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            request = request.header("content-type", kind).body(body);
        }
        let response = request.send().await.expect("the api answers (no panic)");
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, response.text().await.unwrap())
    }

    /// Asserts a JSON refusal with `status` naming `field`.
    async fn refused(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
        field: &str,
    ) -> Value {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let (got, kind, text) = self.send(method.clone(), path, bytes).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(
            kind.starts_with("application/json"),
            "{method} {path}: {kind} {text}"
        );
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
        assert_eq!(answer["field"], field, "{method} {path}: {answer}");
        answer
    }
}

#[tokio::test]
async fn hostile_requests_are_refused_with_the_field_and_change_nothing() {
    let env = TestEnv::new().await;
    env.set_stock_on("refurbed", "KNOWN-1", 5).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = env
        .command("stockfleet-api")
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("WEBHOOK_SECRET_WOOCOMMERCE", SECRET)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start stockfleet-api");
    let mut stderr = api.stderr.take().unwrap();
    let http = reqwest::Client::new();
    eventually("the api answers", || async {
        http.get(format!("{base}/login")).send().await.is_ok()
    })
    .await;
    let client = Client {
        base: base.clone(),
        http,
        token: env.token("ada", Role::Admin).await,
    };
    let before = snapshot(&env).await;
    let bad = StatusCode::BAD_REQUEST;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;

    // NUL bytes in paths, queries and bodies: 400, never 500.
    for path in [
        "/api/v1/stock?sku=%00",
        "/api/v1/stock/%00x",
        "/api/v1/orders/backmarket/%00",
        "/api/v1/orders?status=%00",
        "/api/v1/locks?sku=%00",
        "/api/v1/stock/%ff",
    ] {
        let field = if path.contains('?') { "query" } else { "path" };
        client.refused(Method::GET, path, None, bad, field).await;
    }
    client
        .refused(
            Method::PATCH,
            "/api/v1/marketplaces/%00",
            Some(json!({"sync_enabled": false})),
            bad,
            "path",
        )
        .await;
    let correction = "/api/v1/stock/KNOWN-1/refurbed";
    client
        .refused(
            Method::POST,
            correction,
            Some(json!({"set": 3, "reason": "x\u{0}"})),
            bad,
            "reason",
        )
        .await;

    // Bounds, overflows, huge integers, wrong types.
    let answer = client
        .refused(
            Method::POST,
            correction,
            Some(json!({"set": 2147483647, "reason": "r"})),
            unprocessable,
            "set",
        )
        .await;
    assert!(
        answer["error"].as_str().unwrap().contains("1000000"),
        "{answer}"
    );
    client
        .refused(
            Method::POST,
            correction,
            Some(json!({"set": 1_000_001, "reason": "r"})),
            unprocessable,
            "set",
        )
        .await;
    let answer = client
        .refused(
            Method::POST,
            correction,
            Some(json!({"adjust": 2147483647, "reason": "r"})),
            unprocessable,
            "adjust",
        )
        .await;
    assert!(
        !answer["error"].as_str().unwrap().contains("negative"),
        "{answer}"
    );
    client
        .refused(
            Method::POST,
            correction,
            Some(json!({"adjust": 99999999999999i64, "reason": "r"})),
            unprocessable,
            "adjust",
        )
        .await;
    client
        .refused(
            Method::POST,
            correction,
            Some(json!({"set": -1, "reason": "r"})),
            unprocessable,
            "set",
        )
        .await;
    client
        .refused(
            Method::POST,
            correction,
            Some(json!({"set": "12", "reason": "r"})),
            unprocessable,
            "set",
        )
        .await;
    client
        .refused(
            Method::POST,
            correction,
            Some(json!({"set": 1, "reason": "r", "sku": "x"})),
            unprocessable,
            "sku",
        )
        .await;
    // A mistyped SKU is not created silently.
    client
        .refused(
            Method::POST,
            "/api/v1/stock/NOPE-1/refurbed",
            Some(json!({"set": 3, "reason": "r"})),
            unprocessable,
            "create",
        )
        .await;
    let sync = json!({"marketplace": "all", "type": "modified", "force": true, "days_back": 4294967295u32});
    client
        .refused(
            Method::POST,
            "/api/v1/sync",
            Some(sync),
            unprocessable,
            "days_back",
        )
        .await;
    client
        .refused(
            Method::POST,
            "/api/v1/sync",
            Some(json!({"marketplace": "all", "type": "new", "days_back": 0})),
            unprocessable,
            "days_back",
        )
        .await;
    let refurbed = "/api/v1/marketplaces/refurbed";
    client
        .refused(
            Method::PATCH,
            refurbed,
            Some(json!({"base_url": "not a url"})),
            unprocessable,
            "base_url",
        )
        .await;
    client
        .refused(
            Method::PATCH,
            refurbed,
            Some(json!({"base_url": "ftp://x"})),
            unprocessable,
            "base_url",
        )
        .await;
    client
        .refused(
            Method::PATCH,
            refurbed,
            Some(json!({"sync_offset_minutes": 99999})),
            unprocessable,
            "sync_offset_minutes",
        )
        .await;
    client
        .refused(
            Method::GET,
            "/api/v1/dlq?queue=nope",
            None,
            StatusCode::BAD_REQUEST,
            "queue",
        )
        .await;
    client
        .refused(
            Method::GET,
            "/api/v1/dlq?kind=nope",
            None,
            StatusCode::BAD_REQUEST,
            "kind",
        )
        .await;
    client
        .refused(
            Method::POST,
            "/api/v1/dlq/purge",
            Some(json!({"queue": "nope"})),
            StatusCode::BAD_REQUEST,
            "queue",
        )
        .await;

    // Oversized bodies (just over the 2 MiB limit, so the whole body is
    // written before the server answers): 413 with a JSON body on every route.
    let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(2 * 1024 * 1024 + 1024)).into_bytes();
    for path in [correction, "/login", "/webhooks/woocommerce/woocommerce"] {
        let (status, kind, text) = client.send(Method::POST, path, Some(huge.clone())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {text}");
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_string());
    }
    // Unknown routes and methods: JSON under /api/, a page elsewhere.
    let (status, kind, _) = client.send(Method::GET, "/api/v1/nope", None).await;
    assert_eq!(
        (status, kind.starts_with("application/json")),
        (StatusCode::NOT_FOUND, true)
    );
    let (status, kind, text) = client.send(Method::DELETE, "/api/v1/stock", None).await;
    assert_eq!(
        (status, kind.starts_with("application/json")),
        (StatusCode::METHOD_NOT_ALLOWED, true),
        "{text}"
    );
    let (status, kind, _) = client.send(Method::GET, "/no-such-page", None).await;
    assert_eq!(
        (status, kind.starts_with("text/html")),
        (StatusCode::NOT_FOUND, true)
    );

    // Webhooks: their own messages for a missing or bad signature; a signed NUL is 400.
    let hook = format!("{base}/webhooks/woocommerce/woocommerce");
    let body = br#"{"id": 1, "status": "processing", "number": "1\u0000"}"#.to_vec();
    let post = |signature: Option<String>, body: Vec<u8>| {
        let mut request = client
            .http
            .post(&hook)
            .header("x-wc-webhook-topic", "order.created")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-wc-webhook-signature", signature);
        }
        request.send()
    };
    for signature in [None, Some("bm90IGl0".to_owned())] {
        let response = post(signature, body.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let text = response.text().await.unwrap();
        assert!(
            text.contains("X-WC-Webhook-Signature") && !text.contains("API token"),
            "{text}"
        );
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let response = post(Some(signature), body).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    assert_eq!(
        snapshot(&env).await,
        before,
        "a refused request changed nothing"
    );
    // The explicit form works.
    let (status, _, text) = client
        .send(
            Method::POST,
            "/api/v1/stock/NEW-1/refurbed",
            Some(
                serde_json::to_vec(&json!({"set": 3, "reason": "first count", "create": true}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    terminate(api).await;
    let mut log = String::new();
    stderr.read_to_string(&mut log).await.unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn hostile_messages_are_dead_lettered_with_their_reason_and_change_nothing() {
    let env = TestEnv::new().await;
    env.set_stock("GOOD", 5).await;
    let before = snapshot(&env).await;
    let locker = env.start(LedgerRole::Locker).await;

    let mut exploded = created("E", "GOOD", 1);
    exploded.kind = "order.exploded".into();
    env.publish_raw("order.created.backmarket", exploded.to_bytes())
        .await;
    let mut swapped = created("S", "GOOD", 1);
    swapped.kind = "stock.changed".into();
    env.publish_raw("order.created.backmarket", swapped.to_bytes())
        .await;
    let mut elsewhere = created("W", "GOOD", 1);
    elsewhere.marketplace = "refurbed".into();
    env.publish_raw("order.created.backmarket", elsewhere.to_bytes())
        .await;
    let mut future = serde_json::to_value(created("V", "GOOD", 1)).unwrap();
    future["version"] = json!(99);
    env.publish_raw(
        "order.created.backmarket",
        serde_json::to_vec(&future).unwrap(),
    )
    .await;
    env.publish(&[created("N\u{0}", "GOOD", 1), created("K", "GO\u{0}OD", 1)])
        .await;
    env.publish(&[
        created("H", "GOOD", i64::MAX),
        created("B", "GOOD", 100_001),
    ])
    .await;
    let mut wrong_type = serde_json::to_value(created("T", "GOOD", 1)).unwrap();
    wrong_type["payload"]["items"][0]["quantity"] = json!("1");
    env.publish_raw(
        "order.created.backmarket",
        serde_json::to_vec(&wrong_type).unwrap(),
    )
    .await;
    let mut huge_string = created("L", "GOOD", 1);
    huge_string.payload["order_id"] = json!("x".repeat(10_000));
    env.publish(&[huge_string]).await;
    let count = 10;

    let queue = env.queue(&QueueSpec::locker());
    env.wait_settled(&queue, count).await;
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::locker());
    eventually("all dead-lettered", || async {
        env.depth(&dlq).await == count as u32
    })
    .await;
    let reasons: Vec<String> = env
        .drain(&dlq)
        .await
        .iter()
        .map(|(headers, _)| {
            assert_eq!(header(headers, ERROR_KIND).as_deref(), Some("permanent"));
            header(headers, ERROR).unwrap()
        })
        .collect();
    for expected in [
        "unknown envelope type \"order.exploded\"",
        "type \"stock.changed\" does not match routing key",
        "marketplace \"refurbed\" does not match",
        "unsupported envelope version 99",
        "payload.items[0].item_id: contains a NUL",
        "payload.items[0].sku: contains a NUL",
        "too large",
        "malformed",
        "payload.order_id: is 10000 bytes long",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected:?} in {reasons:#?}"
        );
    }
    assert_eq!(
        snapshot(&env).await,
        before,
        "no bad message changed anything"
    );
    locker.stop().await;
}

/// `stockfleet sync --days-back 4294967295` is a usage error, not a panic.
#[tokio::test]
async fn the_cli_refuses_an_unbounded_days_back() {
    let env = TestEnv::new().await;
    let output = env.cli(&["sync", "--days-back", "4294967295"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--days-back") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
