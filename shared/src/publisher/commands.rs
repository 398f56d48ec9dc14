//! Order commands (accept an order line, update an order's status) and
//! settling a refused one against the order's current state.

use super::PublisherHandler;
use super::handler::handler_error;
use crate::bus::{Envelope, HandlerError};
use crate::domain::OrderStatus;
use crate::domain::order_commands::Outcome;
use crate::events::{ACCEPT_ORDERLINE, AcceptOrderline, UPDATE_ORDER_STATUS, UpdateOrderStatus};
use crate::marketplace::{MarketplaceError, OrderItemRef, OrderStatusUpdate, Tracking};
use crate::order_commands::{OrderCommand, is_refused_transition};

impl PublisherHandler {
    pub(super) async fn command(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let malformed = |error: serde_json::Error| {
            HandlerError::Permanent(format!("malformed {} payload: {error}", envelope.kind))
        };
        match envelope.kind.as_str() {
            ACCEPT_ORDERLINE => {
                let accept: AcceptOrderline = envelope.payload().map_err(malformed)?;
                let item = OrderItemRef {
                    external_id: accept.item_id.clone(),
                    sku: accept.sku,
                };
                let written = self
                    .call(ACCEPT_ORDERLINE, || {
                        self.adapter.accept_orderline(&accept.order_id, &item)
                    })
                    .await;
                let command = OrderCommand {
                    kind: ACCEPT_ORDERLINE,
                    order_id: &accept.order_id,
                    items: vec![&accept.item_id],
                    requested: OrderStatus::Accepted,
                };
                self.settle(envelope, &command, written).await
            }
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
