//! Outage mode (issue 29): a marketplace down for longer than the retry
//! ladder pauses its queues instead of dead-lettering what waits for it, a
//! probe resumes it, and everything is delivered after it.

use serde_json::json;
use stockfleet::admin::tokens::Role;
use stockfleet_tests::*;

const SKUS: [&str; 6] = ["OUT-1", "OUT-2", "OUT-3", "OUT-4", "OUT-5", "OUT-6"];

/// The gauge `stockfleet_marketplace_paused` of `marketplace` on a /metrics page.
fn paused_gauge(metrics: &str, marketplace: &str) -> Option<f64> {
    let series = format!("stockfleet_marketplace_paused{{marketplace=\"{marketplace}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
}

/// A publisher with outage mode's clock compressed (paused after
/// `pause_after` seconds of failures, probed every second), once ready;
/// and the base URL of its health server.
async fn outage_publisher(env: &TestEnv, pause_after: u32) -> (tokio::process::Child, String) {
    let health = free_port();
    let publisher = env
        .command("stockfleet-publisher")
        .env("HEALTH_ADDR", format!("127.0.0.1:{health}"))
        .env("MAX_ATTEMPTS", "3")
        .env("MARKETPLACE_REFRESH_SECONDS", "0.2")
        .env("OUTAGE_PAUSE_AFTER_SECONDS", pause_after.to_string())
        .env("OUTAGE_PAUSE_AFTER_CALLS", "2")
        .env("OUTAGE_PROBE_SECONDS", "1")
        .env("PAUSE_REFRESH_SECONDS", "0.2")
        .kill_on_drop(true)
        .spawn()
        .expect("start the publisher; cargo build --workspace --bins");
    let base = format!("http://127.0.0.1:{health}");
    eventually("the publisher ready", || async {
        readiness(&format!("{base}/readyz")).await.map(|(s, _)| s) == Some(200)
    })
    .await;
    (publisher, base)
}

/// Each of `skus` listed on Refurbed with 20 in stock, its push landed.
async fn listed_and_pushed(env: &TestEnv, sim: &Sim, skus: &[&str]) {
    for sku in skus {
        sim.listing("refurbed", sku, 0).await;
        env.set_stock_on("refurbed", sku, 20).await;
    }
    eventually("every listing pushed", || async {
        // An increase waits for a poll started after the last push.
        env.orders_polled("refurbed").await;
        env.in_sync(sim, "refurbed").await
    })
    .await;
}

const PAUSED: &str =
    "SELECT count(*) FROM marketplaces WHERE code = 'refurbed' AND paused_by = 'fleet'";

/// Time compressed: three attempts over a ladder of 1.7 s would dead-letter
/// a message within about 35 s of 503s (each attempt is 10 s of in-process
/// retries); the outage lasts 60 s, as a 20-minute outage does at the
/// default ladder of 13 minutes.
#[tokio::test]
async fn an_outage_longer_than_the_retry_ladder_pauses_and_loses_nothing() {
    let mut env = TestEnv::new().await;
    env.settings.consumer.retry_delays_ms = vec![200, 500, 1000];
    env.uses_retry_delays(&env.settings.clone());
    let sim = env.sim().await;
    let api = env.api().await;
    let operator = env.token("outage-operator", Role::Operator).await;
    let (_publisher, base) = outage_publisher(&env, 1).await;
    listed_and_pushed(&env, &sim, &SKUS).await;

    // Refurbed answers 503 to everything for a minute; stock keeps changing.
    sim.faults("refurbed", json!({"outage_secs": 60})).await;
    for sku in SKUS {
        env.set_stock_on("refurbed", sku, 10).await;
    }
    eventually("refurbed paused by the fleet", || async {
        env.scalar(PAUSED).await == 1
    })
    .await;
    // More changes while paused wait in the queue with the others.
    for sku in SKUS {
        env.set_stock_on("refurbed", sku, 6).await;
    }
    eventually("the pause in the metric", || async {
        paused_gauge(&get_text(&format!("{base}/metrics")).await, "refurbed") == Some(1.0)
    })
    .await;
    let (status, report) = readiness(&format!("{base}/readyz")).await.expect("readyz");
    assert_eq!(status, 200, "paused is not down: {report}");
    let (status, page) = api.page(&operator, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Paused marketplaces") && page.contains("requests failed over"),
        "the overview says the marketplace is paused and why"
    );
    let queues = env.cli(&["queues"]).await;
    let queues = String::from_utf8_lossy(&queues.stdout);
    assert!(
        queues.contains("refurbed: paused since") && queues.contains("by fleet"),
        "`stockfleet queues` says it: {queues}"
    );
    assert!(
        !env.in_sync(&sim, "refurbed").await,
        "nothing reached the marketplace during the outage"
    );

    // The probe finds it answering once the outage is over; the backlog drains.
    eventually("refurbed resumed by a probe", || async {
        env.scalar(PAUSED).await == 0
    })
    .await;
    eventually("every change delivered after the outage", || async {
        env.in_sync(&sim, "refurbed").await
    })
    .await;
    eventually("the resume in the metric", || async {
        paused_gauge(&get_text(&format!("{base}/metrics")).await, "refurbed") == Some(0.0)
    })
    .await;
    for spec in stockfleet::bus::QueueSpec::publishers("refurbed") {
        let dead_letters = format!("{}.dlq", env.queue(&spec));
        assert_eq!(
            env.depth(&dead_letters).await,
            0,
            "no dead letters in {dead_letters}"
        );
    }
    assert_eq!(sim.violations("refurbed").await, 0, "within the rate limit");
    let recorded = env
        .scalar(
            "SELECT count(*) FROM marketplace_pause_history
             WHERE actor = 'fleet' AND action IN ('pause', 'resume')",
        )
        .await;
    assert_eq!(recorded, 2, "the pause and the resume are recorded");
    api.stop().await;
}

/// Every failed request counts, not only calls that gave up: during this
/// outage the only work is increases, and an increase's read before its
/// push runs out of patience (5 s) before its in-process retries would give
/// up (10 s). Counted per call, a chaos run's 60 s outage spent like this
/// never paused.
#[tokio::test]
async fn an_outage_met_only_by_increases_pauses_too() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let (_publisher, _) = outage_publisher(&env, 3).await;
    listed_and_pushed(&env, &sim, &SKUS[..2]).await;
    sim.faults("refurbed", json!({"outage_secs": 60})).await;
    // A poll after the last push covers the increases: each reads what
    // Refurbed shows first (it takes sold units off by itself).
    env.orders_polled("refurbed").await;
    for sku in &SKUS[..2] {
        env.set_stock_on("refurbed", sku, 40).await;
    }
    eventually("refurbed paused by the fleet", || async {
        env.scalar(PAUSED).await == 1
    })
    .await;
    let counted = env
        .scalar(
            "SELECT count(*) FROM marketplaces WHERE code = 'refurbed'
             AND paused_reason LIKE '%requests failed over%503%'",
        )
        .await;
    assert_eq!(counted, 1, "the reason counts the failed requests");
    assert!(!env.in_sync(&sim, "refurbed").await, "no increase went out");
}

