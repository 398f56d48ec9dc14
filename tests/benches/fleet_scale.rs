//! How the fleet's cost grows with the number of stock rows.
//!
//! `cargo bench -p stockfleet-tests --bench fleet_scale [-- ROWS ...]`
//!
//! For 1,000, 10,000 and 100,000 stock rows (a third per marketplace; other
//! sizes as arguments), each on a fresh database with the simulator showing
//! every row's buffered quantity already: a forced full reconciliation of all
//! three marketplaces (enqueue, then until the publisher queues and the outbox
//! are idle) with its API calls, `stockfleet validate`, the dashboard's
//! overview and the API's first stock page, the publisher's and poller's
//! resident memory, and the database size. Rate limits are lifted, so the
//! figures are the fleet's own cost; at the seeded limits a reconciliation
//! takes at least its API calls divided by the limit (printed). The growth
//! factor between sizes is printed; one above 1.5 × the size factor is named.

use std::time::{Duration, Instant};
use stockfleet::admin::tokens::{self, Role};
use stockfleet::poller::Trigger;
use stockfleet_tests::audit::{AuditConfig, Fleet, wait_for_idle};
use stockfleet_tests::bench_fleet::{BenchFleet, machine};

#[derive(Debug, Clone)]
struct Figures {
    rows: usize,
    reconcile_s: f64,
    reconcile_calls: u64,
    validate_s: f64,
    overview_ms: f64,
    page_ms: f64,
    publisher_mib: f64,
    poller_mib: f64,
    database_mib: f64,
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

/// The best of three GETs, in milliseconds.
async fn timed_get(url: &str, token: &str) -> f64 {
    let client = reqwest::Client::new();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = client
            .get(url)
            .bearer_auth(token)
            .header("cookie", format!("stockfleet_token={token}"))
            .send()
            .await
            .expect("api answers");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        answer.bytes().await.expect("body");
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
    }
    best
}

async fn measure(rows: usize) -> Figures {
    let mut fleet = BenchFleet::new("scale").await;
    fleet.seed(rows.div_ceil(3), 10).await;
    fleet.lift_rate_limits().await;
    for worker in ["publisher", "poller", "api"] {
        fleet.spawn(worker, &[]).await;
    }
    let settings = stockfleet::config::Settings {
        database_url: fleet.database_url.clone(),
        bus_prefix: fleet.prefix.clone(),
        ..Default::default()
    };
    let audit = AuditConfig {
        settings,
        sim: format!("http://{}", fleet.sim.addr()),
        management_url: Some(stockfleet::admin::queues::DEFAULT_MANAGEMENT_URL.into()),
        idle_timeout: Duration::from_secs(900),
        converge: Duration::ZERO,
    };
    let watcher = Fleet::connect(&audit).await.expect("connect");
    wait_for_idle(&watcher, Duration::from_secs(60))
        .await
        .expect("idle");
    let calls_before = requests_total(&fleet).await;
    let started = Instant::now();
    for code in ["backmarket", "refurbed", "woocommerce"] {
        stockfleet::reconcile::run(&fleet.db, code, true, Trigger::Manual)
            .await
            .expect("reconcile");
    }
    let idle = wait_for_idle(&watcher, Duration::from_secs(900))
        .await
        .expect("idle");
    let reconcile_s = started.elapsed().as_secs_f64();
    assert_eq!(
        idle.verdict,
        stockfleet_tests::audit::Verdict::Ok,
        "{}",
        idle.result
    );
    let reconcile_calls = requests_total(&fleet).await - calls_before;
    let started = Instant::now();
    stockfleet::admin::validate::validate(&fleet.db, Duration::from_secs(72 * 3600))
        .await
        .expect("validate");
    let validate_s = started.elapsed().as_secs_f64();
    let token = tokens::create(&fleet.db, "bench", Role::Viewer)
        .await
        .expect("token");
    let overview_ms = timed_get(&format!("http://{}/", fleet.api_addr), &token).await;
    let page_ms = timed_get(
        &format!("http://{}/api/v1/stock?limit=100", fleet.api_addr),
        &token,
    )
    .await;
    let memory = fleet.resident_mib();
    let mib = |name: &str| {
        memory
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, m)| *m)
    };
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&fleet.db)
        .await
        .unwrap();
    let figures = Figures {
        rows,
        reconcile_s,
        reconcile_calls,
        validate_s,
        overview_ms,
        page_ms,
        publisher_mib: mib("publisher"),
        poller_mib: mib("poller"),
        database_mib: bytes as f64 / 1024.0 / 1024.0,
    };
    watcher.close().await;
    fleet.stop().await;
    figures
}

fn print(all: &[Figures]) {
    println!(
        "\n{:>8} {:>12} {:>10} {:>14} {:>10} {:>11} {:>10} {:>13} {:>11} {:>9}",
        "rows",
        "reconcile s",
        "API calls",
        "at limits ≥ s",
        "validate s",
        "overview ms",
        "page ms",
        "publisher MiB",
        "poller MiB",
        "db MiB"
    );
    for f in all {
        // Back Market's listing limit (20 per 10 s) paces its third of the calls.
        let at_limits = f.reconcile_calls as f64 / 3.0 / 2.0;
        println!(
            "{:>8} {:>12.2} {:>10} {:>14.0} {:>10.3} {:>11.1} {:>10.1} {:>13.1} {:>11.1} {:>9.1}",
            f.rows,
            f.reconcile_s,
            f.reconcile_calls,
            at_limits,
            f.validate_s,
            f.overview_ms,
            f.page_ms,
            f.publisher_mib,
            f.poller_mib,
            f.database_mib
        );
    }
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let size = b.rows as f64 / a.rows as f64;
        let growth = [
            ("reconcile time", b.reconcile_s / a.reconcile_s),
            (
                "API calls",
                b.reconcile_calls as f64 / a.reconcile_calls.max(1) as f64,
            ),
            ("validate", b.validate_s / a.validate_s),
            ("overview", b.overview_ms / a.overview_ms),
            ("stock page", b.page_ms / a.page_ms),
            ("publisher memory", b.publisher_mib / a.publisher_mib),
            ("poller memory", b.poller_mib / a.poller_mib),
            ("database size", b.database_mib / a.database_mib),
        ];
        let text: Vec<String> = growth
            .iter()
            .map(|(name, g)| format!("{name} ×{g:.1}"))
            .collect();
        println!(
            "{} → {} rows (×{size:.0}): {}",
            a.rows,
            b.rows,
            text.join(", ")
        );
        for (name, g) in growth {
            if g > size * 1.5 {
                println!("  FASTER THAN LINEAR: {name} grew ×{g:.1} for ×{size:.0} rows");
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000, 100_000];
    }
    println!(
        "fleet_scale on {}; sizes {sizes:?} stock rows over 3 marketplaces, rate limits lifted, one publisher, poller and api",
        machine()
    );
    let started = Instant::now();
    let mut all = Vec::new();
    for rows in sizes {
        let figures = measure(rows).await;
        println!("{figures:?}");
        all.push(figures);
    }
    print(&all);
    println!("fleet_scale took {:.0} s", started.elapsed().as_secs_f64());
}
