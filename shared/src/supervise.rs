//! Supervision of a process's background tasks (outbox relay, consumers,
//! schedulers, servers). Each task reports its state under a name, which
//! `/readyz` lists. A task that can reconnect (broker, database) reports
//! itself down while it does; a task that ends while the process is meant to
//! go on is a failure: it is logged, the process's shutdown is started, and
//! the failure becomes the process's error (a non-zero exit, so a container
//! runtime restarts it). Nothing dies while the process lives on.

use futures::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a task last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Starting,
    Ready,
    /// Not doing its work: why (a lost connection being re-established).
    Down(String),
}

/// The named tasks of one process; cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    states: Arc<Mutex<BTreeMap<String, TaskState>>>,
    failure: Arc<Mutex<Option<String>>>,
    /// Cancelled when a supervised task fails: the process's shutdown.
    shutdown: CancellationToken,
}

impl Tasks {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            ..Self::default()
        }
    }

    pub fn set(&self, name: &str, state: TaskState) {
        self.lock().insert(name.to_owned(), state);
    }

    pub fn ready(&self, name: &str) {
        self.set(name, TaskState::Ready);
    }

    pub fn down(&self, name: &str, reason: impl std::fmt::Display) {
        self.set(name, TaskState::Down(reason.to_string()));
    }

    /// A task that ended on purpose (a consumer no longer wanted).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Every task by name with its state, and whether all are ready.
    pub fn report(&self) -> (bool, Vec<(String, TaskState)>) {
        let states: Vec<_> = self
            .lock()
            .iter()
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect();
        let ready = states.iter().all(|(_, state)| *state == TaskState::Ready);
        (ready, states)
    }

    /// The first failure of a supervised task, as the process's error.
    pub fn failure(&self) -> anyhow::Result<()> {
        match self.failure.lock().expect("failure slot").clone() {
            Some(failure) => Err(anyhow::anyhow!(failure)),
            None => Ok(()),
        }
    }

    /// Runs `task` as `name`. Ending before the process's shutdown (with an
    /// error, a panic or even Ok) is a failure: logged, recorded, and the
    /// shutdown is started. Returns the task's own result.
    pub fn spawn<F>(&self, name: &str, task: F) -> JoinHandle<anyhow::Result<()>>
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (tasks, name) = (self.clone(), name.to_owned());
        tokio::spawn(async move {
            let outcome = AssertUnwindSafe(task).catch_unwind().await;
            let result = outcome.unwrap_or_else(|panic| {
                Err(anyhow::anyhow!("panicked: {}", panic_reason(&*panic)))
            });
            match &result {
                Ok(()) if tasks.shutdown.is_cancelled() => tasks.remove(&name),
                Ok(()) => tasks.fail(&name, "ended while the process was meant to go on"),
                Err(error) => tasks.fail(&name, &format!("{error:#}")),
            }
            result
        })
    }

    fn fail(&self, name: &str, reason: &str) {
        tracing::error!(
            task = name,
            error = reason,
            "background task failed; stopping the process (it exits non-zero so that it is restarted)"
        );
        metrics::counter!("stockfleet_task_failures_total", "task" => name.to_owned()).increment(1);
        self.down(name, format!("failed: {reason}"));
        self.failure
            .lock()
            .expect("failure slot")
            .get_or_insert_with(|| format!("{name} failed: {reason}"));
        self.shutdown.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TaskState>> {
        self.states.lock().expect("task states")
    }
}

/// The message a panic was raised with (`panic!("…")`), or "" for another payload.
pub fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_ending_early_fails_the_process_and_shows_in_the_report() {
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(shutdown.clone());
        tasks.ready("relay");
        let ended = tasks.spawn("relay", async { anyhow::bail!("connection reset") });
        assert!(ended.await.unwrap().is_err());
        assert!(shutdown.is_cancelled());
        let (ready, states) = tasks.report();
        assert!(!ready);
        assert!(
            matches!(&states[0].1, TaskState::Down(reason) if reason.contains("connection reset"))
        );
        assert!(
            tasks
                .failure()
                .unwrap_err()
                .to_string()
                .contains("relay failed")
        );
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_and_an_end_after_shutdown_is_not() {
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(shutdown.clone());
        let panicked = tasks.spawn("scheduler", async { panic!("boom") });
        assert!(panicked.await.unwrap().is_err());
        assert!(tasks.failure().is_err());

        let calm = Tasks::new(CancellationToken::new());
        calm.shutdown.cancel();
        calm.ready("server");
        calm.spawn("server", async { Ok(()) })
            .await
            .unwrap()
            .unwrap();
        assert!(calm.failure().is_ok());
        assert!(calm.report().1.is_empty());
    }
}
