//! The poller against the simulator and the real services (design §2, §5, §6).

use std::collections::HashMap;
use stockfleet::bus::{Envelope, Exchange, QueueSpec};
use stockfleet::ledger::Role;
use stockfleet_tests::*;

const MARKETPLACES: [&str; 3] = ["backmarket", "refurbed", "woocommerce"];
const SKUS: [&str; 5] = ["P-1", "P-2", "P-3", "P-4", "P-5"];

/// Raw statuses that ship or cancel an order on each marketplace, in the order
/// they must be applied.
fn path_to(marketplace: &str, end: &str) -> &'static [&'static str] {
    match (marketplace, end) {
        ("backmarket", "ship") => &["2", "3"],
        ("backmarket", _) => &["4"],
        ("refurbed", "ship") => &["ACCEPTED", "SHIPPED"],
        ("refurbed", _) => &["CANCELLED"],
        ("woocommerce", "ship") => &["completed"],
        _ => &["cancelled"],
    }
}

/// Raises the simulator's limits: these tests are about the order flow, and
/// polling every second costs more calls than a production schedule.
async fn generous_limits(sim: &Sim) {
    for marketplace in MARKETPLACES {
        sim.rate_limits(
            marketplace,
            serde_json::json!({"requests": 5000, "window_ms": 10000}),
            serde_json::Value::Null,
        )
        .await;
    }
}

/// Logical order events: (marketplace, order, kind, previous, status) → distinct message ids.
fn by_event(
    envelopes: &[Envelope],
) -> HashMap<(String, String, String, String, String), Vec<String>> {
    let mut events: HashMap<_, Vec<String>> = HashMap::new();
    for e in envelopes {
        let key = (
            e.marketplace.clone(),
            e.payload["order_id"].as_str().unwrap().to_owned(),
            e.kind.clone(),
            e.payload["previous_status"].to_string(),
            e.payload["status"].to_string(),
        );
        let ids = events.entry(key).or_default();
        if !ids.contains(&e.id.to_string()) {
            ids.push(e.id.to_string());
        }
    }
    events
}

/// Every logical event announced by exactly one message id; one creation per order.
fn assert_each_event_once(envelopes: &[Envelope], orders: usize) {
    let events = by_event(envelopes);
    for (key, ids) in &events {
        assert_eq!(ids.len(), 1, "{key:?} announced {} times", ids.len());
    }
    let created = events.keys().filter(|k| k.2 == "order.created").count();
    assert_eq!(created, orders, "one order.created per order");
}

