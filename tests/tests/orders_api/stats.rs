//! Order statistics against a known set of orders: counts per status,
//! revenue per currency over paid orders, unknown SKUs, the last syncs.

use super::{BM, WOO, orders};
use reqwest::StatusCode;
use serde_json::json;
use stockfleet::admin::tokens::Role;
use stockfleet_tests::TestEnv;

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
