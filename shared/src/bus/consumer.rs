//! The consumer loop every worker runs.
//!
//! Deliveries are taken in batches (whatever is ready, up to `batch_size`) so
//! a handler can commit many messages in one transaction; each batch is
//! settled ([`super::settle`]) before it is acknowledged. A queue may work
//! several batches at once (`batches_in_flight`, the publisher's stock
//! queues): a batch whose messages wait for a low-priority permit then holds
//! up no later batch's decreases.

use super::handler::Handler;
use super::pause::PauseSignal;
use super::settle::Settler;
use super::{Bus, Publisher, QueueSpec};
use crate::config::ConsumerSettings;
use crate::supervise::{TaskState, Tasks};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
                settler: Settler {
                    bus: bus.clone(),
                    spec: spec.clone(),
                    settings: settings.clone(),
                    handler: handler.clone(),
                },
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
    settler: Settler<H>,
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
            let queue = self.settler.bus.topology.queue(&self.settler.spec);
            metrics::counter!("stockfleet_consumer_restarts_total", "queue" => queue).increment(1);
            tasks.down(&name, format!("reconnecting after: {error:#}"));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tasks.remove(&name);
        Ok(())
    }

    /// One life of the consumer on one channel. Batches in progress when the
    /// channel dies are abandoned where they are: their deliveries can no
    /// longer be acknowledged and come back to whichever consumer is alive,
    /// so no further work (a marketplace call) is started for them.
    async fn run(
        &self,
        shutdown: &CancellationToken,
        mut consuming: impl FnMut(),
    ) -> anyhow::Result<Stopped> {
        let Settler {
            bus,
            spec,
            settings,
            ..
        } = &self.settler;
        let queue = bus.topology.queue(spec);
        let publisher = Publisher::new(bus).await?;
        let channel = publisher.channel().clone();
        channel
            .basic_qos(settings.prefetch, BasicQosOptions::default())
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
        let most = settings.batches_in_flight.max(1);
        let mut in_flight = FuturesUnordered::new();
        let mut stopped = Stopped::Shutdown;
        loop {
            let (room, busy) = (in_flight.len() < most, !in_flight.is_empty());
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                reason = self.pause.paused() => {
                    stopped = Stopped::Paused(reason);
                    break;
                }
                Some(settled) = in_flight.next(), if busy => {
                    settled?;
                    continue;
                }
                _ = super::connection::closed(&channel), if busy => {
                    anyhow::bail!("the channel closed during a batch on {queue}; its deliveries will be redelivered");
                }
                next = consumer.next(), if room => next,
            };
            let Some(first) = next else {
                anyhow::bail!("the broker cancelled the consumer on {queue}");
            };
            let mut batch = vec![first?];
            while batch.len() < settings.batch_size.max(1) {
                match consumer.next().now_or_never() {
                    Some(Some(delivery)) => batch.push(delivery?),
                    _ => break,
                }
            }
            in_flight.push(self.settler.settle(&publisher, &queue, batch));
        }
        // The batches under way finish (on SIGTERM within the grace period).
        let finished = async {
            while let Some(settled) = in_flight.next().await {
                settled?;
            }
            anyhow::Ok(())
        };
        tokio::select! {
            finished = finished => finished?,
            _ = super::connection::closed(&channel) => {
                anyhow::bail!("the channel closed during a batch on {queue}; its deliveries will be redelivered");
            }
            _ = grace_over(shutdown, settings.shutdown_grace_ms) => {
                tracing::warn!(queue, grace_ms = settings.shutdown_grace_ms,
                    "shutting down: the batches under way are abandoned; their deliveries will be redelivered");
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
}