#[tokio::test]
async fn a_thousand_orders_over_three_marketplaces_are_stored_once_and_announced_once() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    generous_limits(&sim).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    let events = env.observe("order.#").await;
    let accepts = env
        .observe_on(Exchange::Commands, "marketplace.*.accept_orderline")
        .await;
    let workers = [
        env.start(stockfleet::ledger::Role::Locker).await,
        env.start(Role::Reducer).await,
    ];
    let poller = env.spawn("stockfleet-poller");

    // Orders arrive and move while polling runs: on every marketplace a third
    // ship, a third are cancelled, a third stay open.
    let end_of = |n: usize| ["ship", "cancel", "open"][(n / 3) % 3];
    let mut placed = Vec::new();
    for n in 0..1000 {
        let marketplace = MARKETPLACES[n % 3];
        let id = sim.place(marketplace, SKUS[n % SKUS.len()], 1).await;
        placed.push((marketplace, id));
    }
    for (n, (marketplace, id)) in placed.iter().enumerate() {
        if end_of(n) == "open" {
            continue;
        }
        for status in path_to(marketplace, end_of(n)) {
            sim.move_order(marketplace, id, status).await;
        }
    }

    let open_items = (0..placed.len()).filter(|n| end_of(*n) == "open").count();
    eventually("every order stored with its final status", || async {
        env.scalar("SELECT count(*) FROM orders").await == 1000
            && env
                .scalar("SELECT count(*) FROM orders WHERE status = 'shipped'")
                .await
                == 334
            && env
                .scalar("SELECT count(*) FROM orders WHERE status = 'cancelled'")
                .await
                == 333
    })
    .await;
    eventually("outbox relayed", || async { env.outbox_len().await == 0 }).await;
    let observed = events.count().await as u64;
    env.wait_settled(&env.queue(&QueueSpec::locker()), observed)
        .await;
    env.wait_settled(&env.queue(&QueueSpec::reducer()), observed)
        .await;

    assert_each_event_once(&events.take().await, 1000);
    // Back Market and Refurbed lines seen while waiting for acceptance get one
    // accept command each, ever; those still open all waited for it.
    let accepted = accepts.take().await;
    let mut lines: Vec<String> = accepted
        .iter()
        .map(|e| e.payload["item_id"].as_str().unwrap().to_owned())
        .collect();
    lines.sort();
    lines.dedup();
    assert_eq!(
        lines.len(),
        accepted.len(),
        "an orderline was accepted twice"
    );
    let requested = env
        .scalar("SELECT count(*) FROM order_items WHERE accept_requested_at IS NOT NULL")
        .await;
    assert_eq!(requested as usize, accepted.len());
    let open_orders: Vec<String> = accepted
        .iter()
        .map(|e| e.payload["order_id"].as_str().unwrap().to_owned())
        .collect();
    for (n, (marketplace, id)) in placed.iter().enumerate() {
        if end_of(n) == "open" && *marketplace != "woocommerce" {
            assert!(
                open_orders.contains(id),
                "open order {marketplace} {id} was never accepted"
            );
        }
    }
    assert_eq!(open_items, 333);
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
            .await,
        333,
        "active locks equal the simulator's open order items"
    );
    assert_eq!(
        env.scalar("SELECT sum(locked_stock) FROM marketplace_stock")
            .await,
        333
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'consumed'")
            .await,
        334
    );
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
    // The simulator is a plain-HTTP store: every WooCommerce call the fleet
    // made was signed with OAuth 1.0a, and none was refused.
    let woo = sim.get("/requests?marketplace=woocommerce").await;
    let woo = woo.as_array().unwrap();
    assert!(!woo.is_empty());
    for request in woo {
        let path = request["path"].as_str().unwrap();
        assert!(path.contains("oauth_signature="), "unsigned: {path}");
        assert_ne!(request["status"], 401, "{request}");
    }
    for worker in workers {
        worker.stop().await;
    }
    drop(poller);
}

/// No two runs of one (marketplace, type) overlap in time.
async fn assert_runs_never_overlap(env: &TestEnv) {
    let overlapping = env
        .scalar(
            "SELECT count(*) FROM sync_runs a JOIN sync_runs b
           ON a.marketplace_id = b.marketplace_id AND a.sync_type = b.sync_type AND a.id < b.id
         WHERE b.started_at < COALESCE(a.finished_at, 'infinity')
           AND a.started_at < COALESCE(b.finished_at, 'infinity')",
        )
        .await;
    assert_eq!(
        overlapping, 0,
        "two runs of one (marketplace, type) overlapped"
    );
}

#[tokio::test]
async fn two_pollers_never_double_a_run_or_an_event() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    generous_limits(&sim).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    let events = env.observe("order.#").await;
    let pollers = [
        env.spawn("stockfleet-poller"),
        env.spawn("stockfleet-poller"),
    ];
    let mut placed = Vec::new();
    for n in 0..300 {
        let marketplace = MARKETPLACES[n % 3];
        placed.push((
            marketplace,
            sim.place(marketplace, SKUS[n % SKUS.len()], 2).await,
        ));
    }
    for (marketplace, id) in placed.iter().step_by(2) {
        for status in path_to(marketplace, "ship") {
            sim.move_order(marketplace, id, status).await;
        }
    }
    eventually("every order stored, half shipped", || async {
        env.scalar("SELECT count(*) FROM orders").await == 300
            && env
                .scalar("SELECT count(*) FROM orders WHERE status = 'shipped'")
                .await
                == 150
    })
    .await;
    // Both pollers keep polling: let each (marketplace, type) run a few more times.
    let runs = env.scalar("SELECT count(*) FROM sync_runs").await;
    eventually("more runs", || async {
        env.scalar("SELECT count(*) FROM sync_runs").await >= runs + 24
    })
    .await;
    eventually("outbox relayed", || async { env.outbox_len().await == 0 }).await;
    assert_each_event_once(&events.take().await, 300);
    assert_runs_never_overlap(&env).await;
    drop(pollers);
}

