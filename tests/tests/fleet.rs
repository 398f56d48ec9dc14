//! Worker processes under load, crashes and shutdown, as an operator runs them.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::sync::{Arc, Mutex};
use stockfleet::bus::{Envelope, QueueSpec};
use stockfleet::domain::OrderStatus::{Cancelled, Shipped};
use stockfleet_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn wait_consumers(env: &TestEnv, spec: &QueueSpec, count: u32) {
    let queue = env.queue(spec);
    eventually(&format!("{count} consumers on {queue}"), || async {
        env.consumers(&queue).await >= count
    })
    .await;
}

#[tokio::test]
async fn two_lockers_and_two_reducers_under_200_concurrent_orders_keep_the_invariants() {
    let env = TestEnv::new().await;
    env.set_stock("HOT", 500).await;
    let workers = vec![
        env.spawn("stockfleet-locker"),
        env.spawn("stockfleet-locker"),
        env.spawn("stockfleet-reducer"),
        env.spawn("stockfleet-reducer"),
    ];
    wait_consumers(&env, &QueueSpec::locker(), 4).await;
    wait_consumers(&env, &QueueSpec::reducer(), 4).await;

    // 200 orders on one variation: 100 ship, 50 are cancelled, 50 stay open;
    // every event is published out of order from 8 concurrent publishers.
    let mut events = Vec::new();
    for n in 0..200 {
        let order = format!("H{n}");
        events.push(created(&order, "HOT", 1));
        match n {
            0..100 => events.push(changed(&order, "HOT", 1, Shipped)),
            100..150 => events.push(changed(&order, "HOT", 1, Cancelled)),
            _ => {}
        }
    }
    events.shuffle(&mut rand::rngs::StdRng::seed_from_u64(200));
    let env = std::sync::Arc::new(env);
    let publishers: Vec<_> = events
        .chunks(events.len().div_ceil(8))
        .map(|chunk| {
            let (env, chunk) = (env.clone(), chunk.to_vec());
            tokio::spawn(async move { env.publish(&chunk).await })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }

    eventually("every order settled", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            == 200
            && env.levels("HOT").await == (400, 50, 350)
    })
    .await;
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'consumed'")
            .await,
        100
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'released'")
            .await,
        50
    );
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
    for spec in [QueueSpec::locker(), QueueSpec::reducer()] {
        let dlq = env.bus.topology.dead_letter_queue(&spec);
        assert_eq!(
            env.depth(&dlq).await,
            0,
            "nothing dead-lettered (no deadlock, no lost update)"
        );
    }
    for worker in workers {
        terminate(worker).await;
    }
}

#[tokio::test]
async fn a_locker_killed_mid_stream_loses_and_doubles_nothing() {
    let env = TestEnv::new().await;
    let observer = env.observe("stock.changed.*").await;
    env.set_stock("KILL", 1000).await;
    let first = env.spawn("stockfleet-locker");
    wait_consumers(&env, &QueueSpec::locker(), 2).await;

    let orders: Vec<_> = (0..400)
        .map(|n| created(&format!("K{n}"), "KILL", 1))
        .collect();
    env.publish(&orders).await;
    eventually("the locker is mid-stream", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            >= 40
    })
    .await;
    let mut first = first;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            < 400,
        "the kill should land mid-stream; raise the order count if this machine is faster"
    );

    let second = env.spawn("stockfleet-locker");
    eventually("all 400 orders locked after the restart", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            == 400
    })
    .await;
    eventually("outbox drained", || async { env.outbox_len().await == 0 }).await;
    assert_eq!(
        env.levels("KILL").await,
        (1000, 400, 600),
        "nothing doubled"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_history WHERE change_type = 'lock'")
            .await,
        400
    );
    // Every lock was announced at least once (a relay killed before its delete republishes).
    assert!(observer.count().await > 400);
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
    terminate(second).await;
}

