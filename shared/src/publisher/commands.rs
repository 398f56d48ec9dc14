//! Order commands (accept an order line, update an order's status) and
//! settling a refused one against the order's current state.

use super::PublisherHandler;
use super::handler::{CALL_RETRY, handler_error};
use crate::bus::{Envelope, HandlerError};
use crate::domain::OrderStatus;
use crate::domain::order_commands::Outcome;
use crate::events::{ACCEPT_ORDERLINE, AcceptOrderline, UPDATE_ORDER_STATUS, UpdateOrderStatus};
use crate::marketplace::{MarketplaceError, OrderItemRef, OrderStatusUpdate, Tracking};
use crate::order_commands::{OrderCommand, is_refused_transition};
use crate::retry;
use futures::StreamExt;

impl PublisherHandler {
    pub(super) async fn command(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let malformed = |error: serde_json::Error| {
            HandlerError::Permanent(format!("malformed {} payload: {error}", envelope.kind))
        };
        match envelope.kind.as_str() {
            ACCEPT_ORDERLINE => self.accept(&[envelope]).await.remove(0),
            UPDATE_ORDER_STATUS => {
                let command: UpdateOrderStatus = envelope.payload().map_err(malformed)?;
                let update = OrderStatusUpdate {
                    status: command.status,
                    items: command
                        .items
                        .into_iter()
                        .map(|item| OrderItemRef {
                            external_id: item.item_id,
                            sku: item.sku,
                        })
                        .collect(),
                    tracking: command.tracking.map(|t| Tracking {
                        number: t.number,
                        url: t.url,
                        carrier: t.carrier,
                    }),
                };
                let written = self
                    .call(UPDATE_ORDER_STATUS, || {
                        self.adapter.update_order_status(&command.order_id, &update)
                    })
                    .await;
                let command = OrderCommand {
                    kind: UPDATE_ORDER_STATUS,
                    order_id: &command.order_id,
                    items: update
                        .items
                        .iter()
                        .map(|item| item.external_id.as_str())
                        .collect(),
                    requested: command.status,
                };
                let outcome = self.settle(envelope, &command, written).await;
                // An operator's change (PUT .../status) shows how it ended.
                crate::status_changes::settle(&self.pool, envelope.id, &outcome).await?;
                outcome
            }
            other => Err(HandlerError::Permanent(format!(
                "the publisher does not handle {other:?} messages"
            ))),
        }
    }

    /// Accepts order lines in as few calls as the marketplace allows
    /// (Refurbed: 50 a call); each line settled on its own. Lines that failed
    /// transiently are sent again, alone, for as long as one call would be
    /// retried in process.
    pub(super) async fn accept(&self, envelopes: &[&Envelope]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Option<Result<(), HandlerError>>> = vec![None; envelopes.len()];
        let mut accepts = Vec::new();
        for (index, envelope) in envelopes.iter().enumerate() {
            match envelope.payload::<AcceptOrderline>() {
                Ok(accept) => accepts.push((index, accept)),
                Err(error) => {
                    results[index] = Some(Err(HandlerError::Permanent(format!(
                        "malformed {} payload: {error}",
                        envelope.kind
                    ))))
                }
            }
        }
        let written = self.write_accepts(&accepts).await;
        let accepts = &accepts;
        let settled = futures::stream::iter((0..accepts.len()).zip(written))
            .map(|(n, written)| async move {
                let (index, accept) = &accepts[n];
                let command = OrderCommand {
                    kind: ACCEPT_ORDERLINE,
                    order_id: &accept.order_id,
                    items: vec![&accept.item_id],
                    requested: OrderStatus::Accepted,
                };
                (
                    *index,
                    self.settle(envelopes[*index], &command, written).await,
                )
            })
            .buffer_unordered(self.calls_in_flight)
            .collect::<Vec<_>>()
            .await;
        for (index, result) in settled {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|result| result.expect("every accept settled"))
            .collect()
    }

    /// The marketplace's answer to each accept, in order.
    async fn write_accepts(
        &self,
        accepts: &[(usize, AcceptOrderline)],
    ) -> Vec<Result<(), MarketplaceError>> {
        let lines: Vec<(String, OrderItemRef)> = accepts
            .iter()
            .map(|(_, accept)| {
                let item = OrderItemRef {
                    external_id: accept.item_id.clone(),
                    sku: accept.sku.clone(),
                };
                (accept.order_id.clone(), item)
            })
            .collect();
        let code = self.marketplace.code.as_str();
        let mut written = self.adapter.accept_orderlines(&lines).await;
        let mut delays = retry::Delays::new();
        let started = std::time::Instant::now();
        loop {
            let again: Vec<usize> = (0..written.len())
                .filter(|&n| {
                    written[n]
                        .as_ref()
                        .is_err_and(MarketplaceError::is_transient)
                })
                .collect();
            if again.is_empty() || started.elapsed() >= CALL_RETRY.max_elapsed {
                break;
            }
            let wait = delays.next_wait();
            tracing::info!(
                marketplace = code,
                lines = again.len(),
                ?wait,
                "accepts failed transiently; retrying"
            );
            tokio::time::sleep(wait).await;
            let retried: Vec<_> = again.iter().map(|&n| lines[n].clone()).collect();
            for (n, result) in again
                .into_iter()
                .zip(self.adapter.accept_orderlines(&retried).await)
            {
                written[n] = result;
            }
        }
        for result in &written {
            let outcome = result
                .as_ref()
                .map_or_else(MarketplaceError::kind, |()| "ok");
            metrics::counter!("stockfleet_marketplace_calls_total", "marketplace" => code.to_owned(), "call" => ACCEPT_ORDERLINE, "outcome" => outcome)
                .increment(1);
        }
        written
    }

    /// The outcome of an order command's write: a refused transition is read
    /// against the order's current state (one more request, only then) and
    /// is a success when the item already got there or ended another way.
    async fn settle(
        &self,
        envelope: &Envelope,
        command: &OrderCommand<'_>,
        written: Result<(), MarketplaceError>,
    ) -> Result<(), HandlerError> {
        let code = self.marketplace.code.as_str();
        let counted = |outcome: &'static str| {
            metrics::counter!("stockfleet_order_commands_total", "marketplace" => code.to_owned(), "command" => command.kind.to_owned(), "outcome" => outcome)
                .increment(1);
        };
        let refusal = match written {
            Ok(()) => {
                counted("applied");
                return Ok(());
            }
            Err(error) if is_refused_transition(&error) => error,
            Err(error) => return Err(handler_error(error)),
        };
        let order = self
            .call("get_order", || self.adapter.get_order(command.order_id))
            .await
            .map_err(handler_error)?;
        let reading = command.read(&order);
        counted(reading.outcome.as_str());
        let (kind, order_id, requested) = (command.kind, command.order_id, command.requested);
        let found = reading.found.as_str();
        match reading.outcome {
            Outcome::AlreadyDone => {
                tracing::info!(marketplace = code, command = kind, order_id, %requested, found, "order command refused but already carried out; done");
                Ok(())
            }
            Outcome::Moot => {
                tracing::warn!(marketplace = code, command = kind, order_id, %requested, found, "order command refused: the order ended another way; recorded in moot_order_commands");
                command
                    .record_moot(&self.pool, self.marketplace.id, envelope.id, &reading)
                    .await?;
                Ok(())
            }
            Outcome::Refused => Err(HandlerError::Permanent(format!("{refusal} ({found})"))),
        }
    }
}
