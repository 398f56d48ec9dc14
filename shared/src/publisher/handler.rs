//! The publisher's handler: one marketplace's adapter and budgets, and how
//! one of its calls is retried (batch.rs works a batch).

use crate::bus::HandlerError;
use crate::marketplace::directory::MarketplaceRow;
use crate::marketplace::{Budget, Marketplace, MarketplaceConfig, MarketplaceError, RateGate};
use crate::outage::{OutageOptions, Pause};
use crate::retry;
use sqlx::PgPool;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// In-process retries of one marketplace call before the message goes to the
/// retry queues. Short: a longer outage is the retry queues' job, and the
/// rest of the batch waits behind this call.
pub(super) const CALL_RETRY: retry::Policy = retry::Policy {
    initial: Duration::from_millis(200),
    max_interval: Duration::from_secs(2),
    max_elapsed: Duration::from_secs(10),
};

pub struct PublisherHandler {
    pub(super) pool: PgPool,
    pub(super) marketplace: MarketplaceRow,
    pub(super) adapter: Arc<dyn Marketplace>,
    /// The fleet's request budget the adapter's calls take their permits from.
    pub(super) budget: Arc<Budget>,
    /// The marketplace's cap on quantity updates, if it has one.
    pub(super) quantity_budget: Option<RateGate>,
    pub(super) last_poll_request: Mutex<Option<Instant>>,
    /// Marketplace calls one batch has under way at once (orders side by
    /// side, rows side by side); the budget, not this, paces them.
    pub(super) calls_in_flight: usize,
    /// Outage mode: the streak of failed calls and the pause its queues follow.
    pub(super) pause: Arc<Pause>,
    /// One push of a row at a time across the batches under way.
    pub(super) row_locks: super::row_lock::RowLocks,
    /// Held while one row takes its low-priority permits (push.rs).
    pub(super) low_lane: tokio::sync::Mutex<()>,
}

impl PublisherHandler {
    /// A handler whose adapter takes its permits from the fleet's request budget.
    pub fn new(
        pool: PgPool,
        marketplace: MarketplaceRow,
        mut config: MarketplaceConfig,
        calls_in_flight: usize,
        outage: OutageOptions,
    ) -> anyhow::Result<Self> {
        let pause = Arc::new(Pause::new(
            pool.clone(),
            marketplace.id,
            &marketplace.code,
            outage,
        ));
        let budget = Arc::new(Budget::new(
            pool.clone(),
            marketplace.id,
            &marketplace.code,
            "publisher",
        ));
        config.budget = Some(budget.clone());
        let quantity_budget = marketplace.quantity_update_limit.map(|limit| {
            RateGate::budget(
                &marketplace.code,
                limit.max(1) as u32,
                Duration::from_secs(marketplace.quantity_update_window_seconds.max(1) as u64),
            )
        });
        let adapter = crate::marketplace::connect(config)?;
        Ok(Self {
            pool,
            marketplace,
            adapter,
            budget,
            quantity_budget,
            last_poll_request: Mutex::new(None),
            calls_in_flight: calls_in_flight.max(1),
            pause,
            row_locks: Default::default(),
            low_lane: Default::default(),
        })
    }

    /// Runs one marketplace call with in-process retries. Every request
    /// feeds outage mode as it ends, not the call once it gave up: a call
    /// cut short (an increase's read that ran out of patience) has failed
    /// its requests all the same. Counted per call, a chaos run's 60 s
    /// outage was spent on such reads and never paused.
    pub(super) async fn call<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, MarketplaceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MarketplaceError>>,
    {
        let code = self.marketplace.code.as_str();
        let request = || {
            let request = op();
            async move {
                let started = Instant::now();
                let result = request.await;
                self.pause.note(started, &result).await;
                result
            }
        };
        let result = retry::retry(&CALL_RETRY, request, MarketplaceError::is_transient, |error, wait| {
            tracing::info!(marketplace = code, what, %error, ?wait, "marketplace call failed; retrying");
        })
        .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        metrics::counter!("stockfleet_marketplace_calls_total", "marketplace" => code.to_owned(), "call" => what.to_owned(), "outcome" => outcome)
            .increment(1);
        result
    }
}

/// A batch's transient failures once its marketplace is paused: deferred,
/// so they wait out the outage without spending an attempt.
pub(super) fn deferred_while_paused(results: &mut [Result<(), HandlerError>], pause: &Pause) {
    let Some(paused) = pause.current() else {
        return;
    };
    for result in results {
        if let Err(HandlerError::Transient(error)) = result {
            *result = Err(HandlerError::Deferred(format!(
                "paused since {} ({}): {error}",
                paused.since.to_rfc3339(),
                paused.reason
            )));
        }
    }
}

/// A marketplace failure as the consumer loop's retry or dead-letter decision.
pub(super) fn handler_error(error: MarketplaceError) -> HandlerError {
    if error.is_transient() {
        HandlerError::Transient(error.to_string())
    } else {
        HandlerError::Permanent(error.to_string())
    }
}
