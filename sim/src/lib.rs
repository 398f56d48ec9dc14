//! The marketplace simulator: Back Market-, Refurbed- and WooCommerce-like
//! APIs on one port under `/backmarket`, `/refurbed`, `/woocommerce`, and a
//! JSON control API under `/control` (docs/simulator.md).
//!
//! Tests start it in-process: `let sim = stockfleet_sim::start(SimConfig::default()).await?;`
//! then point adapters at `sim.base_url("backmarket")`.

// Handlers return an axum `Response` as their error (the answer to send);
// boxing it would only add noise on a test server.
#![allow(clippy::result_large_err)]

mod auth;
mod backmarket;
mod control;
mod generator;
mod guard;
mod money;
mod oauth;
mod pages;
mod php_input;
mod rates;
mod refurbed;
pub mod state;
mod webhook;
mod woocommerce;

pub use generator::{GeneratorConfig, Progression, SkuWeight};
pub use state::{Faults, Limits, Marketplace, RateLimit};
pub use webhook::sign as webhook_signature;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use state::Inner;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;

/// The credentials the simulated marketplaces accept.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub backmarket_token: String,
    pub refurbed_token: String,
    pub woocommerce_key: String,
    pub woocommerce_secret: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            backmarket_token: "bm-sim-token".into(),
            refurbed_token: "rf-sim-token".into(),
            woocommerce_key: "ck_sim".into(),
            woocommerce_secret: "cs_sim".into(),
        }
    }
}

impl Credentials {
    /// The credential string an adapter is configured with (Woo: `key:secret`).
    pub fn for_marketplace(&self, code: &str) -> Option<String> {
        match Marketplace::parse(code)? {
            Marketplace::BackMarket => Some(self.backmarket_token.clone()),
            Marketplace::Refurbed => Some(self.refurbed_token.clone()),
            Marketplace::WooCommerce => Some(format!(
                "{}:{}",
                self.woocommerce_key, self.woocommerce_secret
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Port 0 picks a free port.
    pub addr: SocketAddr,
    pub credentials: Credentials,
    /// Seeds the fault dice (5xx rate).
    pub seed: u64,
    /// Starts the random order generator at once.
    pub generator: Option<GeneratorConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: Credentials::default(),
            seed: 0,
            generator: None,
        }
    }
}

/// Everything the handlers share.
pub(crate) struct Sim {
    inner: Mutex<Inner>,
    seed: u64,
    pub base_url: String,
    pub credentials: Credentials,
    pub webhooks: webhook::Webhooks,
    pub generator: generator::Runner,
    /// WooCommerce OAuth nonces already used.
    pub oauth_nonces: oauth::Nonces,
}

impl Sim {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler must not take the whole simulator down.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Places an order and tells WooCommerce webhooks about it.
    pub fn create_order(
        &self,
        mp: Marketplace,
        items: &[(String, u32)],
        state: Option<&str>,
        document_url: Option<String>,
    ) -> Result<state::Order, state::OrderRefused> {
        let mut inner = self.lock();
        let order = inner.create_order(mp, items, state, document_url)?;
        self.notify(&mut inner, &order, webhook::Topic::Created);
        Ok(order)
    }

    /// Moves an order or item (legal moves only) and tells WooCommerce webhooks.
    pub fn move_order(
        &self,
        mp: Marketplace,
        order_id: u64,
        item: Option<state::ItemSelector<'_>>,
        to: &str,
    ) -> Result<state::Order, state::MoveError> {
        let mut inner = self.lock();
        let order = inner.move_order(mp, order_id, item, to)?;
        self.notify(&mut inner, &order, webhook::Topic::Updated);
        Ok(order)
    }

    fn notify(&self, inner: &mut Inner, order: &state::Order, topic: webhook::Topic) {
        if order.marketplace == Marketplace::WooCommerce {
            let body = woocommerce::render_order(inner.mp(Marketplace::WooCommerce), order);
            self.webhooks
                .order_event(&self.base_url, topic, order.id, &body);
        }
    }

    /// Back to a fresh simulator: no listings, orders, logs, faults or
    /// webhooks, default rate limits, generator stopped.
    pub fn reset(&self) {
        self.generator.stop();
        *self.generator.generator() = None;
        self.webhooks.clear();
        self.oauth_nonces.clear();
        *self.lock() = Inner::new(self.seed);
    }
}

/// A running simulator; dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    server: JoinHandle<()>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// e.g. `http://127.0.0.1:PORT/backmarket`.
    pub fn base_url(&self, code: &str) -> String {
        format!("http://{}/{code}", self.addr)
    }

    pub fn control_url(&self) -> String {
        format!("http://{}/control", self.addr)
    }

    pub fn credentials(&self) -> &Credentials {
        &self.sim.credentials
    }

    /// Stops serving (in-flight requests, hung ones included, are dropped).
    pub async fn shutdown(mut self) {
        self.sim.generator.stop();
        self.server.abort();
        // Wait until the listener is closed so that the port refuses connections.
        let _ = (&mut self.server).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.generator.stop();
        self.server.abort();
    }
}

pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        inner: Mutex::new(Inner::new(config.seed)),
        seed: config.seed,
        base_url: format!("http://{addr}"),
        credentials: config.credentials,
        webhooks: webhook::Webhooks::new(),
        generator: generator::Runner::default(),
        oauth_nonces: oauth::Nonces::default(),
    });
    if let Some(generator) = config.generator {
        generator::start(&sim, generator).map_err(anyhow::Error::msg)?;
    }
    let app = router(sim.clone());
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "simulator server stopped");
        }
    });
    tracing::info!(%addr, "marketplace simulator listening");
    Ok(SimHandle { addr, sim, server })
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .nest(
            "/backmarket",
            guard::layer(backmarket::router(), &sim, Marketplace::BackMarket),
        )
        .nest(
            "/refurbed",
            guard::layer(refurbed::router(), &sim, Marketplace::Refurbed),
        )
        .nest(
            "/woocommerce",
            guard::layer(woocommerce::router(), &sim, Marketplace::WooCommerce),
        )
        .nest("/control", control::router())
        .with_state(sim)
}

/// A refusal from a marketplace handler, answered in that marketplace's format.
pub(crate) struct Reject {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Reject {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Reject {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn respond(self, mp: Marketplace) -> Response {
        api_error(mp, self.status, self.code, &self.message)
    }
}

/// An error answered in the marketplace's own error format.
pub(crate) fn api_error(
    mp: Marketplace,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    (
        status,
        axum::Json(api_error_body(mp, status, code, message)),
    )
        .into_response()
}

/// An error body in the marketplace's own shape.
pub(crate) fn api_error_body(
    mp: Marketplace,
    status: StatusCode,
    code: &str,
    message: &str,
) -> serde_json::Value {
    match mp {
        Marketplace::BackMarket => json!({
            "error": {"code": code, "message": message},
            "requestId": format!("sim-{}", rand::random::<u32>()),
        }),
        Marketplace::Refurbed => json!({
            "code": grpc_code(status),
            "message": message,
            "details": [],
        }),
        Marketplace::WooCommerce => json!({
            "code": code,
            "message": message,
            "data": {"status": status.as_u16()},
        }),
    }
}

/// The google.rpc code the Refurbed gateway puts in its error bodies.
pub(crate) fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 10,
        429 => 8,
        503 => 14,
        504 => 4,
        _ => 13,
    }
}
