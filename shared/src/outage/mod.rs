//! Outage mode: a marketplace that keeps failing is paused instead of
//! burning its messages' attempts into dead letters.
//!
//! - **Detect.** Every publisher request that failed transiently (each try
//!   of a call's in-process retries) feeds the marketplace's
//!   [`FailureStreak`]; when the [`OutageRule`] is met (default: failures
//!   for 30 s, at least 3 requests, no answer between them) the
//!   marketplace is paused by `fleet`.
//! - **Pause.** The pause is written to the marketplace's row, with a
//!   history record ([`store`]), so every publisher process sees it within
//!   its refresh (2 s). While paused, the marketplace's publisher queues are
//!   not consumed ([`crate::bus::pause`]): messages wait in the queue with
//!   no attempt counted, and messages of a batch under way that failed are
//!   deferred (no attempt) rather than retried. `/readyz` stays ready.
//! - **Probe.** Every `probe` interval (10 s) a paused marketplace is asked
//!   for one page of new orders at the budget's low priority. An answer ends
//!   a pause the fleet made; an operator's pause waits for an operator.
//! - **Drain.** Once resumed, the queues are consumed again and the backlog
//!   goes out at the marketplace's budget, decreases first.

pub mod store;

use crate::bus::pause::PauseSignal;
use crate::domain::outage::{FailureStreak, OutageRule};
use crate::marketplace::MarketplaceError;
use sqlx::PgPool;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use store::Paused;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How the publisher detects and ends outages.
#[derive(Debug, Clone, Copy)]
pub struct OutageOptions {
    pub rule: OutageRule,
    /// How often a paused marketplace is probed (`OUTAGE_PROBE_SECONDS`, 10 s).
    pub probe: Duration,
    /// How often the pause is re-read from the database (`PAUSE_REFRESH_SECONDS`, 2 s).
    pub refresh: Duration,
}

impl Default for OutageOptions {
    fn default() -> Self {
        Self {
            rule: OutageRule::default(),
            probe: Duration::from_secs(10),
            refresh: Duration::from_secs(2),
        }
    }
}

/// One marketplace's pause in one process: the streak of failures, the
/// pause as last read, and the signal its consumers follow.
pub struct Pause {
    pool: PgPool,
    marketplace_id: i32,
    code: String,
    options: OutageOptions,
    streak: Mutex<FailureStreak>,
    state: watch::Sender<Option<Paused>>,
    signal: watch::Sender<Option<String>>,
}

impl Pause {
    pub fn new(pool: PgPool, marketplace_id: i32, code: &str, options: OutageOptions) -> Self {
        Self {
            pool,
            marketplace_id,
            code: code.to_owned(),
            options,
            streak: Mutex::new(FailureStreak::default()),
            state: watch::channel(None).0,
            signal: watch::channel(None).0,
        }
    }

    /// What the marketplace's consumers follow.
    pub fn signal(&self) -> PauseSignal {
        PauseSignal::new(self.signal.subscribe())
    }

    /// The pause as this process knows it.
    pub fn current(&self) -> Option<Paused> {
        self.state.borrow().clone()
    }

    /// Notes the outcome of a request started at `started`; pauses the
    /// marketplace once the rule is met.
    pub async fn note<T>(&self, started: Instant, result: &Result<T, MarketplaceError>) {
        let reason = match result {
            Err(error) if error.is_transient() => self.streak.lock().expect("poisoned").failed(
                &self.options.rule,
                (started, Instant::now()),
                &error.to_string(),
            ),
            _ => {
                self.streak.lock().expect("poisoned").answered();
                None
            }
        };
        let Some(reason) = reason else { return };
        if self.current().is_some() {
            return;
        }
        match store::pause(&self.pool, &self.code, &reason, store::FLEET).await {
            Ok(_) => {
                tracing::warn!(marketplace = %self.code, %reason, "marketplace paused: its queues wait until a probe finds it answering")
            }
            Err(error) => {
                tracing::warn!(marketplace = %self.code, %error, %reason, "cannot record the pause; pausing this process's consumers only")
            }
        }
        // This process stops at once; the others within their refresh.
        self.show(Some(Paused {
            since: chrono::Utc::now(),
            reason,
            by: store::FLEET.to_owned(),
        }));
        self.streak.lock().expect("poisoned").answered();
    }

    fn show(&self, paused: Option<Paused>) {
        metrics::gauge!("stockfleet_marketplace_paused", "marketplace" => self.code.clone())
            .set(if paused.is_some() { 1.0 } else { 0.0 });
        let reason = paused.as_ref().map(|p| {
            format!(
                "{} paused since {} by {}: {}",
                self.code,
                p.since.to_rfc3339(),
                p.by,
                p.reason
            )
        });
        self.signal.send_if_modified(|current| {
            let changed = *current != reason;
            *current = reason;
            changed
        });
        self.state.send_replace(paused);
    }

    /// Follows the marketplace's pause until `shutdown`: re-reads it every
    /// `refresh`, and while the fleet's pause holds, runs `probe` every
    /// `probe` interval; an answer resumes the marketplace.
    pub async fn follow<F, Fut>(&self, probe: F, shutdown: CancellationToken)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), MarketplaceError>>,
    {
        self.show(None);
        let mut last_probe: Option<Instant> = None;
        loop {
            match store::current(&self.pool, self.marketplace_id).await {
                Ok(paused) => self.show(paused),
                Err(error) => {
                    tracing::warn!(marketplace = %self.code, %error, "cannot read the marketplace's pause; keeping the one known")
                }
            }
            let probe_due = last_probe.is_none_or(|at| at.elapsed() >= self.options.probe);
            if self.current().is_some_and(|p| p.probe_may_resume()) && probe_due {
                last_probe = Some(Instant::now());
                self.probe(&probe).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.options.refresh) => {}
            }
        }
    }

    async fn probe<F, Fut>(&self, probe: &F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), MarketplaceError>>,
    {
        let answer = probe().await;
        metrics::counter!("stockfleet_outage_probes_total", "marketplace" => self.code.clone(), "outcome" => match &answer { Ok(()) => "ok", Err(error) => error.kind() })
            .increment(1);
        // A 4xx is an answer too: the marketplace is there.
        if let Err(error) = answer.as_ref()
            && error.is_transient()
        {
            tracing::info!(marketplace = %self.code, %error, "probe: still failing; staying paused");
            return;
        }
        match store::resume_fleet_pause(&self.pool, &self.code, "a probe found it answering").await
        {
            Ok(_) => {
                tracing::info!(marketplace = %self.code, "probe answered: marketplace resumed; its backlog drains at its budget");
                self.show(None);
            }
            Err(error) => {
                tracing::warn!(marketplace = %self.code, %error, "cannot record the resume; trying again at the next probe")
            }
        }
    }
}
