//! Test harness: every test gets its own database and its own bus prefix on
//! the shared PostgreSQL and RabbitMQ, so tests run in parallel and never see
//! each other's rows or messages. The database is removed when the test ends,
//! even when it panics; the prefix is leased from a bounded pool and its
//! queues purged and kept for the next test (`broker.rs`).

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockfleet::bus::headers;
use stockfleet::bus::{Bus, Envelope, Exchange, QueueSpec, Topology};
use stockfleet::config::{ConsumerSettings, Settings};
use stockfleet::domain::OrderStatus;
use stockfleet::events::{ORDER_CREATED, ORDER_STATUS_CHANGED, OrderEvent, OrderEventItem};
use stockfleet::ledger::Role;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod api;
pub mod audit;
pub mod bench_fleet;
pub mod broker;
mod proxy;
mod sim;
pub use api::ApiServer;
pub use proxy::Proxy;
pub use sim::Sim;

pub const MARKETPLACE: &str = "backmarket";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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

    /// Publishes envelopes on the events exchange, as the poller's relay would.
    pub async fn publish(&self, envelopes: &[Envelope]) {
        for envelope in envelopes {
            self.publish_raw(&envelope.event_routing_key(), envelope.to_bytes())
                .await;
        }
    }

    pub async fn publish_raw(&self, routing_key: &str, body: Vec<u8>) {
        self.publish_with_headers(routing_key, body, FieldTable::default())
            .await;
    }

    /// Publishes an envelope as a traced sender does: `traceparent` names its span.
    pub async fn publish_traced(&self, envelope: &Envelope, traceparent: &str) {
        let mut headers = FieldTable::default();
        headers::set_str(&mut headers, headers::TRACEPARENT, traceparent);
        self.publish_with_headers(&envelope.event_routing_key(), envelope.to_bytes(), headers)
            .await;
    }

    async fn publish_with_headers(&self, routing_key: &str, body: Vec<u8>, headers: FieldTable) {
        self.channel
            .basic_publish(
                self.bus.topology.exchange(Exchange::Events).into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    /// Starts a locker or reducer inside this process.
    pub async fn start(&self, role: Role) -> InProcessWorker {
        self.start_with(self.settings.clone(), role).await
    }

    pub async fn start_with(&self, settings: Settings, role: Role) -> InProcessWorker {
        self.uses_retry_delays(&settings);
        let shutdown = CancellationToken::new();
        let worker = stockfleet::worker::Worker::start("test", settings, None, shutdown.clone())
            .await
            .expect("start worker");
        let task = tokio::spawn(stockfleet::ledger::run(worker, role));
        InProcessWorker { shutdown, task }
    }

    /// Remembers retry delays other than this test's, for the cleanup.
    pub fn uses_retry_delays(&self, settings: &Settings) {
        let mut sets = self.retry_delay_sets.lock().unwrap();
        if !sets.contains(&settings.consumer.retry_delays_ms) {
            sets.push(settings.consumer.retry_delays_ms.clone());
        }
    }

    /// Starts a worker binary of this workspace with this test's settings.
    pub fn spawn(&self, binary: &str) -> tokio::process::Child {
        self.command(binary)
            // Worker logs show with `cargo test -- --nocapture`, filtered by TEST_WORKER_LOG.
            .stdout(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary}: {e}; run `cargo build --workspace` first")
            })
    }

    /// The fleet as processes: a locker, a reducer, a poller and a publisher
    /// (each killed when dropped).
    pub fn spawn_fleet(&self) -> Vec<tokio::process::Child> {
        [
            "stockfleet-locker",
            "stockfleet-reducer",
            "stockfleet-poller",
            "stockfleet-publisher",
        ]
        .into_iter()
        .map(|binary| self.spawn(binary))
        .collect()
    }

    /// Runs the `stockfleet` CLI with this test's settings; returns its output.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command("stockfleet")
            .args(args)
            .output()
            .await
            .expect("run the CLI")
    }

    /// A worker or CLI command of this workspace with this test's settings.
    pub fn command(&self, binary: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary_path(binary));
        command
            .env("DATABASE_URL", &self.settings.database_url)
            .env("DATABASE_POOL_SIZE", "4")
            .env("AMQP_URL", &self.settings.amqp_url)
            .env("BUS_PREFIX", &self.prefix)
            .env("HEALTH_ADDR", "127.0.0.1:0")
            .env("CONSUMERS", "2")
            .env("BATCH_SIZE", "50")
            .env(
                "RETRY_DELAYS_MS",
                delays_env(&self.settings.consumer.retry_delays_ms),
            )
            .env(
                "RUST_LOG",
                std::env::var("TEST_WORKER_LOG").unwrap_or_else(|_| "error".into()),
            )
            .env("LOG_FORMAT", "text")
            .env("BACKMARKET_TOKEN", "bm-sim-token")
            .env("REFURBED_TOKEN", "rf-sim-token")
            // The simulator's default credentials (docs/simulator.md).
            .env("WOOCOMMERCE_CREDENTIALS", "ck_sim:cs_sim");
        command
    }

    /// Messages handled, failed or deferred by this test's in-process consumers of `queue`.
    pub fn settled(&self, queue: &str) -> u64 {
        let now = settled_counts(queue).get(queue).copied().unwrap_or(0);
        now - self.settled_before.get(queue).copied().unwrap_or(0)
    }

    /// Waits until the in-process consumers of `queue` have settled `count` messages.
    pub async fn wait_settled(&self, queue: &str, count: u64) {
        eventually(&format!("{count} messages settled on {queue}"), || async {
            self.settled(queue) >= count
        })
        .await;
    }

    pub async fn levels(&self, sku: &str) -> (i32, i32, i32) {
        let row = sqlx::query(
            "SELECT listed_stock, locked_stock, available_stock FROM marketplace_stock s
             JOIN variations v ON v.id = s.variation_id WHERE v.sku = $1",
        )
        .bind(sku)
        .fetch_one(&self.db)
        .await
        .expect("stock row");
        (row.get(0), row.get(1), row.get(2))
    }

    pub async fn lock_state(&self, order: &str, item: &str) -> Option<String> {
        sqlx::query_scalar(
            "SELECT lock_status FROM marketplace_stock_locks
             WHERE order_external_id = $1 AND order_item_external_id = $2",
        )
        .bind(order)
        .bind(item)
        .fetch_optional(&self.db)
        .await
        .expect("lock query")
    }

    /// One number from this test's database (`SELECT count(*) …`).
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn outbox_len(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.db)
            .await
            .expect("outbox count")
    }

    /// A queue bound to the events exchange that collects what matches `pattern`.
    pub async fn observe(&self, pattern: &str) -> Observer {
        self.observe_on(Exchange::Events, pattern).await
    }

    pub async fn observe_on(&self, exchange: Exchange, pattern: &str) -> Observer {
        let name = format!("{}.observe.{}", self.name, uuid::Uuid::now_v7().simple());
        let channel = self.bus.channel().await.expect("channel");
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("observer queue");
        channel
            .queue_bind(
                name.as_str().into(),
                self.bus.topology.exchange(exchange).into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind observer");
        Observer { channel, name }
    }

    /// Takes every message in a queue: (headers, body).
    pub async fn drain(&self, queue: &str) -> Vec<(FieldTable, Vec<u8>)> {
        let mut messages = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            let headers = message
                .delivery
                .properties
                .headers()
                .clone()
                .unwrap_or_default();
            messages.push((headers, message.delivery.data));
        }
        messages
    }

    /// Ready messages in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        passive_declare(&self.channel, queue).await.message_count()
    }

    pub async fn consumers(&self, queue: &str) -> u32 {
        passive_declare(&self.channel, queue).await.consumer_count()
    }

    pub async fn validate(&self) -> stockfleet::admin::validate::Report {
        stockfleet::admin::validate::validate(&self.db, Duration::from_secs(3600))
            .await
            .expect("validate")
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

/// Empties the queues of a leased prefix and checks they are this version's
/// (a pool prefix declared by an older harness is re-created), then declares
/// this test's topology.
async fn prepare(bus: &Bus, amqp_url: &str, codes: &[String]) {
    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let queues = broker::queues(&bus.topology, codes);
    broker::purge(&connection, &queues).await;
    let specs = QueueSpec::all(codes.iter().map(String::as_str));
    if let Err(error) = bus.declare(&specs).await {
        eprintln!(
            "re-creating the queues of {}: {error:#}",
            bus.topology.prefix
        );
        broker::delete(&connection, &queues).await;
        bus.declare(&specs).await.expect("declare topology");
    }
    let _ = connection.close(200, "prepared".into()).await;
}

/// Best effort, each step bounded: a cleanup must never hang a test run.
async fn cleanup(name: String, amqp_url: String, database_url: String, topologies: Vec<Topology>) {
    let step = Duration::from_secs(10);
    // Marketplaces a test added have queues too: deleted, since the next test
    // on this prefix does not have them.
    let codes = async {
        let db = PgPool::connect(&database_url).await.ok()?;
        let codes = stockfleet::marketplace::directory::codes(&db).await.ok()?;
        db.close().await;
        Some(codes)
    };
    let codes = tokio::time::timeout(step, codes)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let added: Vec<String> = codes
        .into_iter()
        .filter(|code| !broker::SEEDED.contains(&code.as_str()))
        .collect();
    let bus = async {
        let connection =
            lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default()).await?;
        let seeded: Vec<String> = broker::SEEDED.map(String::from).to_vec();
        let mut queues: Vec<String> = topologies
            .iter()
            .flat_map(|topology| broker::queues(topology, &seeded))
            .collect();
        queues.sort();
        queues.dedup();
        broker::purge(&connection, &queues).await;
        let added: Vec<String> = QueueSpec::all(added.iter().map(String::as_str))
            .iter()
            .filter(|spec| spec.single_active_consumer) // the publisher queues
            .flat_map(|spec| topologies[0].queue_names(spec))
            .collect();
        broker::delete(&connection, &added).await;
        let _ = tokio::time::timeout(step, connection.close(200, "test over".into())).await;
        Ok::<_, lapin::Error>(())
    };
    if tokio::time::timeout(step * 10, bus).await.is_err() {
        eprintln!("cleanup: broker cleanup of {name} timed out");
    }
    if tokio::time::timeout(step * 3, drop_database(&name))
        .await
        .is_err()
    {
        eprintln!("cleanup: dropping database {name} timed out");
    }
}

