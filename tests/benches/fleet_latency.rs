//! End to end: how long a seller waits between an order appearing on a
//! marketplace and the marketplace showing the lowered quantity.
//!
//! `cargo bench -p stockfleet-tests --bench fleet_latency [-- SECONDS]`
//!
//! The worker binaries run as separate processes against the real services
//! and the simulator (in this process). The simulator's generator places
//! orders at 1, 20 and 200 orders/s for SECONDS each (default 20; 200/s
//! runs a quarter of it) over 100 SKUs on all three marketplaces with the
//! seeded rate limits; then 20/s with WooCommerce by polling only (no
//! webhooks), then 20/s with every rate limit lifted (the fleet's own share).
//! Per order: placed → stored (first_seen_at) → lock committed (locked_at)
//! → the row's next push accepted by the marketplace. Every marketplace we
//! serve takes ordered units off its listing by itself at placement, so it
//! shows the lowered quantity at once and no order needs a decrease: the
//! whole wait is placed → locked, the moment our ledger agrees with the
//! marketplace. The next push, when there is one, is an increase: the
//! buffer's share of the sold units given back once a poll covers it
//! (push_guard), shown for what it costs; "no push" counts the others.

use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use stockfleet_tests::bench_fleet::{BenchFleet, machine};

const SKUS: usize = 100;
const POLL_SECONDS: i32 = 5;

/// (marketplace, order id), or (marketplace, SKU) for pushes.
type OrderKey = (String, String);

struct Phase {
    label: &'static str,
    rate: f64,
    seconds: u64,
}

#[derive(Default)]
struct Steps {
    stored: Vec<f64>,
    locked: Vec<f64>,
    pushed: Vec<f64>,
    total: Vec<f64>,
    no_push: usize,
    unfinished: usize,
}

fn percentiles(values: &mut [f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    format!(
        "{:.2}/{:.2}/{:.2}/{:.2}",
        at(0.5),
        at(0.95),
        at(0.99),
        values[values.len() - 1]
    )
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).as_seconds_f64().max(0.0)
}

async fn requests_total(fleet: &BenchFleet) -> u64 {
    let rates = fleet.sim_get("/requests/rates").await;
    rates
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["requests"].as_u64())
        .sum()
}