#[tokio::test]
async fn a_poller_killed_mid_run_misses_and_doubles_nothing() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    let events = env.observe("order.#").await;
    // 12 slow pages, so the kill lands mid-run.
    let mut first = env.poller_mid_run(&sim, &SKUS, 600).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(
        env.scalar("SELECT count(*) FROM orders").await < 600,
        "killed mid-run"
    );

    let second = env.spawn("stockfleet-poller");
    eventually("every order stored after the restart", || async {
        env.scalar("SELECT count(*) FROM orders").await == 600
    })
    .await;
    eventually("the dead run is closed as failed", || async {
        env.scalar("SELECT count(*) FROM sync_runs WHERE error_text LIKE 'the run died%'")
            .await
            >= 1
    })
    .await;
    eventually("outbox relayed", || async { env.outbox_len().await == 0 }).await;
    assert_each_event_once(&events.take().await, 600);
    assert_runs_never_overlap(&env).await;
    drop(second);
}

#[tokio::test]
async fn a_marketplace_down_or_failing_never_stops_the_others() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    sim.faults("refurbed", serde_json::json!({"down": true}))
        .await;
    sim.faults("woocommerce", serde_json::json!({"error_rate": 1.0}))
        .await;
    for marketplace in MARKETPLACES {
        for n in 0..20 {
            sim.place(marketplace, SKUS[n % SKUS.len()], 1).await;
        }
    }
    // An order with an unknown SKU is stored and flagged, and nothing is locked for it.
    sim.place("backmarket", "NOT-IN-STOCKFLEET", 1).await;
    let poller = env.spawn("stockfleet-poller");
    eventually("Back Market keeps syncing", || async {
        env.scalar("SELECT count(*) FROM orders").await == 21
    })
    .await;
    eventually("the failed runs are recorded with their error", || async {
        env.scalar("SELECT count(*) FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
                      WHERE m.code = 'refurbed' AND r.status = 'failed' AND r.error_text LIKE '%transient%'").await >= 1
            && env.scalar("SELECT count(*) FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
                      WHERE m.code = 'woocommerce' AND r.status = 'failed' AND r.error_text LIKE '%500%'").await >= 1
    })
    .await;
    assert_eq!(
        env.scalar("SELECT count(*) FROM orders WHERE has_unknown_sku")
            .await,
        1
    );
    let report = env.validate().await;
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == "unknown_sku" && f.detail.contains("NOT-IN-STOCKFLEET")),
        "{report:?}"
    );

    // Once the faults stop, the other marketplaces catch up.
    sim.clear_faults("refurbed").await;
    sim.clear_faults("woocommerce").await;
    eventually("every marketplace synced", || async {
        env.scalar("SELECT count(*) FROM orders").await == 61
    })
    .await;
    drop(poller);
}

