//! The marketplace simulator in a test: started in-process, the test
//! database's marketplaces pointed at it, a small client for its control API,
//! and publishers (in-process or as processes) that talk to it.

use crate::{InProcessWorker, TestEnv};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use stockfleet::marketplace::{MarketplaceConfig, Secret};
use stockfleet::publisher::Options;
use stockfleet_sim::{SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

pub struct Sim {
    pub handle: SimHandle,
    client: reqwest::Client,
}

impl TestEnv {
    /// Starts a simulator for this test and points every marketplace at it.
    pub async fn sim(&self) -> Sim {
        let handle = stockfleet_sim::start(SimConfig::default())
            .await
            .expect("simulator starts");
        for code in ["backmarket", "refurbed", "woocommerce"] {
            sqlx::query("UPDATE marketplaces SET base_url = $2 WHERE code = $1")
                .bind(code)
                .bind(handle.base_url(code))
                .execute(&self.db)
                .await
                .expect("point the marketplace at the simulator");
        }
        Sim {
            handle,
            client: reqwest::Client::new(),
        }
    }

    /// Starts a publisher inside this process, speaking to `sim`.
    pub async fn start_publisher(&self, sim: &Sim) -> InProcessWorker {
        self.start_publisher_with(self.settings.clone(), sim, Duration::from_secs(3600))
            .await
    }

    /// A publisher with its own settings and reconciliation-schedule hour.
    pub async fn start_publisher_with(
        &self,
        settings: stockfleet::config::Settings,
        sim: &Sim,
        schedule_hour: Duration,
    ) -> InProcessWorker {
        self.uses_retry_delays(&settings);
        let credentials = sim.handle.credentials().clone();
        let configure: stockfleet::publisher::Configure = Arc::new(move |row| {
            let kind = row.kind.parse().expect("marketplace kind");
            // By kind: a marketplace added under another code speaks the same API.
            let credential = credentials.for_marketplace(&row.kind).unwrap_or_default();
            let mut config = MarketplaceConfig::new(kind, &row.base_url, Secret::new(credential));
            config.code = row.code.clone();
            config.timeout = Duration::from_secs(2);
            Ok(config)
        });
        let shutdown = CancellationToken::new();
        let worker = stockfleet::worker::Worker::start("test", settings, None, shutdown.clone())
            .await
            .expect("start publisher");
        let options = Options {
            configure,
            schedule_hour,
            refresh: Duration::from_millis(200),
            ..Options::default()
        };
        let task = tokio::spawn(stockfleet::publisher::run(worker, options));
        InProcessWorker { shutdown, task }
    }

    /// Records a successful new-orders poll of `marketplace` that started now.
    pub async fn orders_polled(&self, marketplace: &str) {
        sqlx::query(
            "INSERT INTO sync_runs (marketplace_id, sync_type, trigger, status, finished_at)
             SELECT id, 'new', 'schedule', 'succeeded', now() FROM marketplaces WHERE code = $1",
        )
        .bind(marketplace)
        .execute(&self.db)
        .await
        .expect("record a poll");
    }

    /// Sets a marketplace's publisher rate limit.
    pub async fn set_rate_limit(&self, marketplace: &str, requests: i32, window_seconds: i32) {
        sqlx::query(
            "UPDATE marketplaces SET rate_limit_requests = $2, rate_limit_window_seconds = $3 WHERE code = $1",
        )
        .bind(marketplace)
        .bind(requests)
        .bind(window_seconds)
        .execute(&self.db)
        .await
        .expect("set rate limit");
    }

    /// The publisher's cap on quantity updates: `Some((updates, seconds))`, or none.
    pub async fn set_quantity_cap(&self, marketplace: &str, cap: Option<(i32, i32)>) {
        let change = stockfleet::admin::marketplaces::MarketplaceChange {
            quantity_updates: Some(cap),
            ..Default::default()
        };
        stockfleet::admin::marketplaces::set(&self.db, marketplace, &change)
            .await
            .expect("set the quantity cap")
            .expect("a known marketplace");
    }

    /// Sets listed stock of `sku` on `marketplace` the way an operator does.
    pub async fn set_stock_on(&self, marketplace: &str, sku: &str, listed: i32) {
        stockfleet::admin::stock::correct(
            &self.db,
            sku,
            marketplace,
            stockfleet::admin::stock::Correction::Create(listed),
            "test",
            "initial count",
        )
        .await
        .expect("set stock");
    }

    /// Stocks each SKU with `listed` units on each of the three marketplaces.
    pub async fn stock_everywhere(&self, skus: &[&str], listed: i32) {
        for marketplace in ["backmarket", "refurbed", "woocommerce"] {
            for sku in skus {
                self.set_stock_on(marketplace, sku, listed).await;
            }
        }
    }

    /// A poller mid-way through a Back Market run: `orders` orders placed
    /// over `skus`, pages slowed to 150 ms (50 orders each), and the poller
    /// started and past its first page.
    pub async fn poller_mid_run(
        &self,
        sim: &Sim,
        skus: &[&str],
        orders: usize,
    ) -> tokio::process::Child {
        for n in 0..orders {
            sim.place("backmarket", skus[n % skus.len()], 1).await;
        }
        sim.faults("backmarket", json!({"latency_ms": 150})).await;
        let poller = self.spawn("stockfleet-poller");
        crate::eventually("the first run is mid-way", || async {
            self.scalar("SELECT count(*) FROM orders").await >= 50
        })
        .await;
        poller
    }

    /// (buffered(available), last_api_quantity) of every row of a marketplace, by SKU.
    pub async fn expected_quantities(
        &self,
        marketplace: &str,
    ) -> std::collections::BTreeMap<String, (i64, Option<i64>)> {
        let mut expected = std::collections::BTreeMap::new();
        let skus: Vec<String> = sqlx::query_scalar(
            "SELECT v.sku FROM marketplace_stock s JOIN variations v ON v.id = s.variation_id
             JOIN marketplaces m ON m.id = s.marketplace_id WHERE m.code = $1 AND s.stock_known",
        )
        .bind(marketplace)
        .fetch_all(&self.db)
        .await
        .expect("rows");
        for sku in skus {
            let rows = stockfleet::admin::stock::show(&self.db, &sku, None)
                .await
                .expect("show");
            let row = rows
                .into_iter()
                .find(|row| row.marketplace == marketplace)
                .expect("row");
            expected.insert(
                sku,
                (
                    i64::from(row.buffered),
                    row.last_api_quantity.map(i64::from),
                ),
            );
        }
        expected
    }

    /// Whether the simulator shows buffered(available) for every known row of
    /// `marketplace` and `last_api_quantity` says the same (invariant 5).
    pub async fn in_sync(&self, sim: &Sim, marketplace: &str) -> bool {
        let shown = sim.quantities(marketplace).await;
        self.expected_quantities(marketplace)
            .await
            .into_iter()
            .all(|(sku, (buffered, last))| {
                shown.get(&sku) == Some(&buffered) && last == Some(buffered)
            })
    }
}

impl Sim {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.handle.control_url());
        let mut request = self.client.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control API answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    /// Creates (or resets) a listing with a quantity.
    pub async fn listing(&self, marketplace: &str, sku: &str, quantity: i64) {
        self.post(
            "/listings",
            json!({"marketplace": marketplace, "sku": sku, "quantity": quantity}),
        )
        .await;
    }

    /// What the marketplace shows now, by SKU.
    pub async fn quantities(&self, marketplace: &str) -> std::collections::BTreeMap<String, i64> {
        let pushes = self.get("/pushes").await;
        pushes["current"][marketplace]
            .as_object()
            .map(|listings| {
                listings
                    .iter()
                    .map(|(sku, q)| (sku.clone(), q.as_i64().unwrap_or(-1)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn quantity(&self, marketplace: &str, sku: &str) -> Option<i64> {
        self.quantities(marketplace).await.get(sku).copied()
    }

    /// How many requests a marketplace received on a path ending in
    /// `suffix` (the query string aside).
    pub async fn requests_to(&self, marketplace: &str, suffix: &str) -> usize {
        let log = self
            .get(&format!("/requests?marketplace={marketplace}"))
            .await;
        log.as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["path"].as_str()?.split('?').next())
            .filter(|path| path.ends_with(suffix))
            .count()
    }

    /// Stock writes received through a marketplace's API.
    pub async fn pushes(&self, marketplace: &str) -> Vec<(String, i64)> {
        let pushes = self.get("/pushes").await;
        pushes["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|push| push["marketplace"] == marketplace)
            .map(|push| {
                (
                    push["sku"].as_str().unwrap_or_default().to_owned(),
                    push["quantity"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    pub async fn violations(&self, marketplace: &str) -> u64 {
        self.get("/rate-limits").await[marketplace]["violations"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Sets the simulator's limits: every request, and the stock endpoints.
    pub async fn rate_limits(&self, marketplace: &str, general: Value, listings: Value) {
        self.put(
            &format!("/rate-limits/{marketplace}"),
            json!({"general": general, "listings": listings}),
        )
        .await;
    }

    pub async fn faults(&self, marketplace: &str, faults: Value) {
        self.put(&format!("/faults/{marketplace}"), faults).await;
    }

    pub async fn clear_faults(&self, marketplace: &str) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/faults/{marketplace}"),
            None,
        )
        .await;
    }

    /// Places an order on the simulated marketplace (which decrements its quantity).
    pub async fn order(&self, marketplace: &str, sku: &str, quantity: u32) -> Value {
        self.post(
            "/orders",
            json!({"marketplace": marketplace, "items": [{"sku": sku, "quantity": quantity}]}),
        )
        .await
    }
}

impl TestEnv {
    /// Polls every marketplace's orders (new, modified, care, incomplete)
    /// every `seconds`: the new-orders poll's fastest and slowest interval both.
    pub async fn poll_every(&self, seconds: i32) {
        sqlx::query(
            "UPDATE marketplaces SET order_poll_interval_seconds = $1, order_poll_fastest_seconds = $1,
                    care_poll_interval_seconds = $1, incomplete_poll_interval_seconds = $1",
        )
        .bind(seconds)
        .execute(&self.db)
        .await
        .expect("set poll intervals");
    }
}

impl Sim {
    /// Places an order of one item; returns its id.
    pub async fn place(&self, marketplace: &str, sku: &str, quantity: u32) -> String {
        let order = self.order(marketplace, sku, quantity).await;
        order["id"].to_string().trim_matches('"').to_owned()
    }

    /// Moves every item of an order that can legally move to a raw status.
    pub async fn move_order(&self, marketplace: &str, id: &str, raw_status: &str) {
        self.post(
            &format!("/orders/{marketplace}/{id}/status"),
            json!({"status": raw_status}),
        )
        .await;
    }
}
