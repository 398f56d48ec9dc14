//! Messages per second one locker process handles, against the real
//! services, beside the raw-SQL anchor measured in the same run.
//!
//! `cargo bench -p stockfleet-tests --bench locker_throughput [-- N] [consumers=C]`
//!
//! N `order.created` events (default 20,000, one item each over 50 SKUs) are
//! queued first, then one locker starts with C consumers (default 4, the
//! anchor's clients); the figure is N over the time until its consumers
//! have settled all of them. Run once with the default batch
//! size and once with batches of one message, to show what batching buys.
//! Before each, the anchor ([`stockfleet_tests::bench_anchor`]) writes N
//! items' five rows with plain statements on a fresh database, 20 items per
//! transaction and then one, from 4 clients: the ratios say how near the
//! locker comes to what the database allows on this machine today. After
//! each locker run, the time of every stage (`stockfleet_stage_seconds`)
//! says where it went.

use std::collections::BTreeMap;
use std::time::Instant;
use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role;
use stockfleet_tests::{TestEnv, bench_anchor, created};

const SKUS: usize = 50;
const CLIENTS: usize = 4;

#[tokio::main]
async fn main() {
    // As in a worker: every message gets its OpenTelemetry span (not exported).
    let _telemetry = stockfleet::telemetry::init("locker-bench");
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20_000);
    let consumers: usize = std::env::args()
        .find_map(|arg| arg.strip_prefix("consumers=")?.parse().ok())
        .unwrap_or(CLIENTS);
    let mut summary = Vec::new();
    for (batch_size, per_transaction) in [(100, 20), (1, 1)] {
        let anchor = anchor(count, per_transaction).await;
        println!(
            "anchor, {per_transaction:>2} items per transaction, {CLIENTS} clients: {anchor:.0} items/s"
        );
        let locker = locker(count, batch_size, consumers).await;
        println!(
            "locker, batch size {batch_size:>3}, {consumers} consumers: {locker:.0} messages/s"
        );
        summary.push(format!(
            "batch size {batch_size:>3}: locker {locker:.0} messages/s, anchor {anchor:.0} items/s ({per_transaction} per transaction), ratio {:.2}",
            locker / anchor
        ));
    }
    for line in summary {
        println!("{line}");
    }
}

fn skus() -> Vec<String> {
    (0..SKUS).map(|sku| format!("BENCH-{sku}")).collect()
}

async fn stocked_env() -> TestEnv {
    let env = TestEnv::new().await;
    for sku in skus() {
        env.set_stock(&sku, 1_000_000).await;
    }
    env
}

/// The anchor's items/s on a fresh database.
async fn anchor(count: usize, per_transaction: usize) -> f64 {
    let env = stocked_env().await;
    bench_anchor::items_per_second(
        &env.db,
        &env.settings.database_url,
        &skus(),
        count,
        per_transaction,
        CLIENTS,
    )
    .await
}

/// The locker's messages/s over `count` queued events.
async fn locker(count: usize, batch_size: usize, consumers: usize) -> f64 {
    let env = stocked_env().await;
    let events: Vec<_> = (0..count)
        .map(|n| created(&format!("B{n}"), &format!("BENCH-{}", n % SKUS), 1))
        .collect();
    for chunk in events.chunks(1000) {
        env.publish(chunk).await;
    }
    let mut settings = env.settings.clone();
    settings.database_pool_size = 10;
    settings.consumer.batch_size = batch_size;
    settings.consumer.consumers = consumers;
    settings.consumer.prefetch = 200;
    let before = stages();
    let started = Instant::now();
    let locker = env.start_with(settings, Role::Locker).await;
    env.wait_settled(&env.queue(&QueueSpec::locker()), count as u64)
        .await;
    let elapsed = started.elapsed();
    locker.stop().await;
    print_stages(&before, &stages(), count);
    let locks: i64 = sqlx::query_scalar("SELECT count(*) FROM marketplace_stock_locks")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(locks as usize, count);
    count as f64 / elapsed.as_secs_f64()
}

/// Seconds and laps per stage so far in this process (`StageClock`).
fn stages() -> BTreeMap<String, (f64, f64)> {
    let mut stages: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in stockfleet::telemetry::metrics().render().lines() {
        let Some(rest) = line.strip_prefix("stockfleet_stage_seconds_") else {
            continue;
        };
        let Some((kind, rest)) = rest.split_once("{stage=\"") else {
            continue;
        };
        let Some((stage, value)) = rest.split_once("\"} ") else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let entry = stages.entry(stage.to_owned()).or_default();
        match kind {
            "sum" => entry.0 = value,
            "count" => entry.1 = value,
            _ => {}
        }
    }
    stages
}

/// Where the run's time went: each stage's total (over every consumer and
/// the relay, so more than the wall time), its laps and µs per message.
fn print_stages(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
    messages: usize,
) {
    for (stage, (seconds, laps)) in after {
        let (seconds_before, laps_before) = before.get(stage).copied().unwrap_or_default();
        let (seconds, laps) = (seconds - seconds_before, laps - laps_before);
        if laps == 0.0 {
            continue;
        }
        println!(
            "  {stage:<22} {seconds:>7.3} s in {laps:>6} laps: {:>8.1} µs a lap, {:>6.1} µs a message",
            seconds * 1e6 / laps,
            seconds * 1e6 / messages as f64
        );
    }
}
