//! The publisher at each marketplace's seeded rate limit, and the calls a
//! burst costs, against the simulator and the real services.
//!
//! `cargo bench -p stockfleet-tests --bench publisher_rate [-- ROWS]`
//!
//! Per marketplace: ROWS rows (default 60) get a first quantity while the
//! publisher is stopped, then one publisher pushes them all; the figure is
//! requests per second as the simulator saw them arrive (first to last), next
//! to the limit from the marketplaces table, and the simulator's violation
//! count. Then a burst: 2,000 changes over 100 rows of Refurbed (20 each,
//! through the locker) and the quantity calls they cost.

use std::time::Duration;
use stockfleet::ledger::Role;
use stockfleet_tests::{TestEnv, order_event};

async fn at_limit(marketplace: &str, rows: usize) {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // The simulator enforces exactly the limit the publisher is configured with.
    let (requests, window): (i32, i32) = sqlx::query_as(
        "SELECT rate_limit_requests, rate_limit_window_seconds FROM marketplaces WHERE code = $1",
    )
    .bind(marketplace)
    .fetch_one(&env.db)
    .await
    .unwrap();
    let limit = serde_json::json!({"requests": requests, "window_ms": window * 1000});
    sim.rate_limits(marketplace, limit.clone(), limit).await;
    for n in 0..rows {
        let sku = format!("RATE-{n:03}");
        sim.listing(marketplace, &sku, 0).await;
        env.set_stock_on(marketplace, &sku, 10).await;
    }
    env.orders_polled(marketplace).await;
    sqlx::query("UPDATE marketplaces SET increase_freshness_seconds = 3600")
        .execute(&env.db)
        .await
        .unwrap();
    let publisher = env.start_publisher(&sim).await;
    within_10_minutes("every row pushed", || env.in_sync(&sim, marketplace)).await;
    let log = sim
        .get(&format!("/requests?marketplace={marketplace}"))
        .await;
    let times: Vec<chrono::DateTime<chrono::Utc>> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at"].as_str().unwrap().parse().unwrap())
        .collect();
    let span = (times[times.len() - 1] - times[0]).as_seconds_f64();
    let pushes = sim.pushes(marketplace).await.len();
    println!(
        "{marketplace:<12} limit {requests}/{window}s = {:.2}/s: {} requests ({pushes} pushes) at {:.2} requests/s, {:.2} pushes/s; violations {}",
        f64::from(requests) / f64::from(window),
        times.len(),
        (times.len() - 1) as f64 / span,
        pushes as f64 / span,
        sim.violations(marketplace).await
    );
    publisher.stop().await;
}

/// Awaits `condition`, polled every 200 ms, for at most 10 minutes.
async fn within_10_minutes<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let waited = tokio::time::timeout(Duration::from_secs(600), async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    waited
        .await
        .unwrap_or_else(|_| panic!("not within 10 minutes: {what}"));
}

async fn burst() {
    const RF: &str = "refurbed";
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let skus: Vec<String> = (0..100).map(|n| format!("BURST-{n:03}")).collect();
    for sku in &skus {
        sim.listing(RF, sku, 0).await;
        env.set_stock_on(RF, sku, 100).await;
    }
    env.orders_polled(RF).await;
    // No poller runs: the first sync outlasts the default freshness (60 s).
    sqlx::query("UPDATE marketplaces SET increase_freshness_seconds = 3600")
        .execute(&env.db)
        .await
        .unwrap();
    let publisher = env.start_publisher(&sim).await;
    // 100 rows at Refurbed's budget: longer than a test's minute.
    within_10_minutes("the first sync", || env.in_sync(&sim, RF)).await;
    let before = sim.pushes(RF).await.len();
    let locker = env.start(Role::Locker).await;
    let events: Vec<_> = (0..2_000)
        .map(|n| {
            let mut event = order_event(
                stockfleet::events::ORDER_CREATED,
                &format!("B{n}"),
                &format!("B{n}-1"),
                &skus[n % 100],
                1,
                stockfleet::domain::OrderStatus::Pending,
            );
            event.marketplace = RF.to_owned();
            event
        })
        .collect();
    env.publish(&events).await;
    within_10_minutes("the burst settled", || async {
        let locks: i64 = sqlx::query_scalar("SELECT count(*) FROM marketplace_stock_locks")
            .fetch_one(&env.db)
            .await
            .unwrap();
        locks == 2_000 && env.in_sync(&sim, RF).await
    })
    .await;
    let calls = sim.pushes(RF).await.len() - before;
    println!(
        "burst on refurbed at its limit: 2,000 changes on 100 rows cost {calls} quantity calls = {:.3} calls per change",
        calls as f64 / 2_000.0
    );
    locker.stop().await;
    publisher.stop().await;
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(60);
    for marketplace in ["refurbed", "woocommerce", "backmarket"] {
        at_limit(marketplace, rows).await;
    }
    burst().await;
}
