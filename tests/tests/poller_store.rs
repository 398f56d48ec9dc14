//! The poller's store under concurrency: recording re-reads never waits for
//! (or deadlocks with) a concurrent store of the same orders.

use std::time::Duration;
use stockfleet::marketplace::directory::MarketplaceDirectory;
use stockfleet::poller::store;
use stockfleet_tests::TestEnv;

#[tokio::test]
async fn marking_re_reads_skips_orders_a_concurrent_store_holds() {
    let env = TestEnv::new().await;
    let marketplace = MarketplaceDirectory::new(env.db.clone())
        .get("refurbed")
        .await
        .unwrap()
        .expect("seeded marketplace");
    for id in ["R1", "R2"] {
        sqlx::query(
            "INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw)
             VALUES ($1, $2, 'accepted', 'ACCEPTED', '{}')",
        )
        .bind(marketplace.id)
        .bind(id)
        .execute(&env.db)
        .await
        .unwrap();
    }
    // A store in progress holds R1 (as a new-orders run updating it would).
    let mut store_in_progress = env.db.begin().await.unwrap();
    sqlx::query("UPDATE orders SET updated_at = now() WHERE external_id = 'R1'")
        .execute(&mut *store_in_progress)
        .await
        .unwrap();
    let marked = tokio::time::timeout(
        Duration::from_secs(5),
        store::mark_rechecked(&env.db, &marketplace, &["R1", "R2"]),
    )
    .await;
    assert!(
        matches!(marked, Ok(Ok(()))),
        "waited for the held row: {marked:?}"
    );
    store_in_progress.rollback().await.unwrap();
    let checked: Vec<String> = sqlx::query_scalar(
        "SELECT external_id FROM orders WHERE rechecked_at IS NOT NULL ORDER BY external_id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(checked, ["R2"], "the held order goes first next run");
}