#[tokio::test]
async fn syncs_run_on_request_inline_or_through_the_fleet() {
    let env = TestEnv::new().await;
    // Scheduled runs happen once at start, then not for an hour.
    let sim = env.sim().await;
    env.poll_every(3600).await;
    env.stock_everywhere(&SKUS, 10_000).await;

    sim.place("backmarket", "P-1", 1).await;
    let inline = env
        .cli(&["sync", "--marketplace", "backmarket", "--type", "new"])
        .await;
    let stdout = String::from_utf8_lossy(&inline.stdout);
    assert!(inline.status.success(), "{stdout}");
    assert!(stdout.contains("1 fetched, 1 created"), "{stdout}");
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE trigger = 'manual' AND status = 'succeeded'"
        )
        .await,
        1
    );

    let poller = env.spawn("stockfleet-poller");
    first_scheduled_runs(&env).await;
    sim.place("refurbed", "P-2", 1).await;
    request_new_orders_sync(&env, "refurbed").await;
    eventually("the poller ran the requested sync", || async {
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE trigger = 'fleet' AND status = 'succeeded'",
        )
        .await
            == 1
            && env.scalar("SELECT count(*) FROM orders").await == 2
    })
    .await;

    let unknown = env.cli(&["sync", "--marketplace", "ebay"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown marketplace \"ebay\""));
    drop(poller);
}

/// Waits for the poller's first scheduled run of every (marketplace, type).
async fn first_scheduled_runs(env: &TestEnv) {
    // Every type on every marketplace has run (a manual run counts) and none
    // is under way: the modified walk (low priority, behind the others for
    // the budget) can still be running when the rest are done.
    eventually("the scheduled first runs", || async {
        env.scalar(
            "SELECT count(DISTINCT (marketplace_id, sync_type)) FROM sync_runs
             WHERE status <> 'running'",
        )
        .await
            == 12
            && env
                .scalar("SELECT count(*) FROM sync_runs WHERE status = 'running'")
                .await
                == 0
    })
    .await;
}

/// `stockfleet sync --type new --via-fleet`: one request queued for the poller.
async fn request_new_orders_sync(env: &TestEnv, marketplace: &str) {
    let queued = env
        .cli(&[
            "sync",
            "--marketplace",
            marketplace,
            "--type",
            "new",
            "--via-fleet",
        ])
        .await;
    assert!(queued.status.success());
    assert!(String::from_utf8_lossy(&queued.stdout).contains("queued 1 sync request"));
}

#[tokio::test]
async fn a_sync_request_meeting_a_run_under_way_waits_for_it_and_is_never_dead_lettered() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    let health = format!("127.0.0.1:{}", free_port());
    let _poller = env
        .command("stockfleet-poller")
        .env("HEALTH_ADDR", &health)
        .kill_on_drop(true)
        .spawn()
        .expect("start the poller");
    first_scheduled_runs(&env).await;
    // A run of Refurbed's new orders under way elsewhere: its advisory lock
    // (marketplace id, SyncType::New's key 1) held by this test.
    let mut holder = env.db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(id, 1) FROM marketplaces WHERE code = 'refurbed'")
        .execute(&mut *holder)
        .await
        .unwrap();
    sim.place("refurbed", "P-3", 1).await;
    request_new_orders_sync(&env, "refurbed").await;
    // Deferred again and again, past MAX_ATTEMPTS (3 here): never an attempt counted.
    let deferred = || async {
        let metrics = reqwest::get(format!("http://{health}/metrics"))
            .await
            .and_then(|r| r.error_for_status());
        let Ok(metrics) = metrics else { return 0.0 };
        let text = metrics.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.starts_with("stockfleet_messages_deferred_total{")
                    && line.contains(".poller\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    eventually(
        "the request deferred more often than it may be attempted",
        || async { deferred().await >= 6.0 },
    )
    .await;
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::poller());
    assert_eq!(env.depth(&dlq).await, 0);
    assert_eq!(env.scalar("SELECT count(*) FROM orders").await, 0);

    // The run under way ends: the request is carried out.
    holder.rollback().await.unwrap();
    eventually("the requested run stored the order", || async {
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE trigger = 'fleet' AND status = 'succeeded'",
        )
        .await
            == 1
            && env.scalar("SELECT count(*) FROM orders").await == 1
    })
    .await;
    assert_eq!(env.depth(&dlq).await, 0);
}
