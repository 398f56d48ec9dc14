//! Oversell as a figure: the real fleet (worker binaries) against Back
//! Market's simulator at 20 orders a second, stock pushes delayed by the
//! listing limit (20 per 10 s), until the listings sell out. With the default
//! buffer and the oversell guard nothing is oversold; with a zero buffer and
//! the guard blinded the same run oversells, so the figure can fail. And an
//! increase reads what the marketplace shows first: orders placed since the
//! covering poll are not given back. Nor does an increase go past orders
//! stored but not yet applied by the locker.

use serde_json::json;
use std::time::Duration;
use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role;
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

/// `stockfleet sync --type new` on Back Market, inline.
async fn poll_new_orders(env: &TestEnv) {
    let polled = env
        .cli(&["sync", "--marketplace", BM, "--type", "new"])
        .await;
    assert!(polled.status.success(), "{polled:?}");
}

/// A poll started after the order was applied covers the increase: it is pushed.
async fn poll_then_pushed(env: &TestEnv, sim: &Sim) {
    poll_new_orders(env).await;
    eventually("the increase pushed", || async {
        env.in_sync(sim, BM).await
    })
    .await;
}

#[tokio::test]
async fn an_increase_waits_while_the_marketplace_shows_less_than_we_estimate() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    sim.listing(BM, "UP-1", 0).await;
    let _workers = [
        env.spawn("stockfleet-locker"),
        env.spawn("stockfleet-publisher"),
    ];
    env.set_stock_on(BM, "UP-1", 10).await;
    poll_new_orders(&env).await;
    eventually("the first push", || async { env.in_sync(&sim, BM).await }).await;
    let shown = sim.quantity(BM, "UP-1").await.unwrap();

    // A poll after the push covers an increase; then an order of 2 that no
    // poll brought yet: Back Market shows 2 less than we estimate.
    poll_new_orders(&env).await;
    sim.place(BM, "UP-1", 2).await;
    let reads = sim.requests_to(BM, "/ws/listings/detail").await;
    env.set_stock_on(BM, "UP-1", 20).await;
    // The read is recorded as what Back Market shows; no push follows it.
    eventually("the increase read what Back Market shows", || async {
        env.scalar("SELECT last_api_quantity::bigint FROM marketplace_stock")
            .await
            == shown - 2
    })
    .await;
    assert_eq!(sim.requests_to(BM, "/ws/listings/detail").await, reads + 1);
    assert_eq!(
        sim.quantity(BM, "UP-1").await,
        Some(shown - 2),
        "the order's units were given back"
    );

    // The poll brings the order, the next one finds the row quiet: it goes.
    poll_new_orders(&env).await;
    eventually("the order locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            == 1
    })
    .await;
    poll_then_pushed(&env, &sim).await;
    assert!(sim.quantity(BM, "UP-1").await.unwrap() > shown - 2);
}

#[tokio::test]
async fn an_increase_waits_for_stored_orders_the_locker_has_not_applied() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    // Not decrementing: no read before the increase, the poll alone covers it.
    sqlx::query("UPDATE marketplaces SET decrements_on_order = false WHERE code = $1")
        .bind(BM)
        .execute(&env.db)
        .await
        .unwrap();
    sim.listing(BM, "UP-2", 0).await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock_on(BM, "UP-2", 10).await;
    poll_new_orders(&env).await;
    eventually("the first push", || async { env.in_sync(&sim, BM).await }).await;

    // An order of 2, polled and stored, with no locker running; then a
    // count of 20. The poll is fresh, but 18 are left to sell, not 20:
    // pushing 18 would show units that are gone.
    sim.place(BM, "UP-2", 2).await;
    poll_new_orders(&env).await;
    let pushed = || async {
        let pushes = sim.pushes(BM).await;
        pushes.into_iter().map(|(_, q)| q).collect::<Vec<i64>>()
    };
    let queue = env.queue(&QueueSpec::publisher(BM));
    let settled = env.settled(&queue);
    env.set_stock_on(BM, "UP-2", 20).await;
    // Deferred again and again (or, wrongly, pushed).
    eventually("the increase handled three times", || async {
        env.settled(&queue) >= settled + 3 || pushed().await.len() > 1
    })
    .await;
    assert_eq!(
        pushed().await,
        vec![9],
        "the increase went before the order was applied"
    );

    // The locker applies the order; after the next poll the increase goes.
    let locker = env.start(Role::Locker).await;
    eventually("the order locked", || async {
        env.scalar("SELECT locked_stock::bigint FROM marketplace_stock")
            .await
            == 2
    })
    .await;
    poll_then_pushed(&env, &sim).await;
    assert_eq!(
        pushed().await,
        vec![9, 16],
        "floor(18 × 0.9) after the lock"
    );
    locker.stop().await;
    publisher.stop().await;
}
