//! `sync.<mp>.<type>` commands from the bus.

use super::kinds::SyncKind;
use super::outcome::{RunOptions, RunOutcome, Trigger};
use super::schedule::log_outcome;
use super::syncer::Syncer;
use crate::bus::{Handler, HandlerError, Incoming, named_marketplace};
use crate::events::SyncRequest;
use crate::marketplace::directory;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `sync.<mp>.<type>` commands: run the sync unless a run since the request covered it.
pub struct SyncCommandHandler {
    pub(super) syncer: Arc<Syncer>,
    pub(super) marketplaces: directory::MarketplaceDirectory,
    pub(super) shutdown: CancellationToken,
}

impl SyncCommandHandler {
    async fn handle_one(&self, incoming: &Incoming) -> Result<(), HandlerError> {
        let envelope = &incoming.envelope;
        let request: SyncRequest = envelope
            .payload()
            .map_err(|e| HandlerError::Permanent(format!("malformed sync request: {e}")))?;
        if let Some(days) = request.days_back {
            crate::domain::input::days_back("days_back", days)
                .map_err(|invalid| HandlerError::Permanent(invalid.to_string()))?;
        }
        let kind = SyncKind::parse(&request.sync_type).ok_or_else(|| {
            HandlerError::Permanent(format!("unknown sync type {:?}", request.sync_type))
        })?;
        let sync_type = match kind {
            SyncKind::Orders(sync_type) => sync_type,
            SyncKind::Stock => {
                return crate::reconcile::run(
                    &self.syncer.pool,
                    &envelope.marketplace,
                    request.force,
                    Trigger::Fleet,
                )
                .await
                .map(drop)
                .map_err(|e| HandlerError::Transient(e.to_string()));
            }
        };
        let marketplace = named_marketplace(&self.marketplaces, &envelope.marketplace).await?;
        let mut options = RunOptions::new(Trigger::Fleet, self.shutdown.clone());
        options.days_back = request.days_back;
        if !request.force {
            options.satisfied_after = Some(envelope.occurred_at);
        }
        let outcome = self
            .syncer
            .run(&marketplace, sync_type, &options, &|_| {})
            .await
            .map_err(|e| HandlerError::Transient(format!("{e:#}")))?;
        log_outcome(&marketplace.code, sync_type, &Ok(outcome.clone()));
        match outcome {
            // A partial run stored what it could; the schedule catches up.
            RunOutcome::Succeeded(_) | RunOutcome::Partial(_) | RunOutcome::Satisfied => Ok(()),
            // Back shortly, without counting an attempt (no dead letter however
            // busy the schedule keeps it): the run under way may have started
            // before the request; if one started after it, it is satisfied then.
            RunOutcome::Busy => Err(HandlerError::Deferred(format!(
                "a {sync_type} sync of {} is under way",
                marketplace.code
            ))),
            RunOutcome::Failed(summary) => Err(HandlerError::Transient(
                summary.error.unwrap_or_else(|| "the sync failed".into()),
            )),
        }
    }
}

impl Handler for SyncCommandHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        futures::future::join_all(batch.iter().map(|incoming| self.handle_one(incoming))).await
    }
}
