//! Transactional outbox: a handler writes the messages its change causes in
//! the same transaction as the change; the relay publishes them with confirms
//! and deletes them only after the broker confirmed. A crash before the delete
//! republishes (consumers are idempotent); nothing is ever published for a
//! change that rolled back.

use super::headers::{self, TRACEPARENT};
use super::{Bus, Envelope, Exchange, Outgoing, Publisher};
use crate::supervise::{TaskState, Tasks};
use lapin::types::FieldTable;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{PgConnection, Row};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NOTIFY_CHANNEL: &str = "stockfleet_outbox";
const RELAY_BATCH: i64 = 500;
/// Fallback poll when a notification is missed (a listener reconnect).
const IDLE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub exchange: Exchange,
    pub routing_key: String,
    pub envelope: Envelope,
    pub traceparent: String,
}

impl OutboxMessage {
    /// An event, routed by its type and marketplace, continuing `parent`'s trace.
    pub fn event(envelope: Envelope, parent: Option<&str>) -> Self {
        Self {
            exchange: Exchange::Events,
            routing_key: envelope.event_routing_key(),
            envelope,
            traceparent: crate::telemetry::traceparent(parent),
        }
    }

    /// A command to `routing_key` on the commands exchange.
    pub fn command(routing_key: String, envelope: Envelope, parent: Option<&str>) -> Self {
        Self {
            exchange: Exchange::Commands,
            routing_key,
            envelope,
            traceparent: crate::telemetry::traceparent(parent),
        }
    }
}

/// Adds messages to the outbox inside the caller's transaction.
pub async fn enqueue(conn: &mut PgConnection, messages: &[OutboxMessage]) -> sqlx::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(messages.len());
    let mut exchanges = Vec::with_capacity(messages.len());
    let mut keys = Vec::with_capacity(messages.len());
    let mut envelopes = Vec::with_capacity(messages.len());
    let mut headers = Vec::with_capacity(messages.len());
    for message in messages {
        ids.push(message.envelope.id);
        exchanges.push(message.exchange.as_str());
        keys.push(message.routing_key.as_str());
        envelopes.push(serde_json::to_value(&message.envelope).expect("envelope is JSON"));
        headers.push(serde_json::json!({ TRACEPARENT: message.traceparent }));
    }
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, envelope, headers)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[])",
    )
    .bind(&ids)
    .bind(&exchanges)
    .bind(&keys)
    .bind(&envelopes)
    .bind(&headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// The relay's name in `/readyz`.
pub const RELAY_TASK: &str = "outbox relay";

/// Relays the outbox until `shutdown`, then drains what is left once more.
/// Several relays may run at once (rows are claimed with SKIP LOCKED); the
/// order of messages across relays is not kept, so consumers must not rely on it.
/// A lost database or broker connection is re-established with backoff (the
/// relay reports itself down in `tasks` meanwhile); rows claimed when it was
/// lost stay in the outbox and go out after the reconnect.
pub async fn run_relay(
    pool: PgPool,
    bus: &Bus,
    tasks: &Tasks,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut delays = crate::retry::Delays::new();
    tasks.set(RELAY_TASK, TaskState::Starting);
    loop {
        let error = match relay_connected(&pool, bus, tasks, &mut delays, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let wait = delays.next_wait();
        tracing::warn!(
            error = format!("{error:#}"),
            ?wait,
            "the outbox relay lost a connection; reconnecting"
        );
        metrics::counter!("stockfleet_outbox_relay_reconnects_total").increment(1);
        tasks.down(RELAY_TASK, format!("reconnecting after: {error:#}"));
        tokio::select! {
            _ = shutdown.cancelled() => {
                return Err(error.context("the outbox relay could not drain at shutdown; the rows stay for the next relay"));
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One life of the relay on one set of connections; Ok after the last drain.
async fn relay_connected(
    pool: &PgPool,
    bus: &Bus,
    tasks: &Tasks,
    delays: &mut crate::retry::Delays,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let publisher = Publisher::new(bus).await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    tasks.ready(RELAY_TASK);
    delays.reset();
    let mut last_gauge = std::time::Instant::now();
    loop {
        let relayed = relay_once(pool, bus, &publisher).await?;
        if last_gauge.elapsed() > Duration::from_secs(5) || relayed == 0 {
            record_backlog(pool).await;
            last_gauge = std::time::Instant::now();
        }
        if relayed > 0 {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            notification = listener.recv() => { notification?; }
            _ = super::connection::closed(publisher.channel()) => {
                anyhow::bail!("the broker channel closed");
            }
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    while relay_once(pool, bus, &publisher).await? > 0 {}
    publisher.close().await;
    Ok(())
}

/// Publishes one batch of the oldest messages; returns how many.
pub async fn relay_once(pool: &PgPool, bus: &Bus, publisher: &Publisher) -> anyhow::Result<usize> {
    let mut clock = crate::telemetry::StageClock::start();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, message_id, exchange, routing_key, envelope::text AS envelope, headers
         FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(RELAY_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.get::<i64, _>("id"));
        let exchange = Exchange::parse(row.get("exchange")).unwrap_or(Exchange::Events);
        let stored: serde_json::Value = row.get("headers");
        let mut headers = FieldTable::default();
        if let Some(traceparent) = stored.get(TRACEPARENT).and_then(|v| v.as_str()) {
            headers::set_str(&mut headers, TRACEPARENT, traceparent);
        }
        messages.push(Outgoing {
            exchange: bus.topology.exchange(exchange),
            routing_key: row.get("routing_key"),
            message_id: row.get::<uuid::Uuid, _>("message_id").to_string(),
            headers,
            body: row.get::<String, _>("envelope").into_bytes(),
        });
    }
    clock.lap("outbox.claim");
    publisher.publish_all(messages).await?;
    clock.lap("outbox.publish");
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    clock.lap("outbox.delete");
    metrics::counter!("stockfleet_outbox_relayed_total").increment(ids.len() as u64);
    Ok(ids.len())
}

async fn record_backlog(pool: &PgPool) {
    let backlog = sqlx::query(
        "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS age FROM outbox",
    )
    .fetch_one(pool)
    .await;
    if let Ok(row) = backlog {
        metrics::gauge!("stockfleet_outbox_backlog").set(row.get::<i64, _>("n") as f64);
        metrics::gauge!("stockfleet_outbox_lag_seconds").set(row.get::<f64, _>("age"));
    }
}
