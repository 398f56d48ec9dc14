//! RabbitMQ through lapin: connection, topology, confirmed publishing, the
//! consumer loop with retries and dead letters, and the transactional outbox.

pub mod connection;
pub mod consumer;
mod declare;
pub mod envelope;
mod handler;
pub mod headers;
mod isolate;
pub mod migrate;
pub mod outbox;
pub mod pause;
pub mod publisher;
mod settle;
pub mod topology;

pub use envelope::Envelope;
pub use handler::{Handler, HandlerError, Incoming, named_marketplace};
pub use outbox::OutboxMessage;
pub use publisher::{Outgoing, Publisher};
pub use topology::{Exchange, QueueSpec, Route, Topology};

use anyhow::Context;
use lapin::Channel;
use std::time::Duration;

/// One long-lived connection per process (re-established when lost, see
/// [`connection`]); channels are opened per task.
pub struct Bus {
    link: connection::Link,
    pub topology: Topology,
    /// Bound on each connect attempt and on declaring the topology: a broker
    /// that accepts connections but never answers must not hang a worker.
    timeout: Duration,
}

impl Bus {
    /// Connects, retrying while the broker is not answering yet; each attempt
    /// gives up after `timeout`.
    pub async fn connect(url: &str, topology: Topology, timeout: Duration) -> anyhow::Result<Self> {
        let policy = crate::retry::Policy {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        };
        let link = crate::retry::retry(
            &policy,
            || declare::within(timeout, connection::Link::open(url, timeout)),
            |_| true,
            |error, wait| tracing::warn!(error = %format!("{error:#}"), ?wait, "RabbitMQ not reachable yet; retrying"),
        )
        .await
        .with_context(|| {
            format!(
                "cannot connect to RabbitMQ at {}; is it running and is AMQP_URL right?",
                crate::db::redact(url)
            )
        })?;
        Ok(Self {
            link,
            topology,
            timeout,
        })
    }

    /// A new channel (on a new connection if the broker was lost meanwhile).
    pub async fn channel(&self) -> lapin::Result<Channel> {
        self.link.channel().await
    }

    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// Declares the exchanges and the given consumer queues.
    pub async fn declare(&self, specs: &[QueueSpec]) -> anyhow::Result<()> {
        let channel = declare::within(self.timeout, self.channel()).await?;
        self.topology
            .declare(&channel, specs, self.timeout)
            .await
            .context("declaring the RabbitMQ topology failed")?;
        channel.close(200, "declared".into()).await.ok();
        Ok(())
    }

    /// Whether `queue` exists (on a channel of its own: a missing queue
    /// closes the channel it was asked on), within the broker timeout: a
    /// broker slow to answer after a restart is an error to retry, never a
    /// caller waiting for ever.
    pub async fn queue_exists(&self, queue: &str) -> anyhow::Result<bool> {
        let channel = declare::within(self.timeout, self.channel()).await?;
        match declare::within(self.timeout, passive_declare(&channel, queue)).await {
            Ok(_) => {
                channel.close(200, "checked".into()).await.ok();
                Ok(true)
            }
            Err(error)
                if error
                    .downcast_ref::<lapin::Error>()
                    .is_some_and(is_not_found) =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    pub async fn close(&self) {
        if let Err(error) = self.link.close().await {
            tracing::debug!(%error, "closing the broker connection");
        }
    }
}

/// Declares `queue` passively, for its counts; fails with NOT_FOUND (which
/// closes `channel`) when it does not exist.
pub async fn passive_declare(channel: &Channel, queue: &str) -> lapin::Result<lapin::Queue> {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
}

pub(crate) fn is_not_found(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e) if e.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
    )
}
