//! Messages per second one locker process handles, against the real services.
//!
//! `cargo bench -p stockfleet-tests --bench locker_throughput [-- N]`
//!
//! N `order.created` events (default 20,000, one item each over 50 SKUs) are
//! queued first, then one locker starts; the figure is N over the time until
//! its consumers have settled all of them. Run once with the default batch
//! size and once with batches of one message, to show what batching buys.

use std::time::Instant;
use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role;
use stockfleet_tests::{TestEnv, created};

#[tokio::main]
async fn main() {
    // As in a worker: every message gets its OpenTelemetry span (not exported).
    let _telemetry = stockfleet::telemetry::init("locker-bench");
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20_000);
    for batch_size in [100, 1] {
        let env = TestEnv::new().await;
        for sku in 0..50 {
            env.set_stock(&format!("BENCH-{sku}"), 1_000_000).await;
        }
        let events: Vec<_> = (0..count)
            .map(|n| created(&format!("B{n}"), &format!("BENCH-{}", n % 50), 1))
            .collect();
        for chunk in events.chunks(1000) {
            env.publish(chunk).await;
        }
        let mut settings = env.settings.clone();
        settings.database_pool_size = 10;
        settings.consumer.batch_size = batch_size;
        settings.consumer.consumers = 2;
        settings.consumer.prefetch = 200;
        let started = Instant::now();
        let locker = env.start_with(settings, Role::Locker).await;
        env.wait_settled(&env.queue(&QueueSpec::locker()), count as u64)
            .await;
        let elapsed = started.elapsed();
        locker.stop().await;
        let locks: i64 = sqlx::query_scalar("SELECT count(*) FROM marketplace_stock_locks")
            .fetch_one(&env.db)
            .await
            .unwrap();
        assert_eq!(locks as usize, count);
        println!(
            "locker, batch size {batch_size:>3}, 2 consumers: {count} messages in {:.2} s = {:.0} messages/s",
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64()
        );
    }
}
