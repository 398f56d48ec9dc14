//! End to end: how long a seller waits between an order appearing on a
//! marketplace and the marketplace showing the lowered quantity.
//!
//! `cargo bench -p stockfleet-tests --bench fleet_latency [-- SECONDS] [pooled]`
//! (`pooled`: only the pooled phases, on a fleet fresh from seeding)
//!
//! The worker binaries run as separate processes against the real services
//! and the simulator (in this process), at the default marketplace settings
//! (no poll interval forced: new orders are polled as often as the request
//! budget allows). The simulator's generator places
//! orders at 1, 20 and 200 orders/s for SECONDS each (default 20; 200/s
//! runs a quarter of it) over 100 SKUs on all three marketplaces with the
//! seeded rate limits; then 20/s with WooCommerce by polling only (no
//! webhooks); then 1 and 20/s on 20 pooled SKUs (one count shared by the
//! three marketplaces: placed on one → every other one shows the lowered
//! quantity); then 20/s with every rate limit lifted (the fleet's
//! own share). Each phase prints the requests per minute per marketplace,
//! caller and class against the limit.
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
use stockfleet_tests::bench_fleet::{BenchFleet, RequestCounts, machine};

const SKUS: usize = 100;
/// The first this many seeded SKUs are pooled for the pooled phases.
const POOLED: usize = 20;

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

/// An order the generator placed: (marketplace, order id, SKU, placed at).
type Placed = (String, String, String, DateTime<Utc>);

/// Runs the generator for the phase (over `skus`, or every listing when
/// empty) and returns the orders it placed once the fleet has settled them.
async fn generate(fleet: &BenchFleet, phase: &Phase, seed: u64, skus: &[String]) -> Vec<Placed> {
    let since = Utc::now();
    let skus: Vec<serde_json::Value> = skus
        .iter()
        .map(|sku| serde_json::json!({"sku": sku}))
        .collect();
    let config = serde_json::json!({"seed": seed, "orders_per_second": phase.rate, "skus": skus});
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
    let placed: Vec<Placed> = orders
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
    placed
}

/// When each order was stored and locked, from `since`.
async fn stored_since(
    fleet: &BenchFleet,
    since: DateTime<Utc>,
) -> HashMap<OrderKey, (DateTime<Utc>, Option<DateTime<Utc>>)> {
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
    rows.into_iter()
        .map(|r| {
            (
                (r.get("code"), r.get("external_id")),
                (r.get("first_seen_at"), r.get("locked_at")),
            )
        })
        .collect()
}

/// A quantity the simulator accepted: when, and how many.
type Accepted = (DateTime<Utc>, i64);

