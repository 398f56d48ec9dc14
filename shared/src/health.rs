//! `/healthz` (the process is up), `/readyz` (database and broker reachable,
//! and every background task, by name, ready) and `/metrics` (Prometheus
//! text) for every long-running binary. The server is itself a supervised
//! task: if it stops, the process stops.

use crate::bus::Bus;
use crate::supervise::{TaskState, Tasks};
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The broker connection once the worker has it: health is served before
/// the broker is reached, so a broker that does not answer shows as not ready.
pub type BusSlot = Arc<OnceLock<Arc<Bus>>>;

#[derive(Clone)]
struct Probes {
    /// A connection of the probe's own ([`probe_pool`]).
    db: PgPool,
    bus: BusSlot,
    tasks: Tasks,
}

/// The health server's name among the tasks.
const HEALTH_TASK: &str = "health server";

/// Serves the endpoints on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    db: PgPool,
    bus: BusSlot,
    tasks: &Tasks,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    // Installed before any work starts: counts made before the recorder exists are lost.
    let recorder = crate::telemetry::metrics();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(move || async move { recorder.render() }))
        .with_state(Probes {
            db: probe_pool(&db),
            bus,
            tasks: tasks.clone(),
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
    tasks.ready(HEALTH_TASK);
    tasks.spawn(HEALTH_TASK, async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("the health endpoint stopped")
    });
    Ok(bound)
}

/// The readiness probe's own connection to the process's database: a pool
/// busy with work (every connection in a long batch) is not a database out
/// of reach, and must not make a busy process look down.
fn probe_pool(db: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(PROBE_TIMEOUT)
        .connect_lazy_with(db.connect_options().as_ref().clone())
}

/// How long the database may take to answer the readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn ready(State(probes): State<Probes>) -> (StatusCode, String) {
    let db = tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&probes.db)).await;
    let mut problems = Vec::new();
    match db {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => problems.push(format!("database: {error}")),
        Err(_) => problems.push("database: no answer within 2 s".to_owned()),
    }
    match probes.bus.get() {
        None => problems.push("broker: not connected yet (connecting and declaring)".to_owned()),
        Some(bus) if !bus.is_connected() => problems.push("broker: not connected".to_owned()),
        Some(_) => {}
    }
    let (_, tasks) = probes.tasks.report();
    let mut lines = Vec::with_capacity(tasks.len());
    for (name, state) in tasks {
        match state {
            TaskState::Ready => lines.push(format!("{name}: ready")),
            TaskState::Starting => problems.push(format!("{name}: starting")),
            TaskState::Down(reason) => problems.push(format!("{name}: {reason}")),
        }
    }
    if problems.is_empty() {
        lines.insert(0, "ready".to_owned());
        (StatusCode::OK, lines.join("\n"))
    } else {
        problems.extend(lines);
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n"))
    }
}
