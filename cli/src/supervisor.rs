//! How `stockfleet up` runs its processes, the way a container runtime
//! would: a worker that exits unexpectedly is restarted with backoff (and the
//! restart said), the fleet counts as running only once every worker's
//! `/readyz` answers 200, and a stop goes in dependency order (what feeds
//! work first, what serves it last) within a bound.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The first wait before a restart; doubles per quick exit, up to [`MAX_RESTART_WAIT`].
const FIRST_RESTART_WAIT: Duration = Duration::from_millis(500);
const MAX_RESTART_WAIT: Duration = Duration::from_secs(30);
/// A process that ran this long before exiting starts again from the first wait.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Each later stop stage keeps this much of the stop bound for itself.
const STAGE_RESERVE: Duration = Duration::from_millis(300);

/// One process of the fleet and how to (re)start it.
pub struct Spec {
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Its `/readyz`, when it has one.
    pub readyz: Option<String>,
    /// Restarted when it exits; otherwise its exit stops the fleet.
    pub restart: bool,
    /// Stopped in ascending stages; processes of one stage stop together.
    pub stop_stage: u8,
}

struct Process {
    spec: Spec,
    child: Child,
    started: Instant,
    next_wait: Duration,
}

#[derive(Default)]
pub struct Fleet {
    processes: Vec<Process>,
}

impl Fleet {
    pub fn start(&mut self, spec: Spec) -> anyhow::Result<()> {
        let child = spawn(&spec)?;
        self.processes.push(Process {
            spec,
            child,
            started: Instant::now(),
            next_wait: FIRST_RESTART_WAIT,
        });
        Ok(())
    }

    /// Waits until every process with a `/readyz` answers 200. Fails naming
    /// the first process that exits first or is not ready within `bound`
    /// (with what its `/readyz` last said). Ok(false) when `stopping` came first.
    pub async fn wait_ready(
        &mut self,
        bound: Duration,
        stopping: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + bound;
        for process in &mut self.processes {
            let Some(readyz) = process.spec.readyz.clone() else {
                continue;
            };
            let mut last: String;
            loop {
                if stopping.is_cancelled() {
                    return Ok(false);
                }
                if let Some(status) = process.child.try_wait()? {
                    anyhow::bail!(
                        "{} exited ({status}) before it was ready; its error is above",
                        process.spec.name
                    );
                }
                match http.get(&readyz).send().await {
                    Ok(response) if response.status().is_success() => break,
                    Ok(response) => last = response.text().await.unwrap_or_default(),
                    Err(error) => last = error.to_string(),
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "{} was not ready within {} s ({readyz}): {last}",
                        process.spec.name,
                        bound.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(true)
    }

    /// Restarts whatever exits until `stopping`; fails when a process that is
    /// not restarted exits.
    pub async fn supervise(&mut self, stopping: &CancellationToken) -> anyhow::Result<()> {
        loop {
            let (index, status) = tokio::select! {
                _ = stopping.cancelled() => return Ok(()),
                exited = first_exit(&mut self.processes) => exited,
            };
            let process = &mut self.processes[index];
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            if !process.spec.restart {
                anyhow::bail!(
                    "{} exited ({status}); stopping the fleet",
                    process.spec.name
                );
            }
            if process.started.elapsed() >= STABLE_AFTER {
                process.next_wait = FIRST_RESTART_WAIT;
            }
            let wait = process.next_wait;
            process.next_wait = (wait * 2).min(MAX_RESTART_WAIT);
            eprintln!(
                "{} exited unexpectedly ({status}); restarting it in {} ms",
                process.spec.name,
                wait.as_millis()
            );
            tokio::select! {
                _ = stopping.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            process.child = spawn(&process.spec)?;
            process.started = Instant::now();
            eprintln!(
                "{} restarted (pid {})",
                process.spec.name,
                process.child.id().unwrap_or_default()
            );
        }
    }

    /// Stops every process, stage by stage (SIGTERM, then SIGKILL for what
    /// has not exited by its stage's share of `bound`); true when all exited 0.
    pub async fn stop(&mut self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut stages: Vec<u8> = self.processes.iter().map(|p| p.spec.stop_stage).collect();
        stages.sort_unstable();
        stages.dedup();
        let mut clean = true;
        for (n, stage) in stages.iter().enumerate() {
            let later = u32::try_from(stages.len() - n - 1).unwrap_or(0);
            let stage_deadline = deadline
                .checked_sub(STAGE_RESERVE * later)
                .unwrap_or(deadline);
            let members: Vec<&mut Process> = self
                .processes
                .iter_mut()
                .filter(|p| p.spec.stop_stage == *stage)
                .collect();
            let names: Vec<&str> = members.iter().map(|p| p.spec.name.as_str()).collect();
            println!("stopping {}", names.join(", "));
            for process in &members {
                terminate(&process.child);
            }
            for process in members {
                clean &= stop_one(process, stage_deadline).await;
            }
        }
        clean
    }
}

fn spawn(spec: &Spec) -> anyhow::Result<Child> {
    Command::new(&spec.binary)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {}; build every binary first (`cargo build --workspace --bins`)",
                spec.binary.display()
            )
        })
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// Waits for `process` until `deadline`, then kills it; true when it exited 0.
async fn stop_one(process: &mut Process, deadline: Instant) -> bool {
    let name = process.spec.name.clone();
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, process.child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            println!("{name} stopped");
            true
        }
        Ok(Ok(status)) => {
            eprintln!("{name} stopped with {status}");
            false
        }
        _ => {
            eprintln!("{name} did not stop in time; killing it");
            let _ = process.child.kill().await;
            false
        }
    }
}

/// The first process to exit, by index, with its status.
async fn first_exit(processes: &mut [Process]) -> (usize, std::io::Result<ExitStatus>) {
    let waits = processes
        .iter_mut()
        .map(|process| Box::pin(process.child.wait()));
    let (status, index, _) = futures::future::select_all(waits).await;
    (index, status)
}
