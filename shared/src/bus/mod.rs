//! RabbitMQ through lapin: connection, topology, confirmed publishing, the
//! consumer loop with retries and dead letters, and the transactional outbox.

pub mod consumer;
pub mod envelope;
pub mod headers;
mod isolate;
pub mod outbox;
pub mod publisher;
pub mod topology;

pub use consumer::{Handler, HandlerError, Incoming};
pub use envelope::Envelope;
pub use outbox::OutboxMessage;
pub use publisher::{Outgoing, Publisher};
pub use topology::{Exchange, QueueSpec, Topology};

use anyhow::Context;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// One long-lived connection per process; channels are opened per task.
pub struct Bus {
    connection: Connection,
    pub topology: Topology,
}

impl Bus {
    /// Connects, retrying while the broker is not answering yet.
    pub async fn connect(url: &str, topology: Topology) -> anyhow::Result<Self> {
        let policy = crate::retry::Policy {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        };
        let properties =
            || ConnectionProperties::default().with_connection_name("stockfleet".into());
        let connection = crate::retry::retry(
            &policy,
            || Connection::connect(url, properties()),
            |_| true,
            |error, wait| tracing::warn!(%error, ?wait, "RabbitMQ not reachable yet; retrying"),
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
        let channel = self.channel().await?;
        self.topology
            .declare(&channel, specs)
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

fn is_not_found(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e) if e.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
    )
}
