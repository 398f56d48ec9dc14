//! RabbitMQ through lapin: connection, topology, confirmed publishing, the
//! consumer loop with retries and dead letters, and the transactional outbox.

pub mod consumer;
mod declare;
pub mod envelope;
pub mod headers;
pub mod migrate;
pub mod outbox;
pub mod publisher;
pub mod topology;

pub use consumer::{Handler, HandlerError, Incoming};
pub use envelope::Envelope;
pub use outbox::OutboxMessage;
pub use publisher::{Outgoing, Publisher};
pub use topology::{Exchange, QueueSpec, Route, Topology};

use anyhow::Context;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// One long-lived connection per process; channels are opened per task.
pub struct Bus {
    connection: Connection,
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
        let properties =
            || ConnectionProperties::default().with_connection_name(connection_name().into());
        let connection = crate::retry::retry(
            &policy,
            || declare::within(timeout, Connection::connect(url, properties())),
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
            connection,
            topology,
            timeout,
        })
    }

    pub async fn channel(&self) -> lapin::Result<Channel> {
        self.connection.create_channel().await
    }

    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
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
    /// closes the channel it was asked on).
    pub async fn queue_exists(&self, queue: &str) -> lapin::Result<bool> {
        let channel = self.channel().await?;
        match passive_declare(&channel, queue).await {
            Ok(_) => {
                channel.close(200, "checked".into()).await.ok();
                Ok(true)
            }
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    pub async fn close(&self) {
        if let Err(error) = self.connection.close(200, "shutdown".into()).await {
            tracing::debug!(%error, "closing the broker connection");
        }
    }
}

/// `stockfleet-publisher pid 4242`: which process a connection is, in the
/// broker's connection list (and so which replica holds an active consumer).
fn connection_name() -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "stockfleet".to_owned());
    format!("{program} pid {}", std::process::id())
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
