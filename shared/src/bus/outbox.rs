//! Transactional outbox: a handler writes the messages its change causes in
//! the same transaction as the change; the relay publishes them with confirms
//! and deletes them only after the broker confirmed. A crash before the delete
//! republishes (consumers are idempotent); nothing is ever published for a
//! change that rolled back.

use super::headers::{self, TRACEPARENT};
use super::{Bus, Envelope, Exchange, Outgoing, Publisher};
use crate::db::PgQuery;
use crate::supervise::{TaskState, Tasks};
use lapin::types::FieldTable;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::sync::LazyLock;
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
    static SQL: LazyLock<String> = LazyLock::new(|| OutboxRows::insert_sql(1));
    OutboxRows::of(messages)
        .bind(sqlx::query(AssertSqlSafe(SQL.as_str())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Outbox rows as column arrays, for one `INSERT … SELECT FROM unnest`.
pub(crate) struct OutboxRows<'a> {
    ids: Vec<uuid::Uuid>,
    exchanges: Vec<&'static str>,
    keys: Vec<&'a str>,
    envelopes: Vec<serde_json::Value>,
    headers: Vec<serde_json::Value>,
}

impl<'a> OutboxRows<'a> {
    pub(crate) fn of(messages: &'a [OutboxMessage]) -> Self {
        let mut rows = Self {
            ids: Vec::with_capacity(messages.len()),
            exchanges: Vec::with_capacity(messages.len()),
            keys: Vec::with_capacity(messages.len()),
            envelopes: Vec::with_capacity(messages.len()),
            headers: Vec::with_capacity(messages.len()),
        };
        for message in messages {
            rows.ids.push(message.envelope.id);
            rows.exchanges.push(message.exchange.as_str());
            rows.keys.push(message.routing_key.as_str());
            rows.envelopes
                .push(serde_json::to_value(&message.envelope).expect("envelope is JSON"));
            rows.headers
                .push(serde_json::json!({ TRACEPARENT: message.traceparent }));
        }
        rows
    }

    /// The insert, its 5 arrays bound from `$first` on: alone, or as one part
    /// of a handler's write statement (the ledger's `write_batch`).
    pub(crate) fn insert_sql(first: usize) -> String {
        let n = |k: usize| first + k;
        format!(
            "INSERT INTO outbox (message_id, exchange, routing_key, envelope, headers)
             SELECT * FROM unnest(${}::uuid[], ${}::text[], ${}::text[], ${}::jsonb[], ${}::jsonb[])",
            n(0),
            n(1),
            n(2),
            n(3),
            n(4)
        )
    }

    /// Binds the 5 arrays, in [`Self::insert_sql`]'s order.
    pub(crate) fn bind(self, query: PgQuery) -> PgQuery {
        query
            .bind(self.ids)
            .bind(self.exchanges)
            .bind(self.keys)
            .bind(self.envelopes)
            .bind(self.headers)
    }
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
    // Claimed and deleted in one statement: the delete commits only after
    // every confirm came back; a failed publish rolls it back, rows kept.
    let mut rows = sqlx::query(
        "WITH claimed AS (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         DELETE FROM outbox o USING claimed c WHERE o.id = c.id
         RETURNING o.id, o.message_id, o.exchange, o.routing_key, o.envelope::text AS envelope,
                   o.headers",
    )
    .bind(RELAY_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // RETURNING keeps no order: published oldest first, as claimed.
    rows.sort_by_key(|row| row.get::<i64, _>("id"));
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
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
    tx.commit().await?;
    clock.lap("outbox.commit");
    metrics::counter!("stockfleet_outbox_relayed_total").increment(rows.len() as u64);
    Ok(rows.len())
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
