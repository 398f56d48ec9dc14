//! The consumer loop every worker runs.
//!
//! Deliveries are taken in batches (whatever is ready, up to `batch_size`) so
//! a handler can commit many messages in one transaction. After the handler
//! returns, each message is settled: handled; a transient failure goes to a
//! shared delay queue (and then back) with its attempt count (a batch whose
//! shared transaction failed is first handled again in smaller parts, so only
//! the messages that fail alone fail: [`super::isolate`]); a permanent failure, or a
//! transient one past `max_attempts`, goes to the dead-letter queue with the
//! reason in its headers. Only then is the batch acknowledged, so a crash at
//! any point redelivers rather than loses.

use super::headers::{self, ATTEMPTS, DEFERRALS, TRACEPARENT};
use super::pause::PauseSignal;
use super::topology::{RETRY_DELAY, delay_label};
use super::{Bus, Envelope, Outgoing, Publisher, QueueSpec, Route};
use crate::config::ConsumerSettings;
use crate::supervise::{TaskState, Tasks};
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A decoded message handed to a handler.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub envelope: Envelope,
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying later: a dependency is down or busy.
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time: bad input, unknown SKU, a 4xx.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: the message must wait for something that is on its way
    /// (the publisher holding a stock increase until a fresh orders poll). It
    /// goes through the shortest retry queue without counting an attempt, so
    /// it never reaches the dead-letter queue however late that thing is.
    #[error("{0}")]
    Deferred(String),
    /// The transaction this message shared with others failed for a reason
    /// that may be any one message's content (a value the database refused).
    /// The consumer handles the batch again in smaller parts (see
    /// [`isolate`](super::isolate)); a message that fails alone gets the
    /// reason as its permanent error. Never settled as such.
    #[error("{0}")]
    Batch(String),
}

impl HandlerError {
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::Transient(_) => "transient",
            HandlerError::Permanent(_) => "permanent",
            HandlerError::Deferred(_) => "deferred",
            HandlerError::Batch(_) => "batch",
        }
    }

    /// The error of a transaction shared by a batch: a lost connection or a
    /// busy database is every message's transient error (retry them all);
    /// anything else may be one message's content, so the batch is split.
    pub fn of_batch(error: sqlx::Error) -> Self {
        if crate::db::is_transient(&error) {
            HandlerError::Transient(format!("database: {error}"))
        } else {
            HandlerError::Batch(format!("database: {error}"))
        }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_transient(&error) {
            HandlerError::Transient(format!("database: {error}"))
        } else {
            HandlerError::Permanent(format!("database: {error}"))
        }
    }
}

/// Handles a batch of messages; returns one result per message, in order.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Vec<Result<(), HandlerError>>> + Send;
}

/// Consumes `spec`'s queue with `settings.consumers` channels until `shutdown`
/// is cancelled; in-flight batches finish and are acknowledged first. Each
/// channel reports itself in `tasks` (`consumer <queue> #<n>`); a channel
/// lost with the broker is opened again with backoff and the queue consumed
/// again, while the channel reports itself down. Only a panic of a loop stops
/// the process.
///
/// Every channel is registered (starting) when this is called, before the
/// returned future first runs: a process's readiness never reads "ready"
/// while a consumer it means to run has not reported yet.
pub fn run<H: Handler>(
    bus: Arc<Bus>,
    spec: QueueSpec,
    settings: ConsumerSettings,
    handler: Arc<H>,
    tasks: Tasks,
    shutdown: CancellationToken,
) -> impl Future<Output = anyhow::Result<()>> + Send {
    run_pausable(
        bus,
        spec,
        settings,
        handler,
        (tasks, shutdown),
        PauseSignal::default(),
    )
}

/// [`run`], not consuming while `pause` holds a reason (see [`super::pause`]).
pub fn run_pausable<H: Handler>(
    bus: Arc<Bus>,
    spec: QueueSpec,
    settings: ConsumerSettings,
    handler: Arc<H>,
    (tasks, shutdown): (Tasks, CancellationToken),
    pause: PauseSignal,
) -> impl Future<Output = anyhow::Result<()>> + Send {
    let queue = bus.topology.queue(&spec);
    let names: Vec<String> = (1..=settings.consumers.max(1))
        .map(|n| format!("consumer {queue} #{n}"))
        .collect();
    for name in &names {
        tasks.set(name, TaskState::Starting);
    }
    async move {
        let mut loops = tokio::task::JoinSet::new();
        for name in names {
            let consumer = ConsumerLoop {
                bus: bus.clone(),
                spec: spec.clone(),
                settings: settings.clone(),
                handler: handler.clone(),
                pause: pause.clone(),
            };
            loops.spawn(consumer.supervised(name, tasks.clone(), shutdown.clone()));
        }
        let mut result = Ok(());
        while let Some(joined) = loops.join_next().await {
            if let Err(error) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
                // One broken loop stops the process: the orchestrator restarts it.
                shutdown.cancel();
                result = Err(error);
            }
        }
        result
    }
}

