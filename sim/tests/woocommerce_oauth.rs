//! WooCommerce OAuth 1.0a over plain HTTP, checked with a signer written here
//! from RFC 5849 (independent of the adapter's), proven on the well-known
//! test vector of the OAuth Core 1.0 specification (appendix A).

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const WOO: &str = "woocommerce";

/// RFC 3986 percent-encoding, byte by byte: unreserved characters stay.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Method {
    Sha1,
    Sha256,
}

/// The signature of RFC 5849 §3.4 for `params` (oauth_* included).
fn signature(
    method: Method,
    http_method: &str,
    base_uri: &str,
    params: &[(&str, &str)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let mut encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    encoded.sort();
    let base = format!(
        "{http_method}&{}&{}",
        enc(base_uri),
        enc(&encoded.join("&"))
    );
    let key = format!("{}&{}", enc(consumer_secret), enc(token_secret));
    let digest = match method {
        Method::Sha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Method::Sha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    BASE64.encode(digest)
}

#[test]
fn the_test_signer_reproduces_the_oauth_core_vector() {
    let params = [
        ("file", "vacation.jpg"),
        ("size", "original"),
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
        ("oauth_token", "nnch734d00sl2jdk"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "1191242096"),
        ("oauth_nonce", "kllo9940pd9333jh"),
        ("oauth_version", "1.0"),
    ];
    let signed = signature(
        Method::Sha1,
        "GET",
        "http://photos.example.net/photos",
        &params,
        "kd94hf93k423kf44",
        "pfkkdhi9sl3r4s00",
    );
    assert_eq!(signed, "tR3+Ty81lMeYAr/Fid0kMTYa/WM=");
}

/// A one-legged signed URL (query and oauth_* parameters, signature last).
fn signed_url(
    env: &Env,
    http_method: &str,
    path: &str,
    query: &[(&str, &str)],
    method: Method,
    nonce: &str,
    timestamp: i64,
) -> String {
    let creds = credentials();
    let base_uri = format!("{}/wp-json/wc/v3{path}", env.sim.base_url(WOO));
    let timestamp = timestamp.to_string();
    let method_name = match method {
        Method::Sha1 => "HMAC-SHA1",
        Method::Sha256 => "HMAC-SHA256",
    };
    let mut params = query.to_vec();
    params.extend([
        ("oauth_consumer_key", creds.woocommerce_key.as_str()),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", method_name),
        ("oauth_timestamp", timestamp.as_str()),
    ]);
    let sig = signature(
        method,
        http_method,
        &base_uri,
        &params,
        &creds.woocommerce_secret,
        "",
    );
    params.push(("oauth_signature", &sig));
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{base_uri}?{}", query.join("&"))
}

async fn send(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn signed_requests_pass_and_tampered_replayed_or_stale_ones_do_not() {
    let env = start().await;
    let order = env.control.order(WOO, &[("A", 1)], "processing").await;
    let query = [
        ("status", "processing,on-hold"),
        ("modified_after", "2020-01-01T00:00:00"),
    ];
    for (method, nonce) in [(Method::Sha1, "nonceSha1"), (Method::Sha256, "nonceSha256")] {
        let url = signed_url(&env, "GET", "/orders", &query, method, nonce, now());
        let (status, body) = send(reqwest::Method::GET, &url, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body[0]["id"], order["id"]);

        let (status, body) = send(reqwest::Method::GET, &url, None).await;
        assert_eq!(
            (status, &body["message"]),
            (401, &json!("Invalid nonce - nonce has already been used."))
        );
    }

    let url = signed_url(
        &env,
        "GET",
        "/orders",
        &query,
        Method::Sha256,
        "tamper",
        now(),
    );
    let tampered = url.replace("status=processing%2Con-hold", "status=completed");
    assert_ne!(tampered, url);
    let (status, body) = send(reqwest::Method::GET, &tampered, None).await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("woocommerce_rest_authentication_error"))
    );
    assert_eq!(
        body["message"],
        "Invalid signature - provided signature does not match."
    );

    let stale = signed_url(
        &env,
        "GET",
        "/orders",
        &query,
        Method::Sha256,
        "stale",
        now() - 16 * 60,
    );
    let (status, body) = send(reqwest::Method::GET, &stale, None).await;
    assert_eq!(
        (status, &body["message"]),
        (401, &json!("Invalid timestamp."))
    );

    let path = format!("/orders/{}", order["id"]);
    let write = signed_url(&env, "PUT", &path, &[], Method::Sha256, "write", now());
    let (status, body) = send(
        reqwest::Method::PUT,
        &write,
        Some(json!({"status": "completed"})),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("completed")),
        "{body}"
    );
    // Signed for GET, sent as PUT: the method is signed too.
    let wrong = signed_url(&env, "GET", &path, &[], Method::Sha256, "method", now());
    let (status, _) = send(
        reqwest::Method::PUT,
        &wrong,
        Some(json!({"status": "cancelled"})),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn anonymous_reads_and_writes_get_woocommerce_codes() {
    let env = start().await;
    let order = env.control.order(WOO, &[("A", 1)], "processing").await;
    let api = format!("{}/wp-json/wc/v3", env.sim.base_url(WOO));
    let (status, body) = send(reqwest::Method::GET, &format!("{api}/orders"), None).await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("woocommerce_rest_cannot_view"))
    );
    let (status, body) = send(
        reqwest::Method::PUT,
        &format!("{api}/orders/{}", order["id"]),
        Some(json!({"status": "completed"})),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("woocommerce_rest_cannot_edit"))
    );
    let partial = format!(
        "{api}/orders?oauth_consumer_key={}",
        credentials().woocommerce_key
    );
    let (status, body) = send(reqwest::Method::GET, &partial, None).await;
    assert_eq!(
        (status, &body["code"]),
        (
            401,
            &json!("woocommerce_rest_authentication_missing_parameter")
        )
    );
}