#[tokio::test]
async fn an_operator_pauses_and_resumes_by_cli_and_a_probe_never_ends_it() {
    let env = TestEnv::new().await;
    let paused = env
        .cli(&[
            "marketplace",
            "pause",
            "backmarket",
            "--reason",
            "planned maintenance",
        ])
        .await;
    assert!(paused.status.success(), "{paused:?}");
    let by: String =
        sqlx::query_scalar("SELECT paused_by FROM marketplaces WHERE code = 'backmarket'")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert!(by.starts_with("cli:"), "the actor is recorded: {by}");
    // A probe's resume ends only the fleet's own pauses.
    let outcome =
        stockfleet::outage::store::resume_fleet_pause(&env.db, "backmarket", "probe answered")
            .await
            .unwrap();
    assert_eq!(outcome, stockfleet::outage::store::Outcome::AsItWas);
    let again = env
        .cli(&["marketplace", "pause", "backmarket", "--reason", "again"])
        .await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("already"));
    let resumed = env.cli(&["marketplace", "resume", "backmarket"]).await;
    assert!(resumed.status.success(), "{resumed:?}");
    let history: Vec<(String, String)> =
        sqlx::query_as("SELECT action, reason FROM marketplace_pause_history ORDER BY id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(
        history,
        [
            ("pause".to_owned(), "planned maintenance".to_owned()),
            ("resume".to_owned(), "resumed by hand".to_owned())
        ]
    );
    for bad in [
        vec!["marketplace", "pause", "nowhere", "--reason", "x"],
        vec!["marketplace", "pause", "backmarket", "--reason", " "],
    ] {
        let refused = env.cli(&bad).await;
        assert!(!refused.status.success(), "{bad:?} is refused");
    }
}