/// Waits until every order placed since `since` is stored and locked and no
/// push has happened for 3 s (at most 120 s).
async fn settle(fleet: &BenchFleet, placed: usize, since: DateTime<Utc>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    let mut pushes = 0;
    while Instant::now() < deadline {
        let locked: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT (marketplace_id, order_external_id)) FROM marketplace_stock_locks WHERE created_at >= $1",
        )
        .bind(since)
        .fetch_one(&fleet.db)
        .await
        .unwrap();
        let now_pushes = fleet.sim_get("/pushes").await["history"]
            .as_array()
            .map_or(0, Vec::len);
        if now_pushes != pushes {
            pushes = now_pushes;
            quiet_since = Instant::now();
        }
        if locked as usize >= placed && quiet_since.elapsed() > Duration::from_secs(3) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_phase(fleet: &BenchFleet, phase: &Phase, seed: u64) {
    let since = Utc::now();
    let calls_before = requests_total(fleet).await;
    let config = serde_json::json!({"seed": seed, "orders_per_second": phase.rate});
    fleet
        .sim_send(reqwest::Method::POST, "/generator/start", config)
        .await;
    tokio::time::sleep(Duration::from_secs(phase.seconds)).await;
    fleet
        .sim_send(
            reqwest::Method::POST,
            "/generator/stop",
            serde_json::json!({}),
        )
        .await;
    let orders: Vec<serde_json::Value> = fleet
        .sim_get("/orders")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default();
    let placed: Vec<(String, String, String, DateTime<Utc>)> = orders
        .iter()
        .filter_map(|o| {
            let at: DateTime<Utc> = o["created_at"].as_str()?.parse().ok()?;
            (at >= since).then(|| {
                (
                    o["marketplace"].as_str().unwrap_or("").to_owned(),
                    o["id"].to_string(),
                    o["items"][0]["sku"].as_str().unwrap_or("").to_owned(),
                    at,
                )
            })
        })
        .collect();
    settle(fleet, placed.len(), since).await;
    let calls = requests_total(fleet).await - calls_before;
    let rows = sqlx::query(
        "SELECT m.code, o.external_id, o.first_seen_at, min(l.locked_at) AS locked_at
         FROM orders o JOIN marketplaces m ON m.id = o.marketplace_id
         LEFT JOIN marketplace_stock_locks l ON l.marketplace_id = o.marketplace_id AND l.order_external_id = o.external_id
         WHERE o.first_seen_at >= $1 GROUP BY 1, 2, 3",
    )
    .bind(since)
    .fetch_all(&fleet.db)
    .await
    .unwrap();
    let stored: HashMap<OrderKey, (DateTime<Utc>, Option<DateTime<Utc>>)> = rows
        .into_iter()
        .map(|r| {
            (
                (r.get("code"), r.get("external_id")),
                (r.get("first_seen_at"), r.get("locked_at")),
            )
        })
        .collect();
    let history = fleet.sim_get("/pushes").await["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut pushes: HashMap<(String, String), Vec<DateTime<Utc>>> = HashMap::new();
    for push in &history {
        let key = (
            push["marketplace"].as_str().unwrap_or("").to_owned(),
            push["sku"].as_str().unwrap_or("").to_owned(),
        );
        if let Some(at) = push["at"].as_str().and_then(|t| t.parse().ok()) {
            pushes.entry(key).or_default().push(at);
        }
    }
    let mut per_mp: BTreeMap<String, Steps> = BTreeMap::new();
    for (mp, id, sku, at) in &placed {
        let steps = per_mp.entry(mp.clone()).or_default();
        let Some(&(seen, Some(locked))) = stored.get(&(mp.clone(), id.clone())) else {
            steps.unfinished += 1;
            continue;
        };
        steps.stored.push(seconds(*at, seen));
        steps.locked.push(seconds(seen, locked));
        steps.total.push(seconds(*at, locked));
        let pushed = pushes
            .get(&(mp.clone(), sku.clone()))
            .and_then(|times| times.iter().find(|t| **t >= locked).copied());
        match pushed {
            Some(pushed) => steps.pushed.push(seconds(locked, pushed)),
            None => steps.no_push += 1,
        }
    }
    println!(
        "\n{} at {} orders/s for {} s: {} orders, {} API calls ({:.2} per order)",
        phase.label,
        phase.rate,
        phase.seconds,
        placed.len(),
        calls,
        calls as f64 / placed.len().max(1) as f64
    );
    println!(
        "  {:<12} {:>6}  {:<24} {:<24} {:<24} {:<24} {:>7} {:>10}",
        "marketplace",
        "orders",
        "placed→stored s",
        "stored→locked s",
        "whole: placed→locked s",
        "locked→next push s",
        "no push",
        "unfinished"
    );
    println!("  {:<12} {:>6}  (p50/p95/p99/max each)", "", "");
    for (mp, mut steps) in per_mp {
        let count = steps.stored.len() + steps.unfinished;
        println!(
            "  {:<12} {:>6}  {:<24} {:<24} {:<24} {:<24} {:>7} {:>10}",
            mp,
            count,
            percentiles(&mut steps.stored),
            percentiles(&mut steps.locked),
            percentiles(&mut steps.total),
            percentiles(&mut steps.pushed),
            steps.no_push,
            steps.unfinished
        );
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let started = Instant::now();
    let mut fleet = BenchFleet::new("latency").await;
    sqlx::query("UPDATE marketplaces SET order_poll_interval_seconds = $1")
        .bind(POLL_SECONDS)
        .execute(&fleet.db)
        .await
        .unwrap();
    fleet.seed(SKUS, 100_000).await;
    for worker in ["poller", "locker", "reducer", "publisher", "api"] {
        fleet.spawn(worker, &[]).await;
    }
    fleet.webhooks_to_api().await;
    println!(
        "fleet_latency on {}; {SKUS} SKUs x 3 marketplaces, new-orders poll every {POLL_SECONDS} s, seeded rate limits, one process of each worker; WooCommerce by webhook and by polling",
        machine()
    );
    let phases = [
        Phase {
            label: "seeded limits",
            rate: 1.0,
            seconds,
        },
        Phase {
            label: "seeded limits",
            rate: 20.0,
            seconds,
        },
        Phase {
            label: "seeded limits",
            rate: 200.0,
            seconds: (seconds / 4).max(2),
        },
    ];
    for (n, phase) in phases.iter().enumerate() {
        run_phase(&fleet, phase, n as u64 + 1).await;
    }
    fleet
        .sim_send(
            reqwest::Method::DELETE,
            "/webhooks/woocommerce",
            serde_json::json!({}),
        )
        .await;
    let polling = Phase {
        label: "seeded limits, WooCommerce by polling only",
        rate: 20.0,
        seconds,
    };
    run_phase(&fleet, &polling, 10).await;
    fleet.webhooks_to_api().await;
    fleet.lift_rate_limits().await;
    let lifted = Phase {
        label: "rate limits lifted (the fleet's own share)",
        rate: 20.0,
        seconds,
    };
    run_phase(&fleet, &lifted, 11).await;
    println!(
        "\nfleet_latency took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    fleet.stop().await;
}
