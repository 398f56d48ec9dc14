//! Oversell as a figure: the real fleet (worker binaries) against Back
//! Market's simulator at 20 orders a second, stock pushes delayed by the
//! listing limit (20 per 10 s), until the listings sell out. With the default
//! buffer and the oversell guard nothing is oversold; with a zero buffer and
//! the guard blinded the same run oversells, so the figure can fail.

use serde_json::json;
use std::time::Duration;
use stockfleet_tests::*;

const BM: &str = "backmarket";
const SKUS: [&str; 4] = ["OS-1", "OS-2", "OS-3", "OS-4"];

/// Runs the fleet through a sell-out; returns the oversold units on Back Market.
async fn sell_out(unguarded: bool) -> i64 {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    if unguarded {
        // No buffer, and the guard blinded: the fleet believes Back Market
        // keeps what we pushed (no estimate of its own decrements), and a poll
        // stays fresh for ever.
        sqlx::query(
            "UPDATE marketplaces SET default_buffer_percentage = 0, default_buffer_min_units = 0,
                    increase_freshness_seconds = 2147483647, decrements_on_order = false",
        )
        .execute(&env.db)
        .await
        .unwrap();
    }
    for sku in SKUS {
        sim.listing(BM, sku, 0).await;
    }
    let _workers: Vec<_> = env.spawn_fleet();
    for sku in SKUS {
        env.set_stock_on(BM, sku, 20).await;
    }
    eventually("the listings shown", || async {
        env.in_sync(&sim, BM).await
    })
    .await;

    sim.post(
        "/generator/start",
        json!({"seed": 12, "orders_per_second": 20.0, "marketplaces": [BM]}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let generator = sim.post("/generator/stop", json!({})).await;
    let created = generator["created"].as_i64().unwrap();
    eventually("every order locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            == created
    })
    .await;
    let report = env.validate().await;
    assert!(report.is_clean(), "{:?}", report.violations);
    report.oversold_units[BM]
}

#[tokio::test]
async fn a_sell_out_at_20_orders_per_second_oversells_nothing_with_the_default_buffer() {
    let (guarded, unguarded) = tokio::join!(sell_out(false), sell_out(true));
    assert_eq!(guarded, 0, "oversold with the default buffer and the guard");
    assert!(
        unguarded > 0,
        "a zero buffer without the guard oversold nothing: the run cannot tell"
    );
}