/// Resolves `grace_ms` after `shutdown` is cancelled.
async fn grace_over(shutdown: &CancellationToken, grace_ms: u64) {
    shutdown.cancelled().await;
    tokio::time::sleep(std::time::Duration::from_millis(grace_ms)).await;
}

struct ConsumerLoop<H> {
    bus: Arc<Bus>,
    spec: QueueSpec,
    settings: ConsumerSettings,
    handler: Arc<H>,
    pause: PauseSignal,
}

/// Why one life of a consumer ended without an error.
enum Stopped {
    Shutdown,
    Paused(String),
}

impl<H: Handler> ConsumerLoop<H> {
    /// Consumes until `shutdown`, consuming again (with backoff) after each
    /// loss of the channel.
    async fn supervised(
        self,
        name: String,
        tasks: Tasks,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut delays = crate::retry::Delays::new();
        loop {
            if self.pause.reason().is_some() {
                // Paused is not down: the process does what it should.
                tasks.ready(&name);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.pause.resumed() => {
                        tracing::info!(consumer = %name, "resumed; consuming again");
                    }
                }
            }
            let consuming = || {
                tasks.ready(&name);
                delays.reset();
            };
            let error = match self.run(&shutdown, consuming).await {
                Ok(Stopped::Shutdown) => break,
                Ok(Stopped::Paused(reason)) => {
                    tracing::warn!(consumer = %name, %reason, "paused: not consuming until resumed; messages wait in the queue");
                    continue;
                }
                Err(error) => error,
            };
            if shutdown.is_cancelled() {
                break;
            }
            let wait = delays.next_wait();
            tracing::warn!(consumer = %name, error = format!("{error:#}"), ?wait, "consumer lost its channel; consuming again");
            metrics::counter!("stockfleet_consumer_restarts_total", "queue" => self.bus.topology.queue(&self.spec)).increment(1);
            tasks.down(&name, format!("reconnecting after: {error:#}"));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tasks.remove(&name);
        Ok(())
    }

    /// One life of the consumer on one channel. A batch in progress when the
    /// channel dies is abandoned where it is: its deliveries can no longer be
    /// acknowledged and come back to whichever consumer is alive, so no
    /// further work (a marketplace call) is started for them.
    async fn run(
        &self,
        shutdown: &CancellationToken,
        mut consuming: impl FnMut(),
    ) -> anyhow::Result<Stopped> {
        let queue = self.bus.topology.queue(&self.spec);
        let publisher = Publisher::new(&self.bus).await?;
        let channel = publisher.channel().clone();
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue, "consuming");
        consuming();
        let mut stopped = Stopped::Shutdown;
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                reason = self.pause.paused() => {
                    stopped = Stopped::Paused(reason);
                    break;
                }
                next = consumer.next() => next,
            };
            let Some(first) = next else {
                anyhow::bail!("the broker cancelled the consumer on {queue}");
            };
            let mut batch = vec![first?];
            while batch.len() < self.settings.batch_size.max(1) {
                match consumer.next().now_or_never() {
                    Some(Some(delivery)) => batch.push(delivery?),
                    _ => break,
                }
            }
            tokio::select! {
                settled = self.settle(&publisher, &queue, batch) => settled?,
                _ = super::connection::closed(&channel) => {
                    anyhow::bail!("the channel closed during a batch on {queue}; its deliveries will be redelivered");
                }
                _ = grace_over(shutdown, self.settings.shutdown_grace_ms) => {
                    tracing::warn!(queue, grace_ms = self.settings.shutdown_grace_ms,
                        "shutting down: the batch under way is abandoned; its deliveries will be redelivered");
                    break;
                }
            }
        }
        channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await
            .ok();
        // Closing the channel hands prefetched, unhandled deliveries back to the queue.
        channel.close(200, "shutdown".into()).await.ok();
        tracing::info!(queue, "stopped consuming");
        Ok(stopped)
    }

    async fn settle(
        &self,
        publisher: &Publisher,
        queue: &str,
        batch: Vec<Delivery>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
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
        if !decoded.is_empty() {
            let results = super::isolate::isolate(&decoded, |part: Vec<Incoming>| async move {
                self.handle_guarded(&part).await
            })
            .await;
            for (position, result) in positions.into_iter().zip(results) {
                outcomes[position] = Some(result);
            }
        }

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
        let last = batch.last().expect("batches are never empty");
        publisher
            .channel()
            .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
            .await?;
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
        let give_up =
            matches!(error, HandlerError::Permanent(_)) || attempts >= self.settings.max_attempts;
        if give_up {
            tracing::warn!(%error, kind = error.kind(), attempts, "dead-lettering message");
            let dead_letters = Route {
                exchange: String::new(),
                routing_key: topology.dead_letter_queue(&self.spec),
            };
            Outgoing::copy_of(delivery, headers, &dead_letters)
        } else {
            let delay = topology.retry_delay(attempts);
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
