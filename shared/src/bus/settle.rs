//! Settling one batch: decode, handle (a panic or a failed shared
//! transaction isolated to its messages, [`super::isolate`]), then send each
//! failure on (retry or dead letter, with its reason and attempt count) and
//! only then acknowledge the batch, so a crash at any point redelivers
//! rather than loses.

use super::handler::{Handler, HandlerError, Incoming};
use super::headers::{self, ATTEMPTS, DEFERRALS, TRACEPARENT};
use super::topology::{RETRY_DELAY, delay_label};
use super::{Bus, Envelope, Outgoing, Publisher, QueueSpec, Route};
use crate::config::ConsumerSettings;
use futures::FutureExt;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::types::FieldTable;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one consumer needs to settle its batches.
pub(super) struct Settler<H> {
    pub(super) bus: Arc<Bus>,
    pub(super) spec: QueueSpec,
    pub(super) settings: ConsumerSettings,
    pub(super) handler: Arc<H>,
}

impl<H: Handler> Settler<H> {
    pub(super) async fn settle(
        &self,
        publisher: &Publisher,
        queue: &str,
        batch: Vec<Delivery>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut clock = crate::telemetry::StageClock::start();
        let mut outcomes: Vec<Option<Result<(), HandlerError>>> = vec![None; batch.len()];
        let mut decoded = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(batch.len());
        // One span per message, open until the batch is settled; what a
        // message causes carries its span as `traceparent` (or, without the
        // OpenTelemetry layer, the sender's).
        let traced: Vec<(tracing::Span, Option<String>)> = batch
            .iter()
            .map(|delivery| {
                let properties = &delivery.properties;
                let sender = properties
                    .headers()
                    .as_ref()
                    .and_then(|h| headers::get_str(h, TRACEPARENT));
                let span = crate::telemetry::message_span(
                    queue,
                    properties
                        .message_id()
                        .as_ref()
                        .map_or("", |id| id.as_str()),
                    sender.as_deref(),
                );
                let traceparent = crate::telemetry::traceparent_of(&span).or(sender);
                (span, traceparent)
            })
            .collect();
        for (position, delivery) in batch.iter().enumerate() {
            // Retried and replayed copies come by queue name; their first route is kept.
            let route = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| headers::get_str(h, headers::ORIGINAL_ROUTING_KEY))
                .unwrap_or_else(|| delivery.routing_key.to_string());
            match Envelope::decode_routed(&delivery.data, &route) {
                Ok(envelope) => {
                    let traceparent = traced[position].1.clone();
                    decoded.push(Incoming {
                        envelope,
                        traceparent,
                    });
                    positions.push(position);
                }
                Err(error) => {
                    outcomes[position] = Some(Err(HandlerError::Permanent(error.to_string())))
                }
            }
        }
        clock.lap("settle.decode");
        if !decoded.is_empty() {
            let results = super::isolate::isolate(&decoded, |part: Vec<Incoming>| async move {
                self.handle_guarded(&part).await
            })
            .await;
            for (position, result) in positions.into_iter().zip(results) {
                outcomes[position] = Some(result);
            }
        }

        clock.lap("settle.handle");
        let mut failures = Vec::new();
        for ((delivery, outcome), (span, _)) in batch.iter().zip(outcomes).zip(&traced) {
            let _entered = span.enter();
            let outcome = outcome.unwrap_or_else(|| {
                Err(HandlerError::Permanent("handler returned no result".into()))
            });
            match outcome {
                Ok(()) => metrics::counter!("stockfleet_messages_handled_total", "queue" => queue.to_owned()).increment(1),
                // Waiting on purpose is not failing: counted apart, so failure alerts stay quiet.
                Err(error @ HandlerError::Deferred(_)) => {
                    metrics::counter!("stockfleet_messages_deferred_total", "queue" => queue.to_owned()).increment(1);
                    failures.push(self.failed(delivery, &error));
                }
                Err(error) => {
                    metrics::counter!("stockfleet_messages_failed_total", "queue" => queue.to_owned(), "kind" => error.kind()).increment(1);
                    failures.push(self.failed(delivery, &error));
                }
            }
        }
        publisher.publish_all(failures).await?;
        clock.lap("settle.failures");
        if self.settings.batches_in_flight > 1 {
            // Batches overlap: acknowledging "up to this one" would settle
            // an earlier batch still under way.
            for delivery in &batch {
                publisher
                    .channel()
                    .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await?;
            }
        } else {
            let last = batch.last().expect("batches are never empty");
            publisher
                .channel()
                .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
                .await?;
        }
        clock.lap("settle.ack");
        metrics::histogram!("stockfleet_handler_seconds", "queue" => queue.to_owned())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Runs the handler; a panic is isolated to the message that caused it.
    async fn handle_guarded(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        let run = AssertUnwindSafe(self.handler.handle(batch)).catch_unwind();
        match run.await {
            Ok(results) => results,
            Err(_) if batch.len() > 1 => {
                let mut results = Vec::with_capacity(batch.len());
                for message in batch {
                    results
                        .extend(Box::pin(self.handle_guarded(std::slice::from_ref(message))).await);
                }
                results
            }
            Err(panic) => {
                let reason = crate::supervise::panic_reason(&*panic);
                vec![Err(HandlerError::Permanent(format!(
                    "handler panicked: {reason}"
                )))]
            }
        }
    }

    /// Where a failed delivery goes next, with its failure recorded.
    fn failed(&self, delivery: &Delivery, error: &HandlerError) -> Outgoing {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let topology = &self.bus.topology;
        if let HandlerError::Deferred(reason) = error {
            let deferrals = headers::get_u32(&headers, DEFERRALS).unwrap_or(0) + 1;
            headers::set_u32(&mut headers, DEFERRALS, deferrals);
            tracing::debug!(%reason, deferrals, "message deferred");
            return self.retry(delivery, headers, topology.retry_delay(1));
        }
        let attempts = headers::get_u32(&headers, ATTEMPTS).unwrap_or(0) + 1;
        headers::record_failure(
            &mut headers,
            &error.to_string(),
            error.kind(),
            attempts,
            delivery.exchange.as_str(),
            delivery.routing_key.as_str(),
        );
        let ladder = headers::attempts_since_replay(&headers, attempts);
        let give_up =
            matches!(error, HandlerError::Permanent(_)) || ladder >= self.settings.max_attempts;
        if give_up {
            tracing::warn!(%error, kind = error.kind(), attempts, "dead-lettering message");
            let dead_letters = Route {
                exchange: String::new(),
                routing_key: topology.dead_letter_queue(&self.spec),
            };
            Outgoing::copy_of(delivery, headers, &dead_letters)
        } else {
            let delay = topology.retry_delay(ladder);
            tracing::info!(%error, attempts, ?delay, "message will be retried");
            self.retry(delivery, headers, delay)
        }
    }

    /// A copy of `delivery` that waits `delay` in its delay queue, then comes back.
    fn retry(&self, delivery: &Delivery, mut headers: FieldTable, delay: Duration) -> Outgoing {
        headers::set_str(&mut headers, RETRY_DELAY, &delay_label(delay));
        Outgoing::copy_of(
            delivery,
            headers,
            &self.bus.topology.retry_route(&self.spec),
        )
    }
}