/// Every quantity the simulator accepted, by (marketplace, SKU), in time order.
async fn pushes(fleet: &BenchFleet) -> HashMap<(String, String), Vec<Accepted>> {
    let history = fleet.sim_get("/pushes").await["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut pushes: HashMap<(String, String), Vec<Accepted>> = HashMap::new();
    for push in &history {
        let key = (
            push["marketplace"].as_str().unwrap_or("").to_owned(),
            push["sku"].as_str().unwrap_or("").to_owned(),
        );
        let at = push["at"].as_str().and_then(|t| t.parse().ok());
        if let (Some(at), Some(quantity)) = (at, push["quantity"].as_i64()) {
            pushes.entry(key).or_default().push((at, quantity));
        }
    }
    for times in pushes.values_mut() {
        times.sort();
    }
    pushes
}

async fn run_phase(fleet: &BenchFleet, phase: &Phase, seed: u64) {
    let since = Utc::now();
    let calls_before = requests_total(fleet).await;
    let rates = RequestCounts::take(fleet).await;
    let placed = generate(fleet, phase, seed, &[]).await;
    let calls = requests_total(fleet).await - calls_before;
    let stored = stored_since(fleet, since).await;
    let pushes = pushes(fleet).await;
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
            .and_then(|times| times.iter().find(|(t, _)| *t >= locked).copied());
        match pushed {
            Some((pushed, _)) => steps.pushed.push(seconds(locked, pushed)),
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
    rates.print_since(fleet).await;
}

/// Orders on pooled SKUs: placed on one marketplace → every other
/// marketplace of the pool shows no more than a quantity computed after the
/// lock (the first push after it, which coalesces the orders before it).
/// A marketplace whose last accepted quantity before the lock was already
/// no more than that (an increase still on its way to it) never showed the
/// sold unit: its wait is 0, counted apart as "already below".
async fn run_pooled_phase(fleet: &BenchFleet, phase: &Phase, seed: u64, pooled: &[String]) {
    let since = Utc::now();
    let rates = RequestCounts::take(fleet).await;
    // What each listing shows before the phase (at most: its own orders lower it).
    let at_start = fleet.sim_get("/pushes").await["current"].clone();
    let placed = generate(fleet, phase, seed, pooled).await;
    let stored = stored_since(fleet, since).await;
    let pushes = pushes(fleet).await;
    let (mut everywhere, mut locked_at, mut no_push, mut unfinished) = (vec![], vec![], 0, 0);
    let mut already_below = 0;
    // Placed → that marketplace showed the lowered quantity, per other
    // marketplace: which one holds the whole back.
    let mut each: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (mp, id, sku, at) in &placed {
        let Some(&(_, Some(locked))) = stored.get(&(mp.clone(), id.clone())) else {
            unfinished += 1;
            continue;
        };
        locked_at.push(seconds(*at, locked));
        let others = ["backmarket", "refurbed", "woocommerce"]
            .into_iter()
            .filter(|other| *other != mp);
        let mut last = Some(*at);
        for other in others {
            let accepted = pushes.get(&(other.to_owned(), sku.clone()));
            let all = accepted.map_or(&[][..], Vec::as_slice);
            // The quantity computed after the lock; shown from the first
            // accepted quantity at or below it (from placement on).
            let lowered = all.iter().find(|(t, _)| *t >= locked).map(|(_, q)| *q);
            let before = all
                .iter()
                .rev()
                .find(|(t, _)| *t < *at)
                .map(|(_, q)| *q)
                .or_else(|| at_start[other][sku.as_str()].as_i64());
            let shown = match (before, lowered) {
                (Some(before), Some(lowered)) if before <= lowered => {
                    already_below += 1;
                    Some(*at)
                }
                (_, Some(lowered)) => all
                    .iter()
                    .find(|(t, q)| *t >= *at && *q <= lowered)
                    .map(|(t, _)| *t),
                (_, None) => None,
            };
            if let Some(shown) = shown {
                each.entry(other).or_default().push(seconds(*at, shown));
            }
            last = match (last, shown) {
                (Some(last), Some(shown)) => Some(last.max(shown)),
                _ => None,
            };
        }
        match last {
            Some(last) => everywhere.push(seconds(*at, last)),
            // The buffer rounded the same: nothing to tell the others.
            None => no_push += 1,
        }
    }
    println!(
        "\n{} at {} orders/s for {} s: {} orders on {} pooled SKUs",
        phase.label,
        phase.rate,
        phase.seconds,
        placed.len(),
        pooled.len()
    );
    println!(
        "  placed→locked s {}   placed→every other marketplace showed the lowered quantity s {}   (p50/p95/p99/max)   no push needed {no_push}, already below {already_below}, unfinished {unfinished}",
        percentiles(&mut locked_at),
        percentiles(&mut everywhere)
    );
    for (other, mut waits) in each {
        println!(
            "  placed elsewhere→{other} showed it s {}",
            percentiles(&mut waits)
        );
    }
    rates.print_since(fleet).await;
}

/// Waits (at most 300 s) until every marketplace shows the pooled
/// quantities: pooling raised them all (one count for three), and a
/// marketplace still showing the old, lower quantity never shows a sold
/// unit, so a phase started before measures nothing.
async fn pooled_quantities_shown(fleet: &BenchFleet, pooled: &[String]) {
    let started = Instant::now();
    loop {
        let window = stockfleet::domain::listing::Window {
            limit: 1000,
            offset: 0,
        };
        let every = stockfleet::admin::stock::StockFilter::every(window);
        let rows = stockfleet::admin::stock::rows(&fleet.db, &every)
            .await
            .expect("stock rows")
            .items;
        let behind = rows
            .iter()
            .filter(|r| pooled.contains(&r.sku) && r.last_api_quantity != Some(r.buffered as i32))
            .count();
        if behind == 0 {
            println!(
                "\npooled quantities shown everywhere {:.1} s after pooling",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{behind} pooled rows not pushed after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    // `pooled`: the pooled phases only (a fleet fresh from seeding).
    let pooled_only = std::env::args().any(|a| a == "pooled");
    let started = Instant::now();
    let mut fleet = BenchFleet::new("latency").await;
    fleet.seed(SKUS, 100_000).await;
    for worker in ["poller", "locker", "reducer", "publisher", "api"] {
        fleet.spawn(worker, &[]).await;
    }
    fleet.webhooks_to_api().await;
    println!(
        "fleet_latency on {}; {SKUS} SKUs x 3 marketplaces, default marketplace settings (new orders polled as the budget allows), seeded rate limits, one process of each worker; WooCommerce by webhook and by polling",
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
    if !pooled_only {
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
    }
    let pooled: Vec<String> = (1..=POOLED).map(|n| format!("B-{n:06}")).collect();
    for sku in &pooled {
        stockfleet::admin::pools::pool(&fleet.db, sku, None, "bench")
            .await
            .expect("pool a seeded SKU");
    }
    pooled_quantities_shown(&fleet, &pooled).await;
    for (n, rate) in [1.0, 20.0].into_iter().enumerate() {
        let phase = Phase {
            label: "pooled, defaults, seeded limits",
            rate,
            seconds,
        };
        run_pooled_phase(&fleet, &phase, 20 + n as u64, &pooled).await;
    }
    if !pooled_only {
        fleet.lift_rate_limits().await;
        let lifted = Phase {
            label: "rate limits lifted (the fleet's own share)",
            rate: 20.0,
            seconds,
        };
        run_phase(&fleet, &lifted, 11).await;
    }
    println!(
        "\nfleet_latency took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    fleet.stop().await;
}
