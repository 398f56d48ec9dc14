//! The publisher's handler: one marketplace's adapter and budgets, and the
//! order of a batch (commands, then decreases, then increases).

use super::RECONCILIATION;
use super::commit::Effects;
use super::rows::Group;
use crate::bus::{Handler, HandlerError, Incoming};
use crate::events::{STOCK_CHANGED, StockChanged};
use crate::marketplace::directory::MarketplaceRow;
use crate::marketplace::{Budget, Marketplace, MarketplaceConfig, MarketplaceError, RateGate};
use crate::retry;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// In-process retries of one marketplace call before the message goes to the
/// retry queues. Short: a longer outage is the retry queues' job, and the
/// rest of the batch waits behind this call.
const CALL_RETRY: retry::Policy = retry::Policy {
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
}

impl PublisherHandler {
    /// A handler whose adapter takes its permits from the fleet's request budget.
    pub fn new(
        pool: PgPool,
        marketplace: MarketplaceRow,
        mut config: MarketplaceConfig,
    ) -> anyhow::Result<Self> {
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
        })
    }

    /// Runs one marketplace call with in-process retries.
    pub(super) async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, MarketplaceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MarketplaceError>>,
    {
        let code = self.marketplace.code.as_str();
        let result = retry::retry(&CALL_RETRY, op, MarketplaceError::is_transient, |error, wait| {
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

impl Handler for PublisherHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = vec![Ok(()); batch.len()];
        let mut groups: BTreeMap<i64, Group> = BTreeMap::new();
        let mut commands = Vec::new();
        for (index, incoming) in batch.iter().enumerate() {
            let envelope = &incoming.envelope;
            if envelope.marketplace != self.marketplace.code {
                results[index] = Err(HandlerError::Permanent(format!(
                    "a {} message reached the publisher of {}",
                    envelope.marketplace, self.marketplace.code
                )));
                continue;
            }
            if envelope.kind != STOCK_CHANGED {
                commands.push(index);
                continue;
            }
            match envelope.payload::<StockChanged>() {
                Ok(change) => {
                    let reconcile = change.change_type == RECONCILIATION;
                    let group = groups.entry(change.stock_id).or_insert(Group {
                        carrier: index,
                        reconcile,
                        origin: None,
                    });
                    group.note_origin(change.origin, &self.marketplace.code);
                    // A reconciliation carries the outcome, so a retry reads the marketplace again.
                    if reconcile || !group.reconcile {
                        group.carrier = index;
                    }
                    group.reconcile |= reconcile;
                }
                Err(error) => {
                    results[index] = Err(HandlerError::Permanent(format!(
                        "malformed stock.changed payload: {error}"
                    )))
                }
            }
        }

        // After one call gave up transiently, the rest of the batch is not tried.
        let mut outage: Option<HandlerError> = None;
        let mut effects = Effects::default();
        let mut pushed = Vec::new();
        // Commands first: accepting an order must not wait behind stock pushes.
        for index in commands {
            results[index] = match &outage {
                Some(error) => Err(error.clone()),
                None => {
                    let result = self.command(&batch[index].envelope).await;
                    if let Err(error @ HandlerError::Transient(_)) = &result {
                        outage = Some(error.clone());
                    }
                    result
                }
            };
        }
        if !groups.is_empty() {
            let ids: Vec<i64> = groups.keys().copied().collect();
            let rows = match self.load_rows(&ids).await {
                Ok(rows) => rows,
                Err(error) => return vec![Err(error.into()); batch.len()],
            };
            // Decreases first: they are what keeps the marketplace from overselling.
            let mut ordered: Vec<(&i64, &Group)> = groups.iter().collect();
            ordered.sort_by_key(|(stock_id, _)| {
                !rows.get(stock_id).is_some_and(|row| {
                    row.shown_estimate()
                        .is_some_and(|shown| (row.target as i32) < shown)
                })
            });
            for (stock_id, group) in ordered {
                let Some(row) = rows.get(stock_id) else {
                    results[group.carrier] = Err(HandlerError::Permanent(format!(
                        "no stock row {stock_id} on {}",
                        self.marketplace.code
                    )));
                    continue;
                };
                if let Some(error) = &outage {
                    results[group.carrier] = Err(error.clone());
                    continue;
                }
                let reference = batch[group.carrier].envelope.id.to_string();
                let result = self
                    .sync_row(*stock_id, row, group, &reference, &mut effects)
                    .await;
                if let Err(error @ HandlerError::Transient(_)) = &result {
                    outage = Some(error.clone());
                }
                if let (Ok(()), Some(origin)) = (&result, &group.origin) {
                    effects.propagated.push((*stock_id, origin.clone()));
                }
                pushed.push(group.carrier);
                results[group.carrier] = result;
            }
        }
        if let Err(error) = self.commit(effects).await {
            // The calls went out but are not recorded: retry them (pushes are absolute).
            for index in pushed {
                if results[index].is_ok() {
                    results[index] = Err(error.clone());
                }
            }
        }
        results
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
