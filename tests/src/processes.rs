//! The workspace's binaries as processes of a test: workers, the fleet and
//! the CLI, started with the test's settings, and stopped as on SIGTERM.

use crate::TestEnv;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

impl TestEnv {
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
}

fn delays_env(delays: &[u64]) -> String {
    delays
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
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

/// A workspace binary next to the test executable (target/<profile>/).
pub fn binary_path(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}
