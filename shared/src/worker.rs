//! What every worker binary does around its handler: connect to PostgreSQL
//! (migrated) and RabbitMQ, declare the topology, serve health and metrics,
//! relay the outbox, consume until SIGTERM, then shut down in order. Every
//! background task runs under [`Tasks`]: one that fails ends the process
//! with its error.

use crate::bus::{self, Bus, Handler, QueueSpec};
use crate::config::Settings;
use crate::supervise::Tasks;
use anyhow::Context;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Worker {
    pub name: &'static str,
    pub db: PgPool,
    pub bus: Arc<Bus>,
    pub settings: Settings,
    pub shutdown: CancellationToken,
    pub health_addr: Option<SocketAddr>,
    /// The background tasks, reported by `/readyz`.
    pub tasks: Tasks,
    relay_stop: CancellationToken,
    relay: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    pub async fn start(
        name: &'static str,
        settings: Settings,
        health: Option<SocketAddr>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        settings.apply();
        let db = crate::db::connect_migrated(&settings.database_url, settings.database_pool_size)
            .await?;
        let codes = crate::marketplace::directory::codes(&db).await?;
        // Health first: while the broker is being reached (or does not
        // answer), /healthz answers and /readyz says why it is not ready.
        let bus_slot = crate::health::BusSlot::default();
        let tasks = Tasks::new(shutdown.clone());
        let health_addr = match health {
            Some(addr) => Some(
                crate::health::serve(addr, db.clone(), bus_slot.clone(), &tasks, shutdown.clone())
                    .await
                    .with_context(|| format!("cannot serve health endpoints on {addr}"))?,
            ),
            None => None,
        };
        let bus = Arc::new(
            Bus::connect(
                &settings.amqp_url,
                crate::bus::Topology::of(&settings),
                settings.amqp_timeout(),
            )
            .await?,
        );
        bus.declare(&QueueSpec::all(codes.iter().map(String::as_str)))
            .await?;
        bus_slot.set(bus.clone()).ok();
        let relay_stop = CancellationToken::new();
        let relay = tasks.spawn(bus::outbox::RELAY_TASK, {
            let (db, bus, stop, tasks) =
                (db.clone(), bus.clone(), relay_stop.clone(), tasks.clone());
            async move { bus::outbox::run_relay(db, &bus, &tasks, stop).await }
        });
        tracing::info!(worker = name, prefix = %settings.bus_prefix, "started");
        Ok(Self {
            name,
            db,
            bus,
            settings,
            shutdown,
            health_addr,
            tasks,
            relay_stop,
            relay,
        })
    }

    /// Consumes `spec` with `handler` until shutdown, then stops the relay
    /// (after a last drain) and closes the connections.
    pub async fn consume<H: Handler>(self, spec: QueueSpec, handler: H) -> anyhow::Result<()> {
        let consumed = bus::consumer::run(
            self.bus.clone(),
            spec,
            self.settings.consumer.clone(),
            Arc::new(handler),
            self.tasks.clone(),
            self.shutdown.clone(),
        )
        .await;
        self.stop(consumed).await
    }

    /// Stops the outbox relay and closes connections; returns `result`, or the
    /// relay's error, or the first failure of a supervised task.
    pub async fn stop(self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        // Whatever ended the body, every other task stops too.
        self.shutdown.cancel();
        self.relay_stop.cancel();
        let relayed = self.relay.await.context("outbox relay task")?;
        self.bus.close().await;
        self.db.close().await;
        tracing::info!(worker = self.name, "stopped");
        result.and(relayed).and(self.tasks.failure())
    }
}

/// Command-line arguments of every worker binary.
#[derive(Debug, clap::Parser)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// Address of /healthz, /readyz and /metrics (each worker has its own default port).
    #[arg(long, env = "HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,
}

/// The `main` of a worker binary: logging, arguments, signals, then `body`
/// with a started [`Worker`]. Exits 0 after a graceful shutdown, 1 on error.
pub fn main<F, Fut>(name: &'static str, default_health_port: u16, body: F) -> std::process::ExitCode
where
    F: FnOnce(Worker) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let telemetry = crate::telemetry::init(&format!("stockfleet-{name}"));
    let args = <WorkerArgs as clap::Parser>::parse();
    let health = args
        .health_addr
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_health_port)));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async move {
        let shutdown = crate::shutdown::on_signals();
        let started = Worker::start(name, args.settings, Some(health), shutdown.clone());
        // SIGTERM while still reaching the database or the broker: nothing
        // was consumed yet, so there is nothing to finish.
        let worker = tokio::select! {
            worker = started => worker?,
            _ = shutdown.cancelled() => {
                tracing::info!(worker = name, "stopped before it was started");
                return Ok(());
            }
        };
        body(worker).await
    });
    drop(runtime);
    drop(telemetry); // flushes the spans not yet exported
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(worker = name, error = format!("{error:#}"), "worker failed");
            eprintln!("stockfleet-{name}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves health until shutdown: for workers whose own work is not built yet.
pub async fn idle(worker: Worker) -> anyhow::Result<()> {
    worker.shutdown.cancelled().await;
    worker.stop(Ok(())).await
}