#[tokio::test]
async fn the_adapter_signs_over_http_and_the_simulator_accepts_it() {
    let env = start().await;
    env.control.listing(WOO, "A", 5).await;
    let order = env.control.order(WOO, &[("A", 1)], "processing").await;
    let adapter = env.adapter(WOO);
    assert_eq!(
        adapter.get_order(&id(&order)).await.unwrap().items[0].sku,
        "A"
    );
    adapter.set_listing_quantity("A", 3).await.unwrap();
    assert_eq!(adapter.listing_quantity("A").await, Ok(3));
    let requests = env.control.get("/requests?marketplace=woocommerce").await;
    let paths: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(paths.len() >= 4, "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| p.contains("oauth_signature_method=HMAC-SHA256")
                && p.contains("oauth_signature=")),
        "{paths:?}"
    );
}

/// The URL shape of WooCommerce's official clients over plain HTTP (PyPI
/// `WooCommerce`; npm's puts the copy before the OAuth parameters): the
/// signed URL, then every non-OAuth query parameter again, here `repeated`.
fn with_query_repeated(signed_url: &str, repeated: &[(&str, &str)]) -> String {
    let tail: Vec<String> = repeated
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{signed_url}&{}", tail.join("&"))
}

/// A GET answered with its status, pagination headers and body.
async fn get_page(url: &str) -> (u16, [Option<String>; 3], Value) {
    let response = reqwest::get(url).await.unwrap();
    let header = |name: &str| {
        let value = response.headers().get(name)?;
        Some(value.to_str().unwrap().to_owned())
    };
    let headers = [
        header("x-wp-total"),
        header("x-wp-totalpages"),
        header("link"),
    ];
    let status = response.status().as_u16();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_official_clients_repeated_query_lists_orders_page_by_page() {
    let env = start().await;
    for _ in 0..12 {
        env.control.order(WOO, &[("A", 1)], "processing").await;
    }
    for (page, nonce, rels) in [
        ("1", "page1", &["next"][..]),
        ("2", "page2", &["prev", "next"]),
    ] {
        let query = [("per_page", "5"), ("page", page)];
        let signed = signed_url(&env, "GET", "/orders", &query, Method::Sha256, nonce, now());
        let url = with_query_repeated(&signed, &query);
        let (status, [total, pages, link], body) = get_page(&url).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_array().unwrap().len(), 5);
        assert_eq!(
            (total.as_deref(), pages.as_deref()),
            (Some("12"), Some("3"))
        );
        let link = link.unwrap();
        for rel in rels {
            let target = link
                .split(", ")
                .find(|part| part.ends_with(&format!("rel=\"{rel}\"")))
                .unwrap_or_else(|| panic!("no {rel} in {link}"));
            // Links carry the query as WooCommerce read it: one value per key.
            assert_eq!(target.matches("per_page=5").count(), 1, "{target}");
            assert_eq!(
                target.matches("page=").count(),
                2,
                "per_page and page: {target}"
            );
        }
        // Strict still: the same URL again is a replayed nonce.
        let (status, _, body) = get_page(&url).await;
        assert_eq!(
            (status, &body["message"]),
            (401, &json!("Invalid nonce - nonce has already been used."))
        );
    }
}

