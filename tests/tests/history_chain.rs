//! The audit trail is exact: every history row records the levels its own
//! transaction saw, so each row's history is a chain (each before = the
//! previous after, the last after = the row), and `stockfleet validate`
//! checks it and `--repair` bridges a break without rewriting history.

use serde_json::json;
use stockfleet::admin::history_chain::{self, BRIDGE_REFERENCE};
use stockfleet::bus::QueueSpec;
use stockfleet::domain::OrderStatus;
use stockfleet::ledger::Role;
use stockfleet_tests::*;

const BM: &str = "backmarket";

/// Whether a stock write to Back Market has been received and not yet answered.
async fn push_in_flight(sim: &Sim) -> bool {
    let requests = sim.get("/requests?marketplace=backmarket").await;
    requests.as_array().unwrap().iter().any(|r| {
        r["method"] == "POST"
            && r["status"] == 0
            && r["path"]
                .as_str()
                .unwrap_or_default()
                .contains("/ws/listings/")
    })
}

#[tokio::test]
async fn the_chain_holds_after_a_burst_of_locks_and_pushes_on_the_same_rows() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let skus: Vec<String> = (0..4).map(|n| format!("CHAIN-{n}")).collect();
    for sku in &skus {
        sim.listing(BM, sku, 0).await;
        env.set_stock(sku, 200).await;
    }
    env.orders_polled(BM).await;
    // The orders go straight onto the bus, never through the simulator, so
    // Back Market never takes units by itself here: its increases need only
    // a fresh poll (the oversell guard's rule for such a marketplace).
    sqlx::query(
        "UPDATE marketplaces SET increase_freshness_seconds = 3600, decrements_on_order = false",
    )
    .execute(&env.db)
    .await
    .unwrap();
    // Slow answers: locks land while a push to the same row is in flight.
    sim.faults(BM, json!({"latency_ms": 200})).await;
    env.set_rate_limit(BM, 100, 1).await;
    let locker = env.start(Role::Locker).await;
    let publisher = env.start_publisher(&sim).await;

    let mut events = 0;
    for round in 0..10 {
        // Each round lands while a push is in flight (or once all are done).
        eventually("a push in flight", || async {
            push_in_flight(&sim).await || env.in_sync(&sim, BM).await
        })
        .await;
        let mut batch = Vec::new();
        for sku in &skus {
            batch.push(created(&format!("C-{round}-{sku}"), sku, 1));
            if round % 3 == 2 {
                let earlier = format!("C-{}-{sku}", round - 1);
                batch.push(changed(&earlier, sku, 1, OrderStatus::Cancelled));
            }
        }
        events += batch.len() as u64;
        env.publish(&batch).await;
        // An operator's correction joins in now and then.
        if round % 4 == 3 {
            env.set_stock(&skus[round % skus.len()], 210).await;
        }
    }
    env.wait_settled(&env.queue(&QueueSpec::locker()), events)
        .await;
    eventually("every row pushed", || async { env.in_sync(&sim, BM).await }).await;

    let breaks = history_chain::breaks(&env.db).await.unwrap();
    assert!(breaks.is_empty(), "{breaks:#?}");
    // The burst did interleave: rows changed while their push was in flight,
    // so the quantity pushed (read before the call) is not buffered(available)
    // of the levels the push's history row records (those of its commit).
    let moved_during_push = env
        .scalar(
            "SELECT count(*) FROM marketplace_stock_history
             WHERE change_type = 'api_sync'
               AND substring(notes from 'pushed (\\d+)')::int
                   <> floor(GREATEST(listed_after - locked_after, 0) * 0.9)",
        )
        .await;
    assert!(moved_during_push > 0, "no row changed during a push");
    let report = env.validate().await;
    assert!(report.is_clean(), "{:#?}", report.violations);
    publisher.stop().await;
    locker.stop().await;
}

#[tokio::test]
async fn validate_finds_a_planted_break_and_repair_bridges_it() {
    let env = TestEnv::new().await;
    env.set_stock("PLANTED", 10).await;
    env.set_stock("PLANTED", 12).await;
    // A history row recording levels no transaction saw (delta 0, as the
    // stale api_sync rows did): the replay of deltas cannot see it.
    let planted: i64 = sqlx::query_scalar(
        "INSERT INTO marketplace_stock_history
             (stock_id, variation_id, marketplace_id, change_type, listed_before, listed_after,
              locked_before, locked_after, available_before, available_after, quantity_change, notes)
         SELECT id, variation_id, marketplace_id, 'api_sync', 15, 15, 0, 0, 15, 15, 0, 'planted'
         FROM marketplace_stock RETURNING id",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();

    let breaks = history_chain::breaks(&env.db).await.unwrap();
    let found: Vec<(i64, bool, i32, i32)> = breaks
        .iter()
        .map(|b| (b.history_id, b.at_end, b.expected.listed, b.found.listed))
        .collect();
    assert_eq!(
        found,
        vec![(planted, false, 12, 15), (planted, true, 12, 15)]
    );
    let check = env.cli(&["validate"]).await;
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "history row {planted} starts at listed 15 locked 0, the row before ended at listed 12 locked 0"
        )),
        "{stdout}"
    );

    let repair = env.cli(&["validate", "--repair"]).await;
    let stdout = String::from_utf8_lossy(&repair.stdout);
    assert_eq!(repair.status.code(), Some(0), "{stdout}");
    assert!(env.validate().await.is_clean());
    // Appended, never rewritten: the planted row is still there, the bridge after it.
    let trail: Vec<(i64, String, Option<String>, i32, i32)> = sqlx::query_as(
        "SELECT id, change_type, reference_id, listed_before, listed_after
         FROM marketplace_stock_history ORDER BY id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(trail.len(), 4);
    assert_eq!(trail[2].0, planted);
    assert_eq!(
        (&trail[3].1, trail[3].2.as_deref(), trail[3].3, trail[3].4),
        (&"reconciliation".to_owned(), Some(BRIDGE_REFERENCE), 12, 12)
    );

    // The chain goes on from the bridge, and a new break after it is found again.
    env.set_stock("PLANTED", 9).await;
    assert!(env.validate().await.is_clean());
    sqlx::query(
        "INSERT INTO marketplace_stock_history
             (stock_id, variation_id, marketplace_id, change_type, listed_before, listed_after,
              locked_before, locked_after, available_before, available_after, quantity_change)
         SELECT id, variation_id, marketplace_id, 'manual', 9, 7, 0, 0, 9, 7, -2
         FROM marketplace_stock",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let breaks = history_chain::breaks(&env.db).await.unwrap();
    assert_eq!(breaks.len(), 1);
    assert!(breaks[0].at_end);
    assert!(!env.validate().await.is_clean());
}
