//! Test harness: every test gets its own database and its own bus prefix on
//! the shared PostgreSQL and RabbitMQ, so tests run in parallel and never see
//! each other's rows or messages. The database is removed when the test ends,
//! even when it panics; the prefix is leased from a bounded pool and its
//! queues purged and kept for the next test (`broker.rs`).

use lapin::Channel;
use lifecycle::{cleanup, prepare};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockfleet::bus::{Bus, QueueSpec, Topology};
use stockfleet::config::{ConsumerSettings, Settings};

mod api;
pub mod audit;
pub mod bench_anchor;
pub mod bench_fleet;
pub mod broker;
mod budgets;
mod database;
mod http;
mod in_process;
mod lifecycle;
mod messages;
mod order_events;
mod processes;
mod proxy;
mod sim;
pub use api::ApiServer;
pub use http::{free_port, get_json, get_text, readiness};
pub use in_process::InProcessWorker;
use in_process::settled_counts;
pub use lifecycle::drop_database;
pub use messages::{Observer, header};
pub use order_events::{changed, created, order_event};
pub use processes::{binary_path, terminate};
pub use proxy::Proxy;
pub use sim::Sim;

pub const MARKETPLACE: &str = "backmarket";

pub struct TestEnv {
    /// The test database's name (unique).
    pub name: String,
    /// The bus prefix, leased for this test (`broker.rs`).
    pub prefix: String,
    pub settings: Settings,
    /// Every set of retry delays a worker of this test declared queues for,
    /// so the cleanup empties all of their delay queues.
    retry_delay_sets: std::sync::Mutex<Vec<Vec<u64>>>,
    /// Messages settled per queue by earlier tests of this process on the
    /// same prefix (the metrics are the process's).
    settled_before: HashMap<String, u64>,
    pub db: PgPool,
    pub bus: Arc<Bus>,
    channel: Channel,
    /// Dropped after the cleanup, so the next holder finds the queues empty.
    _lease: broker::Lease,
}

impl TestEnv {
    pub async fn new() -> Self {
        stockfleet::telemetry::metrics();
        let name = format!("sft_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let database_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let mut settings = Settings {
            database_url: database_url.clone(),
            database_pool_size: 5,
            amqp_url: std::env::var("AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            amqp_timeout_seconds: 10,
            bus_prefix: String::new(),
            stock_level_max: stockfleet::domain::input::DEFAULT_MAX_STOCK_LEVEL,
            consumer: ConsumerSettings {
                prefetch: 100,
                batch_size: 50,
                consumers: 1,
                max_attempts: 3,
                retry_delays_ms: vec![100, 200],
                shutdown_grace_ms: 10_000,
                batches_in_flight: 1,
            },
        };
        stockfleet::db::migrate(&database_url)
            .await
            .expect("migrate test database");
        let db = stockfleet::db::connect(&database_url, 5)
            .await
            .expect("test pool");
        let (lease, bus) = broker::lease(&settings).await;
        settings.bus_prefix = lease.prefix.clone();
        let codes = marketplace_codes(&db).await;
        prepare(&bus, &settings.amqp_url, &codes).await;
        let channel = bus.channel().await.expect("channel");
        Self {
            name,
            prefix: lease.prefix.clone(),
            retry_delay_sets: std::sync::Mutex::new(vec![
                settings.consumer.retry_delays_ms.clone(),
            ]),
            settled_before: settled_counts(&lease.prefix),
            settings,
            db,
            bus: Arc::new(bus),
            channel,
            _lease: lease,
        }
    }

    pub fn queue(&self, spec: &QueueSpec) -> String {
        self.bus.topology.queue(spec)
    }

    /// Sets listed stock for a SKU (creating it) the way an operator does.
    pub async fn set_stock(&self, sku: &str, listed: i32) {
        self.set_stock_on(MARKETPLACE, sku, listed).await;
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let name = self.name.clone();
        let amqp_url = self.settings.amqp_url.clone();
        let database_url = self.settings.database_url.clone();
        let topologies: Vec<Topology> = self
            .retry_delay_sets
            .lock()
            .unwrap()
            .iter()
            .map(|delays| {
                Topology::new(
                    &self.prefix,
                    delays.iter().copied().map(Duration::from_millis).collect(),
                )
            })
            .collect();
        // A thread with its own runtime: Drop cannot await, and it also runs on panic.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("cleanup runtime");
            runtime.block_on(cleanup(name, amqp_url, database_url, topologies));
        });
        let _ = cleanup.join();
    }
}

async fn marketplace_codes(db: &PgPool) -> Vec<String> {
    stockfleet::marketplace::directory::codes(db)
        .await
        .expect("marketplaces")
}

/// Awaits a condition (polling it), failing the test after 120 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
