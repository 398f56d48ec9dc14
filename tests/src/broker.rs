//! The test harness's side of the shared broker.
//!
//! Bus prefixes come from a bounded pool (`sft_pool_00` … `sft_pool_15`),
//! leased with a file lock that the operating system releases when the test
//! process ends, however it ends. A prefix's queues are declared once and
//! reused by every later test that leases it (purged first), so a test run
//! creates a few dozen quorum queues at most instead of creating and deleting
//! hundreds: quorum-queue churn is what wedges RabbitMQ 3.10.
//!
//! It also reads what only `rabbitmqctl` tells (a queue's arguments, which
//! consumer of a single-active-consumer queue is active): the management
//! plugin is off on a fresh broker.

use lapin::options::{QueueDeleteOptions, QueuePurgeOptions};
use std::fs::{File, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stockfleet::bus::{Bus, QueueSpec, Topology};
use stockfleet::config::Settings;

const POOL: usize = 16;
/// The marketplaces a test database is seeded with.
pub const SEEDED: [&str; 3] = ["backmarket", "refurbed", "woocommerce"];

/// A prefix this process holds until the lease is dropped.
pub struct Lease {
    pub prefix: String,
    _lock: File,
}

/// Leases a free prefix of the pool and connects to it, waiting while all
/// are taken (other test processes on this machine).
pub async fn lease(settings: &Settings) -> (Lease, Bus) {
    let dir = std::env::temp_dir().join("stockfleet-test-prefixes");
    std::fs::create_dir_all(&dir).expect("prefix lock directory");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        for slot in 0..POOL {
            let prefix = format!("sft_pool_{slot:02}");
            let Some(lock) = try_lock(dir.join(format!("{prefix}.lock"))) else {
                continue;
            };
            let topology = Topology::new(&prefix, settings.consumer.retry_delays());
            let bus = Bus::connect(&settings.amqp_url, topology, settings.amqp_timeout())
                .await
                .expect("broker");
            // A worker left running by a test process that was killed still
            // consumes there: not a prefix to share.
            if consumed(&bus).await {
                bus.close().await;
                continue;
            }
            return (
                Lease {
                    prefix,
                    _lock: lock,
                },
                bus,
            );
        }
        assert!(
            Instant::now() < deadline,
            "every test bus prefix stayed leased for 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn try_lock(path: PathBuf) -> Option<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(TryLockError::WouldBlock) => None,
        Err(TryLockError::Error(e)) => panic!("locking {}: {e}", path.display()),
    }
}

async fn consumed(bus: &Bus) -> bool {
    for spec in QueueSpec::all(SEEDED) {
        let channel = bus.channel().await.expect("channel");
        let queue = bus.topology.queue(&spec);
        if let Ok(declared) = stockfleet::bus::passive_declare(&channel, &queue).await {
            channel.close(200, "checked".into()).await.ok();
            if declared.consumer_count() > 0 {
                return true;
            }
        }
    }
    false
}

/// Every queue a test on `topology` may have filled, for these marketplaces.
pub fn queues(topology: &Topology, marketplaces: &[String]) -> Vec<String> {
    let mut queues: Vec<String> = QueueSpec::all(marketplaces.iter().map(String::as_str))
        .iter()
        .flat_map(|spec| topology.queue_names(spec))
        .collect();
    queues.extend(topology.delay_queues());
    queues.push(topology.unroutable());
    queues
}

/// Empties `queues` (those that exist), each bounded in time.
pub async fn purge(connection: &lapin::Connection, queues: &[String]) {
    for queue in queues {
        with_channel(connection, |channel| async move {
            channel
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await
                .map(drop)
        })
        .await;
    }
}

/// Deletes `queues` (those that exist), each bounded in time.
pub async fn delete(connection: &lapin::Connection, queues: &[String]) {
    for queue in queues {
        with_channel(connection, |channel| async move {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map(drop)
        })
        .await;
    }
}

/// Runs `call` on a channel of its own (a failed call closes its channel),
/// then closes it: closed, not dropped, since a drop closes in the background
/// and races the connection's close (lapin logs a spurious error).
async fn with_channel<F, Fut>(connection: &lapin::Connection, call: F)
where
    F: FnOnce(lapin::Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    let step = Duration::from_secs(10);
    let Ok(Ok(channel)) = tokio::time::timeout(step, connection.create_channel()).await else {
        return;
    };
    let _ = tokio::time::timeout(step, call(channel.clone())).await;
    let _ = tokio::time::timeout(step, channel.close(200, "done".into())).await;
}

/// `rabbitmqctl -q <args>`: its table rows, tab-separated, header left out.
pub async fn rabbitmqctl(args: &[&str]) -> Vec<Vec<String>> {
    let output = tokio::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .arg("--no-table-headers")
        .output()
        .await
        .expect("rabbitmqctl runs (it comes with the broker)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Queues whose names start with `prefix.`: (name, type, arguments as
/// rabbitmqctl prints them).
pub async fn queues_of(prefix: &str) -> Vec<(String, String, String)> {
    rabbitmqctl(&["list_queues", "name", "type", "arguments"])
        .await
        .into_iter()
        .filter(|row| row[0].starts_with(&format!("{prefix}.")))
        .map(|row| (row[0].clone(), row[1].clone(), row[2..].join("\t")))
        .collect()
}

/// Whether each consumer of `queue` is the active one (`list_consumers`).
pub async fn consumers_active(queue: &str) -> Vec<bool> {
    rabbitmqctl(&["list_consumers", "queue_name", "active"])
        .await
        .into_iter()
        .filter(|row| row[0] == queue)
        .map(|row| row[1] == "true")
        .collect()
}

/// The process id of the one active consumer of `queue`, from the name its
/// connection gives the broker (`<program> pid <n>`); waits (30 s at most)
/// while the broker's tables do not tell yet.
pub async fn active_consumer_pid(queue: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let consumers =
            rabbitmqctl(&["list_consumers", "queue_name", "channel_pid", "active"]).await;
        let channels = rabbitmqctl(&["list_channels", "pid", "connection"]).await;
        let connections = rabbitmqctl(&["list_connections", "pid", "client_properties"]).await;
        let pid = || {
            let active = consumers
                .iter()
                .find(|row| row[0] == queue && row.get(2).is_some_and(|a| a == "true"))?;
            let channel = channels.iter().find(|row| row[0] == active[1])?;
            let connection = connections
                .iter()
                .find(|row| Some(&row[0]) == channel.get(1))?;
            let (_, after) = connection.get(1)?.split_once(" pid ")?;
            after
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        if let Some(pid) = pid() {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no active consumer process found for {queue}: {consumers:?} {channels:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes every queue and exchange of a prefix that is not from the pool.
async fn remove_prefix(amqp_url: &str, prefix: &str) {
    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let queues: Vec<String> = queues_of(prefix).await.into_iter().map(|q| q.0).collect();
    delete(&connection, &queues).await;
    for exchange in ["events", "commands", "delay", "retry", "unroutable"] {
        let name = format!("{prefix}.{exchange}");
        with_channel(&connection, |channel| async move {
            channel
                .exchange_delete(name.as_str().into(), Default::default())
                .await
        })
        .await;
    }
    let _ = connection.close(200, "removed".into()).await;
}

/// A prefix outside the pool, for a test that needs a topology of its own:
/// its queues and exchanges are removed when it is dropped, even on panic.
pub struct OwnPrefix {
    pub prefix: String,
    amqp_url: String,
}

impl OwnPrefix {
    pub fn new(what: &str, amqp_url: &str) -> Self {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        Self {
            prefix: format!("sft_{what}_{}", &unique[20..]),
            amqp_url: amqp_url.to_owned(),
        }
    }
}

impl Drop for OwnPrefix {
    fn drop(&mut self) {
        let (url, prefix) = (self.amqp_url.clone(), self.prefix.clone());
        // Its own runtime: Drop cannot await (the same as TestEnv's cleanup).
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("cleanup runtime");
            runtime.block_on(remove_prefix(&url, &prefix));
        });
        let _ = removed.join();
    }
}