#[tokio::test]
async fn a_worker_refuses_an_unmigrated_database_and_says_what_to_do() {
    let env = TestEnv::new().await;
    let empty = format!("{}_empty", env.name);
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {empty}")))
        .execute(&env.db)
        .await
        .unwrap();
    let output = tokio::process::Command::new(binary_path("stockfleet-locker"))
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{empty}"),
        )
        .env("BUS_PREFIX", &env.prefix)
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {empty} WITH (FORCE)"
    )))
    .execute(&env.db)
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Run `stockfleet migrate`"), "{stderr}");
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let env = TestEnv::new().await;
    env.set_stock("HEALTHY", 5).await;
    let mut command = env.command("stockfleet-locker");
    command
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut locker = command.spawn().unwrap();
    // The worker logs the address it bound (JSON lines); the rest is drained.
    let mut lines = BufReader::new(locker.stdout.take().unwrap()).lines();
    let mut bound = None;
    while bound.is_none() {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the worker logs its address");
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        bound = log["bound"].as_str().map(str::to_owned);
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = format!("http://{}", bound.unwrap());
    let http = reqwest::Client::new();
    eventually("ready", || async {
        match http.get(format!("{base}/readyz")).send().await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    })
    .await;
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    // Handled before /metrics is first asked: the count must not depend on that.
    env.publish(&[created("M1", "HEALTHY", 1)]).await;
    eventually("the order is locked", || async {
        env.levels("HEALTHY").await.1 == 1
    })
    .await;
    eventually("the locker counts what it handled", || async {
        let metrics = get_text(&format!("{base}/metrics")).await;
        metrics.contains(&format!(
            "stockfleet_messages_handled_total{{queue=\"{}.locker\"}} 1",
            env.prefix
        )) && metrics.contains("stockfleet_handler_seconds_bucket")
            && metrics.contains("stockfleet_outbox_backlog")
    })
    .await;
    terminate(locker).await;
}

/// A stand-in OTLP/HTTP collector (JSON encoding): keeps every span it receives.
async fn otlp_collector() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let received = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |axum::Json(export): axum::Json<serde_json::Value>| async move {
                let batch = export["resourceSpans"].as_array().into_iter().flatten();
                let batch = batch.flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten());
                let batch = batch.flat_map(|s| s["spans"].as_array().into_iter().flatten());
                received.lock().unwrap().extend(batch.cloned());
                axum::Json(serde_json::json!({}))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, spans)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_handled_in_a_child_span_of_its_sender_exported_over_otlp() {
    let env = TestEnv::new().await;
    env.set_stock("TRACED", 5).await;
    let (endpoint, spans) = otlp_collector().await;
    let emitted = env.observe("stock.changed.#").await;
    let locker = env
        .command("stockfleet-locker")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sender = "00f067aa0ba902b7";
    env.publish_traced(
        &created("T1", "TRACED", 1),
        &format!("00-{trace}-{sender}-01"),
    )
    .await;
    // The top-up above is announced too (by the locker's outbox relay): two events.
    eventually("the top-up's and the lock's stock.changed", || async {
        emitted.count().await == 2
    })
    .await;
    let traceparent = env
        .drain(emitted.queue())
        .await
        .into_iter()
        .find_map(|(headers, body)| {
            let event: stockfleet::events::StockChanged =
                Envelope::decode(&body).unwrap().payload().unwrap();
            (event.change_type == "lock").then(|| header(&headers, "traceparent"))
        })
        .flatten()
        .expect("the lock's stock.changed carries a traceparent");
    let ids: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        ids[1], trace,
        "what the locker emits continues the sender's trace"
    );
    let locker_span = ids[2];
    assert_ne!(locker_span, sender, "and names the locker's own span");

    // SIGTERM flushes the spans not yet exported.
    terminate(locker).await;
    let spans = spans.lock().unwrap().clone();
    let exported = spans
        .iter()
        .find(|span| span["spanId"] == locker_span)
        .unwrap_or_else(|| panic!("the locker's span {locker_span} was not exported: {spans:?}"));
    assert_eq!(exported["traceId"], trace);
    assert_eq!(exported["parentSpanId"], sender);
}
