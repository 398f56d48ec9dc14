//! The orders list: every order reachable past the first 500, sorted both
//! ways with stable ties, filtered (an empty filter meaning any), and bad
//! values refused with the field named.

use super::{BM, WOO, ids, orders};
use reqwest::StatusCode;
use stockfleet::admin::tokens::Role;
use stockfleet_tests::TestEnv;

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
