//! The API in a test: served in-process on an ephemeral port with this
//! test's database and bus (and an outbox relay, as the api worker runs),
//! plus a small JSON client that signs its calls with a token.

use crate::TestEnv;
use reqwest::StatusCode;
use serde_json::Value;
use stockfleet::admin::tokens::{self, Role};
use stockfleet::api::{self, Api, Options};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct ApiServer {
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    relay: JoinHandle<anyhow::Result<()>>,
}

impl TestEnv {
    pub async fn api(&self) -> ApiServer {
        let shutdown = CancellationToken::new();
        let state = Api::new(self.db.clone(), self.bus.clone(), Options::default());
        let (addr, server) = api::serve("127.0.0.1:0".parse().unwrap(), state, shutdown.clone())
            .await
            .expect("serve the API");
        let relay = tokio::spawn({
            let (db, bus, stop) = (self.db.clone(), self.bus.clone(), shutdown.clone());
            let tasks = stockfleet::supervise::Tasks::new(stop.clone());
            async move { stockfleet::bus::outbox::run_relay(db, &bus, &tasks, stop).await }
        });
        ApiServer {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            shutdown,
            server,
            relay,
        }
    }

    /// A new API token for `name` with `role`.
    pub async fn token(&self, name: &str, role: Role) -> String {
        tokens::create(&self.db, name, role)
            .await
            .expect("create token")
    }
}

impl ApiServer {
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("API answers");
        json(response).await
    }

    /// A page as the signed-in browser gets it (the dashboard's cookie): (status, body).
    pub async fn page(&self, token: &str, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("stockfleet_token={token}"))
            .send()
            .await
            .expect("API answers");
        (response.status(), response.text().await.unwrap_or_default())
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, token, body).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("API answers");
        json(response).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap();
        self.relay.await.unwrap().expect("outbox relay");
    }
}

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}
