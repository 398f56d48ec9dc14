//! Lockers and reducers run inside the test process, and what their
//! consumers settled (read from the process's metrics).

use crate::{TestEnv, eventually};
use std::collections::HashMap;
use stockfleet::config::Settings;
use stockfleet::ledger::Role;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl TestEnv {
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
}

/// A worker running inside the test process.
pub struct InProcessWorker {
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: JoinHandle<anyhow::Result<()>>,
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

/// Messages handled, failed or deferred per queue (of names starting with `prefix`)
/// by the in-process consumers of this process.
pub(crate) fn settled_counts(prefix: &str) -> HashMap<String, u64> {
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
