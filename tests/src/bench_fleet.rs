//! A whole fleet for the end-to-end benchmarks: its own database (on
//! `BENCH_DATABASE_BASE`, default the local PostgreSQL) and bus prefix, the
//! simulator in this process, the worker binaries as separate processes as
//! in production, and a catalog seeded in bulk.

use crate::{binary_path, free_port};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stockfleet_sim::{SimConfig, SimHandle};
use tokio::process::Child;

pub struct BenchFleet {
    pub database_url: String,
    pub prefix: String,
    pub db: PgPool,
    pub sim: SimHandle,
    pub api_addr: String,
    workers: Vec<(String, u16, Child)>,
    http: reqwest::Client,
}

/// The machine a figure was measured on.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024 / 1024);
    format!("{cores} cores ({cpu}), {memory} GiB")
}

impl BenchFleet {
    /// A fresh database and simulator; every marketplace points at the simulator.
    pub async fn new(label: &str) -> Self {
        let base = std::env::var("BENCH_DATABASE_BASE")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let id = &uuid::Uuid::now_v7().simple().to_string()[20..];
        let database_url = format!("{base}/bench_{label}_{id}");
        let db = stockfleet::db::migrate(&database_url)
            .await
            .expect("migrate");
        let sim = stockfleet_sim::start(SimConfig::default())
            .await
            .expect("simulator");
        for code in ["backmarket", "refurbed", "woocommerce"] {
            sqlx::query("UPDATE marketplaces SET base_url = $2 WHERE code = $1")
                .bind(code)
                .bind(sim.base_url(code))
                .execute(&db)
                .await
                .expect("point the marketplace at the simulator");
        }
        BenchFleet {
            database_url,
            prefix: format!("bench{label}{id}"),
            db,
            sim,
            api_addr: format!("127.0.0.1:{}", free_port()),
            workers: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    pub fn control(&self, path: &str) -> String {
        format!("{}{path}", self.sim.control_url())
    }

    pub async fn sim_get(&self, path: &str) -> serde_json::Value {
        let answer = self
            .http
            .get(self.control(path))
            .send()
            .await
            .expect("simulator");
        answer.json().await.expect("simulator JSON")
    }

    pub async fn sim_send(&self, method: reqwest::Method, path: &str, body: serde_json::Value) {
        self.http
            .request(method, self.control(path))
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("simulator control call");
    }

    /// `skus` SKUs with `units` each on every marketplace (one `manual`
    /// history row per stock row, so the invariants hold), each marketplace
    /// showing buffered(available) as if pushed already.
    pub async fn seed(&self, skus: usize, units: i32) {
        sqlx::query(
            "INSERT INTO variations (sku) SELECT 'B-' || lpad(g::text, 6, '0') FROM generate_series(1, $1) g",
        )
        .bind(skus as i32)
        .execute(&self.db)
        .await
        .expect("variations");
        sqlx::query(
            "INSERT INTO marketplace_stock (variation_id, marketplace_id, listed_stock, stock_known)
             SELECT v.id, m.id, $1, true FROM variations v CROSS JOIN marketplaces m",
        )
        .bind(units)
        .execute(&self.db)
        .await
        .expect("stock rows");
        sqlx::query(
            "INSERT INTO marketplace_stock_history (stock_id, variation_id, marketplace_id, change_type,
                 listed_before, listed_after, locked_before, locked_after, available_before,
                 available_after, quantity_change, actor, notes)
             SELECT id, variation_id, marketplace_id, 'manual', 0, listed_stock, 0, 0, 0,
                    listed_stock, listed_stock, 'bench', 'seeded' FROM marketplace_stock",
        )
        .execute(&self.db)
        .await
        .expect("history");
        use futures::StreamExt;
        let mut offset = 0;
        loop {
            let window = stockfleet::domain::listing::Window { limit: 500, offset };
            let every = stockfleet::admin::stock::StockFilter::every(window);
            let rows = stockfleet::admin::stock::rows(&self.db, &every)
                .await
                .expect("rows")
                .items;
            offset += rows.len() as i64;
            let (ids, shown): (Vec<i64>, Vec<i32>) =
                rows.iter().map(|r| (r.stock_id, r.buffered as i32)).unzip();
            sqlx::query(
                "UPDATE marketplace_stock s SET last_api_quantity = u.shown, last_synced_at = now()
                 FROM unnest($1::bigint[], $2::int[]) AS u(id, shown) WHERE s.id = u.id",
            )
            .bind(&ids)
            .bind(&shown)
            .execute(&self.db)
            .await
            .expect("last pushed");
            futures::stream::iter(&rows)
                .for_each_concurrent(16, |row| async move {
                    let body = serde_json::json!({"marketplace": row.marketplace, "sku": row.sku, "quantity": row.buffered});
                    self.sim_send(reqwest::Method::POST, "/listings", body).await;
                })
                .await;
            if rows.len() < 500 {
                return;
            }
        }
    }

    /// Starts a worker binary (`poller`, `locker`, ...) and waits for its /readyz.
    pub async fn spawn(&mut self, worker: &str, extra_env: &[(&str, &str)]) {
        let port = free_port();
        let credentials = self.sim.credentials().clone();
        let mut command =
            tokio::process::Command::new(binary_path(&format!("stockfleet-{worker}")));
        command
            .env("DATABASE_URL", &self.database_url)
            .env("DATABASE_POOL_SIZE", "6")
            .env("BUS_PREFIX", &self.prefix)
            .env("HEALTH_ADDR", format!("127.0.0.1:{port}"))
            .env("API_ADDR", &self.api_addr)
            // `BENCH_WORKER_LOG` (a RUST_LOG filter) shows why a figure is what it is.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_WORKER_LOG").unwrap_or_else(|_| "error".into()),
            )
            .env("LOG_FORMAT", "text")
            .env("WEBHOOK_SECRET_WOOCOMMERCE", "bench-secret")
            .env("BACKMARKET_TOKEN", &credentials.backmarket_token)
            .env("REFURBED_TOKEN", &credentials.refurbed_token)
            .env(
                "WOOCOMMERCE_CREDENTIALS",
                format!(
                    "{}:{}",
                    credentials.woocommerce_key, credentials.woocommerce_secret
                ),
            )
            .kill_on_drop(true);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .expect("run `cargo build --workspace --bins` first");
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(180);
        while !self
            .http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "{worker} not ready within 180 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.workers.push((worker.to_owned(), port, child));
    }

