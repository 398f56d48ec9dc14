//! The fleet's request budget (docs/architecture.md, "Request budget"): two
//! pollers and three publishers, as processes, against the simulator's
//! published limits, one of each killed on the way.

use std::time::Duration;
use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role;
use stockfleet_tests::*;

const LIMITED: [&str; 2] = ["backmarket", "refurbed"];

async fn count_on(env: &TestEnv, marketplace: &str, condition: &str) -> i64 {
    env.scalar(&format!(
        "SELECT count(*) FROM orders o JOIN marketplaces m ON m.id = o.marketplace_id
         WHERE m.code = '{marketplace}' AND {condition}"
    ))
    .await
}

#[tokio::test]
async fn two_pollers_and_three_publishers_stay_within_every_limit_when_one_of_each_is_killed() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // Polling every second asks for far more than the limits allow: the
    // budget, not the schedule, decides what goes out.
    env.poll_every(1).await;
    let skus: Vec<String> = (0..20).map(|n| format!("B-{n:02}")).collect();
    for marketplace in LIMITED {
        for sku in &skus {
            sim.listing(marketplace, sku, 1000).await;
            env.set_stock_on(marketplace, sku, 1000).await;
        }
    }
    let _workers = [
        env.start(Role::Locker).await,
        env.start(Role::Reducer).await,
    ];
    let mut pollers: Vec<_> = (0..2).map(|_| env.spawn("stockfleet-poller")).collect();
    let mut publishers: Vec<_> = (0..3).map(|_| env.spawn("stockfleet-publisher")).collect();
    for marketplace in LIMITED {
        let queue = env.queue(&QueueSpec::publisher(marketplace));
        eventually("publishers consuming", || async {
            env.consumers(&queue).await >= 1
        })
        .await;
    }

    // 4 orders a second on each marketplace for 16 s; each one costs a
    // stock push and an accept on top of the polls.
    let mut placed = 0;
    for tick in 0..64 {
        for marketplace in LIMITED {
            sim.place(marketplace, &skus[tick % skus.len()], 1).await;
        }
        placed += 1;
        if tick == 32 {
            publishers[0].start_kill().unwrap();
            pollers[0].start_kill().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The survivors fetch and accept every order.
    for marketplace in LIMITED {
        eventually(
            &format!("every {marketplace} order stored and accepted"),
            || async { count_on(&env, marketplace, "o.status = 'accepted'").await == placed },
        )
        .await;
    }
    for marketplace in LIMITED {
        assert_eq!(
            sim.violations(marketplace).await,
            0,
            "{marketplace}: requests over the limit"
        );
    }
    drop((pollers, publishers));
}

/// A bucket of one permit (10 requests per second: capacity 10 % of it)
/// keeps no reserve: a low-priority caller (a stock increase) is granted its
/// permit once the bucket has refilled, rather than waiting for ever, and a
/// larger bucket still keeps half of itself for high-priority callers.
#[tokio::test]
async fn low_priority_callers_are_served_by_the_smallest_bucket_and_leave_half_of_larger_ones() {
    let env = TestEnv::new().await;
    let lease = |requests: i32, reserve: f64| {
        let db = env.db.clone();
        async move {
            sqlx::query(
                "UPDATE request_budgets SET requests = $1, window_seconds = 1, tokens = 0.1 * $1,
                        refilled_at = clock_timestamp()
                 WHERE class = 'listings'
                   AND marketplace_id = (SELECT id FROM marketplaces WHERE code = 'woocommerce')",
            )
            .bind(requests)
            .execute(&db)
            .await
            .unwrap();
            sqlx::query_scalar::<_, i32>(
                "SELECT granted FROM lease_request_permits(
                     (SELECT id FROM marketplaces WHERE code = 'woocommerce'), 'listings', 100, $1)",
            )
            .bind(reserve)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        lease(10, 0.5).await,
        1,
        "a one-permit bucket serves low priority"
    );
    assert_eq!(
        lease(100, 0.5).await,
        5,
        "half of a ten-permit bucket stays"
    );
    assert_eq!(
        lease(100, 0.0).await,
        10,
        "high priority takes the whole bucket"
    );
}

/// Each seeded class's bucket holds several permits, so one lease round trip
/// to PostgreSQL pays for several calls (WooCommerce's listings class was 10
/// per 1 s: a bucket of one permit, one round trip a write).
#[tokio::test]
async fn every_seeded_budget_leases_several_permits_a_round_trip() {
    let env = TestEnv::new().await;
    let smallest = env
        .scalar("SELECT min(floor(0.1 * requests))::bigint FROM request_budgets")
        .await;
    assert!(smallest >= 2, "a seeded bucket holds {smallest} permit(s)");
}
