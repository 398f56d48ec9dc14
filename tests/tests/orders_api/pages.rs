//! The order pages: the list links, sorts, pages and filters; an order's
//! page shows its locks, and the operators' form sends a change only with
//! the page's proof.

use super::{BM, WOO, orders};
use reqwest::StatusCode;
use stockfleet::admin::tokens::{self, Role};
use stockfleet_tests::TestEnv;

#[tokio::test]
async fn the_order_pages_link_filter_and_show_locks_and_the_operators_form() {
    let env = TestEnv::new().await;
    orders(&env, WOO, "W", 3, "accepted").await;
    orders(&env, BM, "B", 1, "accepted").await;
    sqlx::raw_sql(
        "INSERT INTO variations (sku) VALUES ('W-SKU-1');
         INSERT INTO marketplace_stock (variation_id, marketplace_id, listed_stock)
         SELECT v.id, m.id, 5 FROM variations v, marketplaces m
         WHERE v.sku = 'W-SKU-1' AND m.code = 'woocommerce';",
    )
    .execute(&env.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO marketplace_stock_locks (stock_id, marketplace_id, order_external_id,
             order_item_external_id, quantity_locked, lock_status, locked_at)
         SELECT s.id, s.marketplace_id, 'W-1', '1', 1, 'locked', now() FROM marketplace_stock s",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;
    let scoped = tokens::create_scoped(&env.db, "bm team", Role::Operator, &[BM.to_owned()])
        .await
        .unwrap();

    let (status, list) = api
        .page(
            &viewer,
            "/orders?marketplace=woocommerce&sort=total&order=asc",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.contains("1–3 of 3"), "{list}");
    assert!(list.contains(r#"href="/orders/woocommerce/W-1""#), "{list}");
    assert!(
        list.contains("sort=total&amp;order=desc"),
        "the active column sorts the other way: {list}"
    );
    assert!(!list.contains("B-1"));
    let (status, paged) = api.page(&viewer, "/orders?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(paged.contains("offset=2"), "a next link: {paged}");
    let (status, refused) = api.page(&viewer, "/orders?status=open").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused.contains("\"open\"") || refused.contains("&quot;open&quot;"),
        "{refused}"
    );

    let (status, detail) = api.page(&viewer, "/orders/woocommerce/W-1").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(
        detail.contains(r#"<span class="badge locked">locked</span>"#),
        "{detail}"
    );
    assert!(detail.contains(r#"href="/stock/W-SKU-1""#), "{detail}");
    assert!(detail.contains("<details>"), "raw JSON folded");
    assert!(!detail.contains(r#"name="proof""#), "a viewer gets no form");
    let (_, as_operator) = api.page(&operator, "/orders/woocommerce/W-1").await;
    let proof = as_operator
        .split(r#"name="proof" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an operator gets the form")
        .to_owned();

    // The form sends the change with the page's proof; without it, nothing.
    let post = |proof: &str| {
        api.http
            .post(format!("{}/orders/woocommerce/W-1", api.base))
            .header("cookie", format!("stockfleet_token={operator}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("proof={proof}&status=shipped&tracking_number="))
            .send()
    };
    let forged = post("0000").await.unwrap();
    assert_eq!(
        forged.headers()["location"],
        "/login",
        "sent to sign in again"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM order_status_changes")
            .await,
        0
    );
    let sent = post(&proof).await.unwrap();
    assert_eq!(sent.headers()["location"], "/orders/woocommerce/W-1");
    let (_, after) = api.page(&operator, "/orders/woocommerce/W-1").await;
    assert!(
        after.contains(r#"<span class="badge pending">pending</span>"#),
        "{after}"
    );
    assert!(after.contains("dashboard:otto"), "{after}");

    // A token of another marketplace: the order is a 404 page, the list empty of it.
    let (status, hidden) = api.page(&scoped, "/orders/woocommerce/W-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(hidden.contains("<html"), "a page, not JSON: {hidden}");
    let (_, theirs) = api.page(&scoped, "/orders").await;
    assert!(
        theirs.contains("B-1") && !theirs.contains("W-1"),
        "{theirs}"
    );
    api.stop().await;
}