/// Drops a test's database on the local PostgreSQL, connections and all.
/// `name` is ours (a prefix and a UUID), never input.
pub async fn drop_database(name: &str) -> sqlx::Result<()> {
    let admin = PgPool::connect(ADMIN_URL).await?;
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}

/// Messages handled, failed or deferred per queue (of names starting with `prefix`)
/// by the in-process consumers of this process.
fn settled_counts(prefix: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    let rendered = stockfleet::telemetry::metrics().render();
    for line in rendered.lines().filter(|line| {
        line.starts_with("stockfleet_messages_handled_total")
            || line.starts_with("stockfleet_messages_failed_total")
            || line.starts_with("stockfleet_messages_deferred_total")
    }) {
        let Some(queue) = line
            .split_once("queue=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(queue, _)| queue)
        else {
            continue;
        };
        if !queue.starts_with(prefix) {
            continue;
        }
        let value = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        *counts.entry(queue.to_owned()).or_insert(0) += value as u64;
    }
    counts
}

fn delays_env(delays: &[u64]) -> String {
    delays
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn marketplace_codes(db: &PgPool) -> Vec<String> {
    stockfleet::marketplace::directory::codes(db)
        .await
        .expect("marketplaces")
}

/// A worker running inside the test process.
pub struct InProcessWorker {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    /// Graceful stop, as on SIGTERM; fails the test if the worker failed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("worker task")
            .expect("worker result");
    }
}

/// Collects messages routed to it.
pub struct Observer {
    channel: Channel,
    name: String,
}

impl Observer {
    pub fn queue(&self) -> &str {
        &self.name
    }

    pub async fn count(&self) -> u32 {
        passive_declare(&self.channel, &self.name)
            .await
            .message_count()
    }

    /// Every envelope received so far.
    pub async fn take(&self) -> Vec<Envelope> {
        let expected = self.count().await;
        let mut consumer = self
            .channel
            .basic_consume(
                self.name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("observer consume");
        let mut envelopes = Vec::new();
        while envelopes.len() < expected as usize {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("observer delivery")
                .expect("observer stream")
                .expect("delivery");
            envelopes.push(Envelope::decode(&delivery.data).expect("envelope"));
        }
        envelopes
    }
}

/// Awaits a condition (polling it), failing the test after 120 s.
/// GETs `url` (with a bearer token when given) and parses its JSON body.
pub async fn get_json(url: &str, token: Option<&str>) -> serde_json::Value {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answered");
    response.json().await.expect("a JSON body")
}

/// The body of a GET of `url` as text (a `/metrics` page).
pub async fn get_text(url: &str) -> String {
    reqwest::get(url)
        .await
        .and_then(|response| response.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A TCP port free on this machine a moment ago, for a process that must be
/// told its address before it starts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `/readyz`'s status and body, or None when the port does not answer.
pub async fn readiness(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Sends SIGTERM to a worker process and asserts it exits 0 within 30 s.
pub async fn terminate(mut child: tokio::process::Child) {
    let pid = child.id().expect("running child").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("graceful shutdown within 30 s")
        .unwrap();
    assert!(exit.success(), "worker exited with {exit} on SIGTERM");
}

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

/// A workspace binary next to the test executable (target/<profile>/).
pub fn binary_path(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// An order event for one item of `quantity` units.
pub fn order_event(
    kind: &str,
    order: &str,
    item: &str,
    sku: &str,
    quantity: i64,
    status: OrderStatus,
) -> Envelope {
    let event = OrderEvent {
        order_id: order.to_owned(),
        status: Some(status),
        previous_status: None,
        raw_status: status.as_str().to_owned(),
        items: vec![OrderEventItem {
            item_id: item.to_owned(),
            sku: sku.to_owned(),
            quantity,
            status: None,
        }],
    };
    Envelope::new(kind, MARKETPLACE, &event)
}

pub fn created(order: &str, sku: &str, quantity: i64) -> Envelope {
    order_event(
        ORDER_CREATED,
        order,
        &format!("{order}-1"),
        sku,
        quantity,
        OrderStatus::Pending,
    )
}

pub fn changed(order: &str, sku: &str, quantity: i64, status: OrderStatus) -> Envelope {
    order_event(
        ORDER_STATUS_CHANGED,
        order,
        &format!("{order}-1"),
        sku,
        quantity,
        status,
    )
}

pub fn header(headers: &FieldTable, key: &str) -> Option<String> {
    headers::get_str(headers, key)
}

/// A queue's counts, as the broker reports them to a passive declare.
async fn passive_declare(channel: &Channel, queue: &str) -> lapin::Queue {
    stockfleet::bus::passive_declare(channel, queue)
        .await
        .expect("passive declare")
}