    /// Resident memory (MiB) of each running worker, by name.
    pub fn resident_mib(&self) -> Vec<(String, f64)> {
        self.workers
            .iter()
            .filter_map(|(name, _, child)| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", child.id()?)).ok()?;
                let kb: f64 = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                Some((name.clone(), kb / 1024.0))
            })
            .collect()
    }

    /// Points the simulator's WooCommerce webhooks at the api.
    pub async fn webhooks_to_api(&self) {
        let hook = serde_json::json!({
            "url": format!("http://{}/webhooks/woocommerce/woocommerce", self.api_addr),
            "secret": "bench-secret",
        });
        self.sim_send(reqwest::Method::PUT, "/webhooks/woocommerce", hook)
            .await;
    }

    /// Lifts every rate limit: the simulator's and the fleet's own budget.
    pub async fn lift_rate_limits(&self) {
        for code in ["backmarket", "refurbed", "woocommerce"] {
            let none =
                serde_json::json!({"general": null, "listings": null, "quantity_updates": null});
            self.sim_send(reqwest::Method::PUT, &format!("/rate-limits/{code}"), none)
                .await;
        }
        for sql in [
            "UPDATE marketplaces SET rate_limit_requests = 100000, rate_limit_window_seconds = 10, quantity_update_limit = NULL",
            "UPDATE request_budgets SET requests = 100000",
        ] {
            sqlx::query(sql)
                .execute(&self.db)
                .await
                .expect("lift the fleet's limits");
        }
    }

    /// Stops the workers and removes the database.
    pub async fn stop(mut self) {
        for (_, _, child) in &mut self.workers {
            child.start_kill().ok();
            child.wait().await.ok();
        }
        self.db.close().await;
        let (base, name) = self.database_url.rsplit_once('/').expect("database URL");
        if let Ok(admin) = PgPool::connect(&format!("{base}/postgres")).await {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            // The name is ours (label and a UUID), never input.
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&admin)
                .await
                .ok();
        }
    }
}

/// Requests the simulator counted per (marketplace, caller, class), for the
/// requests a phase of a benchmark made against each limit.
pub struct RequestCounts {
    counts: BTreeMap<(String, String, String), u64>,
    limits: BTreeMap<(String, String), Option<f64>>,
    taken: Instant,
}

impl RequestCounts {
    pub async fn take(fleet: &BenchFleet) -> Self {
        let rates = fleet.sim_get("/requests/rates").await;
        let mut counts = BTreeMap::new();
        let mut limits = BTreeMap::new();
        for rate in rates.as_array().into_iter().flatten() {
            let text = |field: &str| rate[field].as_str().unwrap_or("?").to_owned();
            let (marketplace, caller, class) = (text("marketplace"), text("caller"), text("class"));
            limits.insert(
                (marketplace.clone(), class.clone()),
                rate["limit_per_minute"].as_f64(),
            );
            counts.insert(
                (marketplace, caller, class),
                rate["requests"].as_u64().unwrap_or(0),
            );
        }
        Self {
            counts,
            limits,
            taken: Instant::now(),
        }
    }

    /// Prints requests per minute since `self`, per marketplace, caller and
    /// class, beside the class's limit, and the requests over a limit.
    pub async fn print_since(&self, fleet: &BenchFleet) {
        let now = Self::take(fleet).await;
        let minutes = self.taken.elapsed().as_secs_f64() / 60.0;
        println!(
            "  {:<12} {:<10} {:<9} {:>9}  limit/min",
            "requests", "caller", "class", "per min"
        );
        for ((marketplace, caller, class), count) in &now.counts {
            let before = self
                .counts
                .get(&(marketplace.clone(), caller.clone(), class.clone()))
                .copied()
                .unwrap_or(0);
            let limit = now
                .limits
                .get(&(marketplace.clone(), class.clone()))
                .copied()
                .flatten()
                .map_or("none".to_owned(), |limit| format!("{limit:.0}"));
            println!(
                "  {:<12} {:<10} {:<9} {:>9.1}  {limit}",
                marketplace,
                caller,
                class,
                (count - before) as f64 / minutes.max(1.0 / 60.0)
            );
        }
        let violations = fleet.sim_get("/rate-limits").await;
        let over: Vec<String> = violations
            .as_object()
            .into_iter()
            .flatten()
            .map(|(marketplace, limits)| {
                format!(
                    "{marketplace} {}",
                    limits["violations"].as_u64().unwrap_or(0)
                )
            })
            .collect();
        println!(
            "  requests over a limit since the start: {}",
            over.join(", ")
        );
    }
}
