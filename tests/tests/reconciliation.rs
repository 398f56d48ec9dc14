//! Stock reconciliation (design §6): drift found on the marketplace is
//! recorded and corrected through the publisher; the schedule staggers
//! marketplaces by their offsets.

use std::time::Duration;
use stockfleet::poller::Trigger;
use stockfleet::reconcile;
use stockfleet_tests::*;

const BM: &str = "backmarket";

#[tokio::test]
async fn drift_is_recorded_and_restored_by_the_next_reconciliation() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "DRIFT", 0).await;
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock("DRIFT", 10).await;
    eventually("in sync", || async { env.in_sync(&sim, BM).await }).await;

    // Someone edits the listing on the marketplace; then a new-orders poll
    // (it finds no order, so giving the 6 units back sells nothing twice).
    sim.listing(BM, "DRIFT", 3).await;
    env.orders_polled(BM).await;
    let fresh = reconcile::run(&env.db, BM, false, Trigger::Manual)
        .await
        .unwrap();
    assert_eq!(
        fresh.enqueued, 0,
        "the row was pushed less than 6 hours ago"
    );
    let summary = reconcile::run(&env.db, BM, true, Trigger::Manual)
        .await
        .unwrap();
    assert_eq!(summary.enqueued, 1);
    assert!(!summary.skipped);
    // Less shown than we estimate may be orders not learned yet: the
    // increase back waits for a poll started after the read (this stands in
    // for the poller the publisher asks).
    eventually("restored", || async {
        env.orders_polled(BM).await;
        sim.quantity(BM, "DRIFT").await == Some(9)
    })
    .await;
    eventually("the drift recorded", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM marketplace_stock_history WHERE change_type = 'reconciliation'",
        )
        .fetch_one(&env.db)
        .await
        .unwrap()
            == 1
    })
    .await;
    let note: String = sqlx::query_scalar(
        "SELECT notes FROM marketplace_stock_history WHERE change_type = 'reconciliation'",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(
        note,
        "backmarket showed 3 while we last pushed 9; our quantity is 9"
    );
    let runs: Vec<(String, String)> = sqlx::query_as(
        "SELECT status, trigger FROM sync_runs WHERE sync_type = 'stock' ORDER BY id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|(status, trigger)| status == "succeeded" && trigger == "manual")
    );
    assert!(env.validate().await.is_clean());
    publisher.stop().await;
}

#[tokio::test]
async fn scheduled_reconciliations_follow_their_offsets_and_never_run_at_once() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // One "hour" of the schedule lasts 2 s: Back Market every hour at :00,
    // Refurbed every hour at :30 (2 s apart, 1 s out of phase).
    sqlx::query(
        "UPDATE marketplaces SET sync_interval_hours = 1,
             sync_offset_minutes = CASE code WHEN 'refurbed' THEN 30 ELSE 0 END,
             sync_enabled = code <> 'woocommerce'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let two = env
        .start_publisher_with(env.settings.clone(), &sim, Duration::from_secs(2))
        .await;
    // A second publisher watches the same clock: each slot still runs once.
    let one = env
        .start_publisher_with(env.settings.clone(), &sim, Duration::from_secs(2))
        .await;
    let runs = || async {
        sqlx::query_as::<_, (String, i64, f64, f64)>(
            "SELECT m.code, (EXTRACT(EPOCH FROM r.scheduled_for) * 1000)::bigint,
                    EXTRACT(EPOCH FROM r.started_at)::float8, EXTRACT(EPOCH FROM r.finished_at)::float8
             FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
             WHERE r.sync_type = 'stock' AND r.status = 'succeeded' ORDER BY r.started_at",
        )
        .fetch_all(&env.db)
        .await
        .unwrap()
    };
    eventually("two scheduled runs of each marketplace", || async {
        let runs = runs().await;
        runs.iter().filter(|r| r.0 == "backmarket").count() >= 2
            && runs.iter().filter(|r| r.0 == "refurbed").count() >= 2
    })
    .await;
    let runs = runs().await;
    let mut slots: Vec<(String, i64)> = runs.iter().map(|r| (r.0.clone(), r.1)).collect();
    slots.dedup();
    assert_eq!(slots.len(), runs.len(), "each slot ran once: {runs:?}");
    for (code, slot, _, _) in &runs {
        let phase = slot % 2000;
        assert_eq!(phase, if code == "refurbed" { 1000 } else { 0 }, "{runs:?}");
        assert_ne!(code, "woocommerce");
    }
    for pair in runs.windows(2) {
        assert!(pair[0].3 <= pair[1].2, "runs overlap: {pair:?}");
    }
    one.stop().await;
    two.stop().await;
}