#[tokio::test]
async fn an_operator_pauses_and_resumes_by_api_as_the_token_named() {
    use reqwest::StatusCode;
    let env = TestEnv::new().await;
    let api = env.api().await;
    let viewer = env.token("vera", Role::Viewer).await;
    let operator = env.token("otto", Role::Operator).await;
    let woo_team = stockfleet::admin::tokens::create_scoped(
        &env.db,
        "woo team",
        Role::Operator,
        &["woocommerce".to_owned()],
    )
    .await
    .unwrap();
    let pause = "/api/v1/marketplaces/refurbed/pause";
    let body = json!({"reason": "refurbed maintenance 02:00-04:00"});

    let (status, _) = api.post(pause, &viewer, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "pausing needs the operator role"
    );
    let (status, _) = api.post(pause, &woo_team, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a scoped token sees no refurbed"
    );
    let (status, paused) = api.post(pause, &operator, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["changed"], true);
    assert_eq!(paused["paused"]["by"], "api:otto");
    assert_eq!(
        paused["paused"]["reason"],
        "refurbed maintenance 02:00-04:00"
    );
    let (status, again) = api.post(pause, &operator, body.clone()).await;
    assert_eq!((status, &again["changed"]), (StatusCode::OK, &json!(false)));

    let (status, listed) = api.get("/api/v1/pauses", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["paused"][0]["marketplace"], "refurbed");
    assert_eq!(listed["paused"][0]["by"], "api:otto");
    let (_, scoped) = api.get("/api/v1/pauses", &woo_team).await;
    assert_eq!(scoped["paused"], json!([]), "{scoped}");
    assert_eq!(scoped["history"], json!([]), "{scoped}");

    for (path, bad, field) in [
        (pause, json!({"reason": ""}), "reason"),
        (pause, json!({"reason": "x\u{0}"}), "reason"),
        (pause, json!({"reason": "x".repeat(501)}), "reason"),
        (pause, json!({"reason": 5}), "reason"),
        (pause, json!({"reason": "x", "until": "later"}), "until"),
    ] {
        let (status, refused) = api.post(path, &operator, bad.clone()).await;
        assert!(status.is_client_error(), "{bad} is refused: {status}");
        assert!(
            refused.to_string().contains(field),
            "{bad}: the refusal names {field}: {refused}"
        );
    }
    let (status, _) = api
        .post("/api/v1/marketplaces/nowhere/pause", &operator, body)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let resume = "/api/v1/marketplaces/refurbed/resume";
    let (status, resumed) = api.post(resume, &operator, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(
        (&resumed["changed"], &resumed["paused"]),
        (&json!(true), &json!(null))
    );
    let (_, listed) = api.get("/api/v1/pauses", &viewer).await;
    assert_eq!(listed["paused"], json!([]));
    let history: Vec<[&str; 3]> = listed["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|event| ["action", "actor", "reason"].map(|key| event[key].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        history,
        [
            ["resume", "api:otto", "resumed by hand"],
            ["pause", "api:otto", "refurbed maintenance 02:00-04:00"]
        ]
    );
    api.stop().await;
}
