//! Helpers for the contract tests: an in-process simulator, adapters pointed
//! at it, and a small client for the control API.
#![allow(dead_code)] // each test binary uses a different subset

pub mod schema;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use stockfleet::marketplace::{
    Marketplace, MarketplaceConfig, MarketplaceError, MarketplaceKind, Secret, connect,
};
use stockfleet_sim::{Credentials, SimConfig, SimHandle};

/// Credentials distinctive enough to grep for in error messages.
pub fn credentials() -> Credentials {
    Credentials {
        backmarket_token: "BM-SECRET-TOKEN-123".into(),
        refurbed_token: "RF-SECRET-TOKEN-456".into(),
        woocommerce_key: "ck_SECRETKEY789".into(),
        woocommerce_secret: "cs_SECRETSECRET000".into(),
    }
}

pub struct Env {
    pub sim: SimHandle,
    pub control: Control,
}

pub async fn start() -> Env {
    let sim = stockfleet_sim::start(SimConfig {
        credentials: credentials(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let control = Control {
        client: reqwest::Client::new(),
        base: sim.control_url(),
    };
    Env { sim, control }
}

impl Env {
    /// A raw call to a marketplace API with its credentials (and Back
    /// Market's mandatory headers): `path` under the marketplace's base URL,
    /// or an absolute URL (Back Market's `next` links). Answers the status
    /// and the JSON body (null when there is none).
    pub async fn call(
        &self,
        code: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.sim.base_url(code))
        };
        let creds = self.sim.credentials();
        let request = reqwest::Client::new().request(method, url);
        let mut request = match code {
            "backmarket" => request
                .header("Authorization", format!("Basic {}", creds.backmarket_token))
                .header("User-Agent", "BM-stockfleet-tests;dev@example.com")
                .header("Accept-Language", "fr-fr"),
            "refurbed" => {
                request.header("Authorization", format!("Plain {}", creds.refurbed_token))
            }
            _ => request.basic_auth(&creds.woocommerce_key, Some(&creds.woocommerce_secret)),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the simulator answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn adapter(&self, code: &str) -> Arc<dyn Marketplace> {
        let credential = self.sim.credentials().for_marketplace(code).unwrap();
        self.adapter_with(code, &credential, Duration::from_secs(5))
    }

    pub fn adapter_with(
        &self,
        code: &str,
        credential: &str,
        timeout: Duration,
    ) -> Arc<dyn Marketplace> {
        adapter_at(code, &self.sim.base_url(code), credential, timeout)
    }
}

pub fn adapter_at(
    code: &str,
    base_url: &str,
    credential: &str,
    timeout: Duration,
) -> Arc<dyn Marketplace> {
    let kind: MarketplaceKind = code.parse().unwrap();
    let config = MarketplaceConfig {
        timeout,
        ..MarketplaceConfig::new(kind, base_url, Secret::new(credential))
    };
    connect(config).expect("adapter builds")
}

pub struct Control {
    client: reqwest::Client,
    base: String,
}

impl Control {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert!(status < 300, "GET {path}: {status} {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert!(status < 300, "POST {path}: {status} {body}");
        body
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.send(reqwest::Method::PUT, path, Some(body)).await;
        assert!(status < 300, "PUT {path}: {status} {body}");
        body
    }

    pub async fn listing(&self, marketplace: &str, sku: &str, quantity: i64) {
        self.post(
            "/listings",
            json!({"marketplace": marketplace, "sku": sku, "quantity": quantity}),
        )
        .await;
    }

    /// Creates an order; returns the simulator's view of it.
    pub async fn order(&self, marketplace: &str, items: &[(&str, u32)], status: &str) -> Value {
        let items: Vec<Value> = items
            .iter()
            .map(|(sku, q)| json!({"sku": sku, "quantity": q}))
            .collect();
        self.post(
            "/orders",
            json!({"marketplace": marketplace, "items": items, "status": status}),
        )
        .await
    }

    pub async fn order_view(&self, marketplace: &str, id: &str) -> Value {
        self.get(&format!("/orders/{marketplace}/{id}")).await
    }

    /// Moves every item of an order that can legally move to a raw status.
    pub async fn move_order(&self, marketplace: &str, id: &str, raw_status: &str) -> Value {
        let path = format!("/orders/{marketplace}/{id}/status");
        self.post(&path, json!({"status": raw_status})).await
    }

    pub async fn faults(&self, marketplace: &str, faults: Value) {
        self.put(&format!("/faults/{marketplace}"), faults).await;
    }

    pub async fn pushes(&self) -> Value {
        self.get("/pushes").await
    }
}

/// The id of an order created through the control API, as adapters see it.
pub fn id(order: &Value) -> String {
    order["id"].to_string()
}

/// A port nobody listens on.
pub fn closed_port_url(code: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/{code}")
}

/// Asserts that no configured credential leaks into an error's text.
pub fn assert_no_credentials(error: &MarketplaceError) {
    let texts = [error.to_string(), format!("{error:?}")];
    let creds = credentials();
    for text in texts {
        for secret in [
            &creds.backmarket_token,
            &creds.refurbed_token,
            &creds.woocommerce_key,
            &creds.woocommerce_secret,
            &"WRONG-SECRET-TOKEN".to_owned(),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "credential leaked in {text}"
            );
        }
    }
}