#[tokio::test]
async fn the_official_clients_repeated_query_finds_a_product_by_sku() {
    let env = start().await;
    env.control.listing(WOO, "IPH12", 4).await;
    env.control.listing(WOO, "PIX7", 2).await;
    let query = [("sku", "IPH12")];
    let signed = signed_url(&env, "GET", "/products", &query, Method::Sha1, "sku", now());
    let (status, body) = send(
        reqwest::Method::GET,
        &with_query_repeated(&signed, &query),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let products = body.as_array().unwrap();
    assert_eq!(products.len(), 1, "{body}");
    assert_eq!(
        (&products[0]["sku"], &products[0]["stock_quantity"]),
        (&json!("IPH12"), &json!(4))
    );
}

#[tokio::test]
async fn the_last_occurrence_of_a_key_is_what_is_signed_and_served() {
    let env = start().await;
    for _ in 0..12 {
        env.control.order(WOO, &[("A", 1)], "processing").await;
    }
    let signed_five = [("per_page", "5"), ("page", "1")];
    // The repeat after the signature says 6 where 5 was signed: PHP reads 6.
    let signed = signed_url(
        &env,
        "GET",
        "/orders",
        &signed_five,
        Method::Sha256,
        "n1",
        now(),
    );
    let tampered = with_query_repeated(&signed, &[("per_page", "6"), ("page", "1")]);
    let (status, body) = send(reqwest::Method::GET, &tampered, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["message"],
        "Invalid signature - provided signature does not match."
    );
    // The first occurrence changed, the last one as signed: accepted, and
    // the handler serves the value that was checked (5, not 3).
    let signed = signed_url(
        &env,
        "GET",
        "/orders",
        &signed_five,
        Method::Sha256,
        "n2",
        now(),
    );
    let first_changed = signed.replacen("per_page=5", "per_page=3", 1);
    assert_ne!(first_changed, signed);
    let url = with_query_repeated(&first_changed, &signed_five);
    let (status, body) = send(reqwest::Method::GET, &url, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn anonymous_reads_of_one_item_cannot_view_it_and_batches_cannot_batch() {
    let env = start().await;
    let order = env.control.order(WOO, &[("A", 1)], "processing").await;
    let created = env
        .control
        .post(
            "/listings",
            json!({"marketplace": WOO, "sku": "V", "quantity": 1, "variation_of": 500}),
        )
        .await;
    let variation = &created[0]["listing"]["id"];
    let product = env
        .control
        .post(
            "/listings",
            json!({"marketplace": WOO, "sku": "P", "quantity": 1}),
        )
        .await[0]["listing"]["id"]
        .clone();
    let api = format!("{}/wp-json/wc/v3", env.sim.base_url(WOO));
    let view = (
        "woocommerce_rest_cannot_view",
        "Sorry, you cannot view this resource.",
    );
    let list = (
        "woocommerce_rest_cannot_view",
        "Sorry, you cannot list resources.",
    );
    let cases = [
        (
            reqwest::Method::GET,
            format!("/orders/{}", order["id"]),
            view,
        ),
        (reqwest::Method::GET, format!("/products/{product}"), view),
        (
            reqwest::Method::GET,
            format!("/products/500/variations/{variation}"),
            view,
        ),
        (reqwest::Method::GET, "/orders".to_owned(), list),
        (reqwest::Method::GET, "/products?sku=V".to_owned(), list),
        (
            reqwest::Method::POST,
            "/products/batch".to_owned(),
            (
                "woocommerce_rest_cannot_batch",
                "Sorry, you are not allowed to batch manipulate this resource.",
            ),
        ),
    ];
    for (method, path, (code, message)) in cases {
        let body = (method == reqwest::Method::POST).then(|| json!({"update": []}));
        let (status, answer) = send(method, &format!("{api}{path}"), body).await;
        assert_eq!(
            (status, &answer["code"], &answer["message"]),
            (401, &json!(code), &json!(message)),
            "{path}"
        );
    }
}
