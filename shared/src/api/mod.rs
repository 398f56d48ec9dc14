//! stockfleet-api: the operators' REST API (bearer tokens with roles), the
//! HTML dashboard, and the WooCommerce webhook receiver.
//!
//! - JSON under `/api/v1`, over the same operator actions as the CLI, one
//!   module per concern: [`orders`], [`sync`], [`dead_letters`], [`ops`],
//!   [`routes`] (stock and locks); documented by [`openapi`].
//! - [`dashboard`]: server-rendered pages, signed in with a token kept in a cookie.
//! - [`webhook`]: HMAC-verified WooCommerce order webhooks, stored through the
//!   poller's path so they cause the same events.
//!
//! Writes go through the database and the outbox (sync requests included), so
//! a request that answered 2xx has its effect even if the process dies next.

mod auth;
mod dashboard;
mod dead_letters;
mod edge;
mod error;
pub mod openapi;
mod ops;
mod orders;
mod pages;
mod pauses;
mod pools;
mod routes;
mod sync;
mod webhook;

use crate::admin::tokens::Caller;
use crate::bus::Bus;
use crate::marketplace::directory::MarketplaceDirectory;
use crate::worker::Worker;
use anyhow::Context;
use axum::Router;
use axum::extract::MatchedPath;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

/// The longest any request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the API behaves beyond its connections.
#[derive(Debug, Clone)]
pub struct Options {
    /// RabbitMQ's management API, for unacknowledged counts in queue stats.
    pub management_url: Option<String>,
    /// A lock older than this is reported by validation as stale (as the CLI's default).
    pub stale_lock_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            management_url: None,
            stale_lock_after: Duration::from_secs(
                crate::admin::validate::DEFAULT_STALE_AFTER_HOURS * 3600,
            ),
        }
    }
}

/// What every handler reaches: cheap to clone.
#[derive(Clone)]
pub struct Api {
    db: PgPool,
    bus: Arc<Bus>,
    marketplaces: Arc<MarketplaceDirectory>,
    options: Arc<Options>,
}

impl Api {
    pub fn new(db: PgPool, bus: Arc<Bus>, options: Options) -> Self {
        Self {
            marketplaces: Arc::new(MarketplaceDirectory::new(db.clone())),
            db,
            bus,
            options: Arc::new(options),
        }
    }

    /// Every marketplace code, for the per-marketplace queues.
    async fn marketplace_codes(&self) -> sqlx::Result<Vec<String>> {
        crate::marketplace::directory::codes(&self.db).await
    }

    /// The marketplace codes this caller sees (its token's scope).
    async fn visible_codes(&self, caller: &Caller) -> sqlx::Result<Vec<String>> {
        let mut codes = self.marketplace_codes().await?;
        codes.retain(|code| caller.scope.sees(code));
        Ok(codes)
    }
}

pub fn router(api: Api) -> Router {
    let (documented, _) = openapi::split();
    Router::new()
        .merge(documented)
        .merge(dashboard::router())
        .merge(pages::router())
        .merge(webhook::router())
        .route_layer(axum::middleware::from_fn(measure))
        // A wedged database or broker answers 503 instead of holding the
        // connection (and a dashboard tab) forever.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(edge::BODY_LIMIT))
        .layer(axum::middleware::from_fn(edge::error_bodies))
        .layer(axum::middleware::from_fn(edge::refuse_malformed_uri))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(api)
}

/// Counts every request by route template (never the raw path, whose SKUs
/// and ids would make unbounded label values) and times it.
async fn measure(
    route: MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = route.as_str().to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("stockfleet_http_request_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("stockfleet_http_requests_total",
        "route" => route, "method" => method, "status" => status)
    .increment(1);
    response
}

/// Serves the API on `addr` until `shutdown`; requests under way are finished.
/// Returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    api: Api,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (API_ADDR)"))?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "serving the API and dashboard");
    let app = router(api);
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "API server stopped");
        }
    });
    Ok((bound, server))
}

/// The api worker: serves until SIGTERM (or until one of its tasks, the
/// server or the outbox relay, fails), finishes requests under way, then lets
/// the outbox relay drain.
pub async fn run(worker: Worker, addr: SocketAddr, options: Options) -> anyhow::Result<()> {
    let api = Api::new(worker.db.clone(), worker.bus.clone(), options);
    let served = match serve(addr, api, worker.shutdown.clone()).await {
        Ok((_, server)) => {
            worker.tasks.ready(SERVER_TASK);
            let server = worker.tasks.spawn(SERVER_TASK, async move {
                server.await.context("API server task")
            });
            worker.shutdown.cancelled().await;
            server
                .await
                .context("API server task")
                .and_then(|served| served)
        }
        Err(error) => Err(error),
    };
    worker.stop(served).await
}

/// The HTTP server's name among the api's tasks.
const SERVER_TASK: &str = "api server";
