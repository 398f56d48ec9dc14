//! The broker connection of a process, re-established when lost.
//!
//! Loss is noticed at once: lapin's connection events (an I/O error, a
//! closed socket, missed heartbeats) are logged and counted as they happen,
//! every channel of the dead connection turns to an error state that
//! [`closed`] watches, and a heartbeat (10 s unless AMQP_URL sets one) catches
//! a broker that stops answering without closing the socket. The next
//! [`Link::channel`] after a loss connects anew; the consumers and the relay
//! ask for one in their reconnect loops, so the process is back within their
//! backoff (at most 2 s) of the broker returning.

use futures::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Heartbeat asked for when AMQP_URL names none, in seconds.
const DEFAULT_HEARTBEAT: u16 = 10;
/// How often [`closed`] looks at a channel's state.
const CHANNEL_WATCH: Duration = Duration::from_millis(50);

pub struct Link {
    url: String,
    /// How long one reconnect attempt may take before it counts as failed
    /// (AMQP_TIMEOUT_SECONDS, as for the first connect).
    reconnect_timeout: Duration,
    current: RwLock<Arc<Connection>>,
    /// One reconnect at a time; the others wait for it and share its result.
    reconnecting: tokio::sync::Mutex<()>,
}

impl Link {
    /// Connects once to `url` (with a heartbeat unless it names one); a
    /// reconnect later may take `reconnect_timeout`.
    pub async fn open(url: &str, reconnect_timeout: Duration) -> lapin::Result<Self> {
        let url = with_heartbeat(url);
        let connection = connect(&url).await?;
        Ok(Self {
            url,
            reconnect_timeout,
            current: RwLock::new(Arc::new(connection)),
            reconnecting: tokio::sync::Mutex::new(()),
        })
    }

    fn connection(&self) -> Arc<Connection> {
        self.current.read().expect("broker connection").clone()
    }

    pub fn is_connected(&self) -> bool {
        self.connection().status().connected()
    }

    /// A new channel, on a new connection if the current one was lost.
    pub async fn channel(&self) -> lapin::Result<Channel> {
        let connection = self.connection();
        if connection.status().connected() {
            return connection.create_channel().await;
        }
        let _only_one = self.reconnecting.lock().await;
        let mut connection = self.connection();
        if !connection.status().connected() {
            let fresh = tokio::time::timeout(self.reconnect_timeout, connect(&self.url))
                .await
                .map_err(|_| {
                    lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
                })??;
            tracing::info!("reconnected to RabbitMQ");
            metrics::counter!("stockfleet_broker_reconnects_total").increment(1);
            connection = Arc::new(fresh);
            *self.current.write().expect("broker connection") = connection.clone();
        }
        connection.create_channel().await
    }

    pub async fn close(&self) -> lapin::Result<()> {
        self.connection().close(200, "shutdown".into()).await
    }
}

async fn connect(url: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(connection_name().into());
    let connection = Connection::connect(url, properties).await?;
    let mut events = connection.events_listener();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Error(error) = event {
                tracing::warn!(%error, "lost the RabbitMQ connection; consumers stop and reconnect");
                metrics::counter!("stockfleet_broker_connection_lost_total").increment(1);
            }
        }
    });
    Ok(connection)
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

/// `url` with `heartbeat=10` added unless it already asks for a heartbeat.
pub fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}heartbeat={DEFAULT_HEARTBEAT}")
}

/// Resolves once `channel` is no longer open (closed, or its connection lost).
pub async fn closed(channel: &Channel) {
    while channel.status().connected() {
        tokio::time::sleep(CHANNEL_WATCH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_heartbeat;

    #[test]
    fn a_heartbeat_is_asked_for_unless_the_url_sets_one() {
        assert_eq!(
            with_heartbeat("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10"
        );
        assert_eq!(
            with_heartbeat("amqp://h/%2f?frame_max=8192"),
            "amqp://h/%2f?frame_max=8192&heartbeat=10"
        );
        assert_eq!(
            with_heartbeat("amqp://h/%2f?heartbeat=30"),
            "amqp://h/%2f?heartbeat=30"
        );
    }
}
