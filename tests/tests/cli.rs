//! Operator commands as an operator runs them.

use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role;
use stockfleet_tests::{TestEnv, created, eventually, free_port, get_json};

#[tokio::test]
async fn marketplaces_are_listed_and_configured_without_sql() {
    let env = TestEnv::new().await;
    let set = env
        .cli(&[
            "marketplace",
            "set",
            "refurbed",
            "--base-url",
            "http://sim:8900/refurbed",
            "--rate-limit",
            "5/1",
            "--enabled",
            "false",
        ])
        .await;
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let row: (String, i32, i32, bool) = sqlx::query_as(
        "SELECT base_url, rate_limit_requests, rate_limit_window_seconds, sync_enabled
         FROM marketplaces WHERE code = 'refurbed'",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(row, ("http://sim:8900/refurbed".into(), 5, 1, false));

    let list = env.cli(&["marketplace", "list"]).await;
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("http://sim:8900/refurbed") && listed.contains("backmarket"),
        "{listed}"
    );

    let capped = env
        .cli(&[
            "marketplace",
            "set",
            "refurbed",
            "--quantity-updates",
            "300/60",
        ])
        .await;
    assert!(String::from_utf8_lossy(&capped.stdout).contains("300/60s"));
    let cap = "SELECT count(*) FROM marketplaces WHERE code = 'refurbed'
               AND quantity_update_limit = 300 AND quantity_update_window_seconds = 60";
    assert_eq!(env.scalar(cap).await, 1);
    env.cli(&[
        "marketplace",
        "set",
        "refurbed",
        "--quantity-updates",
        "none",
    ])
    .await;
    let uncapped = "SELECT count(*) FROM marketplaces WHERE code = 'refurbed'
                    AND quantity_update_limit IS NULL";
    assert_eq!(env.scalar(uncapped).await, 1);

    let unknown = env
        .cli(&["marketplace", "set", "ebay", "--enabled", "true"])
        .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown marketplace \"ebay\""));
    let bad = env
        .cli(&["marketplace", "set", "refurbed", "--rate-limit", "fast"])
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("REQUESTS/SECONDS"));
}

fn stdout_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn dead_letters_are_seen_and_replayed_and_queues_watched_from_the_cli() {
    let env = TestEnv::new().await;
    let locker = env.start(Role::Locker).await;
    // Orders for SKUs we do not know yet: dead-lettered at once.
    let late = created("LATE-1", "ARRIVES-LATER", 1);
    let typo = created("TYPO-1", "ARRIVES-NEVER", 1);
    env.publish(&[late.clone(), typo.clone()]).await;
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::locker());
    eventually("dead-lettered", || async { env.depth(&dlq).await == 2 }).await;

    let queues = stdout_of(&env.cli(&["queues"]).await);
    let line = queues
        .lines()
        .find(|line| line.starts_with(&format!("{dlq} ")))
        .unwrap_or_else(|| panic!("no line for {dlq} in:\n{queues}"));
    assert_eq!(line.split_whitespace().nth(1), Some("2"), "{line}");

    let listed = stdout_of(&env.cli(&["dlq", "list", "--queue", "locker"]).await);
    assert!(listed.contains("unknown SKU \"ARRIVES-LATER\""), "{listed}");
    assert!(listed.ends_with("2 dead letter(s)\n"), "{listed}");

    // The variation is counted; the operator replays that one order by its
    // id, first without moving; the other stays.
    env.set_stock("ARRIVES-LATER", 3).await;
    let late_id = late.id.to_string();
    let dry = stdout_of(
        &env.cli(&["dlq", "replay", "--dry-run", "--id", &late_id])
            .await,
    );
    assert!(
        dry.ends_with("1 dead letter(s) would be replayed\n"),
        "{dry}"
    );
    assert_eq!(env.depth(&dlq).await, 2);
    let replayed = stdout_of(&env.cli(&["dlq", "replay", "--id", &late_id]).await);
    assert!(
        replayed.ends_with("1 dead letter(s) replayed\n"),
        "{replayed}"
    );
    eventually("the replayed order is locked", || async {
        env.levels("ARRIVES-LATER").await == (3, 1, 2)
    })
    .await;
    let left = stdout_of(&env.cli(&["dlq", "list"]).await);
    assert!(left.contains(&typo.id.to_string()), "{left}");
    assert!(left.ends_with("1 dead letter(s)\n"), "{left}");
    // The mistyped one is purged by its id.
    let purged = stdout_of(
        &env.cli(&["dlq", "purge", "--id", &typo.id.to_string()])
            .await,
    );
    assert!(purged.ends_with("1 dead letter(s) purged\n"), "{purged}");
    assert_eq!(env.depth(&dlq).await, 0);
    locker.stop().await;
}

/// README's run command: the whole fleet and the simulator, orders flowing
/// from the simulator's generator into locks and quantities back out, then a
/// clean stop on SIGTERM.
#[tokio::test]
async fn up_runs_the_fleet_against_the_simulator_and_stops_cleanly() {
    let env = TestEnv::new().await;
    let port = free_port();
    let sim_addr = format!("127.0.0.1:{port}");
    let api_addr = format!("127.0.0.1:{}", free_port());
    let up = env
        .command("stockfleet")
        .args(["up", "--sim-addr", &sim_addr, "--orders-per-second", "5"])
        .args(["--health-port-base", "0", "--demo-skus", "3"])
        .args(["--api-addr", &api_addr])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("orders polled and locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            > 0
    })
    .await;
    eventually("quantities pushed", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock WHERE last_api_quantity IS NOT NULL")
            .await
            > 0
    })
    .await;
    // WooCommerce orders also arrive through the api's webhook receiver.
    eventually("webhooks delivered to the api", || async {
        let hooks = get_json(
            &format!("http://{sim_addr}/control/webhooks/woocommerce"),
            None,
        )
        .await;
        let delivered = hooks["deliveries"].as_array().map_or(0, |deliveries| {
            deliveries.iter().filter(|d| d["status"] == 200).count()
        });
        delivered >= 2 // the ping and at least one order
    })
    .await;
    let elsewhere =
        format!("SELECT count(*) FROM marketplaces WHERE base_url NOT LIKE 'http://{sim_addr}/%'");
    assert_eq!(
        env.scalar(&elsewhere).await,
        0,
        "up points the seeded marketplaces at its simulator"
    );
    let active_token =
        "SELECT count(*) FROM api_tokens WHERE name = 'stockfleet up' AND revoked_at IS NULL";
    assert_eq!(env.scalar(active_token).await, 1);
    let pid = up.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(std::time::Duration::from_secs(60), up.wait_with_output())
        .await
        .expect("the fleet stops within 60 s")
        .unwrap();
    assert!(
        exit.status.success(),
        "stockfleet up exited with {}",
        exit.status
    );
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
}

/// Issue 13: secrets stay off the screen, an unreachable service is named at
/// once with its cause and a hint, a missing database suggests `migrate`.
#[tokio::test]
async fn connection_problems_are_explained_once_without_secrets() {
    let env = TestEnv::new().await;
    let help = env
        .command("stockfleet")
        .arg("--help")
        .env("AMQP_URL", "amqp://guest:s3cretpw@127.0.0.1:5672/%2f")
        .env("DATABASE_URL", "postgres://u:s3cretdb@127.0.0.1:5432/x")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("AMQP_URL") && !text.contains("s3cret"),
        "{text}"
    );

    let closed = free_port();
    let started = std::time::Instant::now();
    let database = format!("postgres://u:s3cretdb@127.0.0.1:{closed}/x");
    let (failed, stderr) =
        cli_failure(&env, &["stock", "show", "X"], ("DATABASE_URL", &database)).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{stderr}"
    );
    assert!(failed);
    assert!(stderr.contains(&format!("127.0.0.1:{closed}")), "{stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert_eq!(
        stderr.matches("refused").count(),
        1,
        "printed once: {stderr}"
    );

    let broker = format!("amqp://guest:s3cretpw@127.0.0.1:{closed}/%2f");
    let (failed, stderr) = cli_failure(&env, &["queues"], ("AMQP_URL", &broker)).await;
    assert!(failed);
    assert!(
        stderr.contains("RabbitMQ") && stderr.contains("AMQP_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let missing = env.settings.database_url.replace("/sft_", "/missing_sft_");
    let (failed, stderr) =
        cli_failure(&env, &["stock", "show", "X"], ("DATABASE_URL", &missing)).await;
    assert!(failed);
    assert!(stderr.contains("stockfleet migrate"), "{stderr}");
    assert_eq!(
        stderr.matches("does not exist").count(),
        1,
        "printed once: {stderr}"
    );
}

/// Runs the CLI with one variable changed: whether it failed, and its stderr.
async fn cli_failure(env: &TestEnv, args: &[&str], (name, value): (&str, &str)) -> (bool, String) {
    let out = env
        .command("stockfleet")
        .args(args)
        .env(name, value)
        .output()
        .await
        .unwrap();
    (
        !out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_malformed_stock_level_max_stops_every_binary_naming_it() {
    let env = TestEnv::new().await;
    for value in ["ten", "0", "-5", "99999999999"] {
        let (failed, stderr) =
            cli_failure(&env, &["stock", "show", "X"], ("STOCK_LEVEL_MAX", value)).await;
        assert!(failed, "{value}");
        assert!(stderr.contains("STOCK_LEVEL_MAX"), "{value}: {stderr}");
    }
    let worker = env
        .command("stockfleet-locker")
        .env("STOCK_LEVEL_MAX", "ten")
        .output()
        .await
        .unwrap();
    assert!(!worker.status.success());
    assert!(String::from_utf8_lossy(&worker.stderr).contains("STOCK_LEVEL_MAX"));

    // A valid one is the bound a correction meets.
    let env_max = env
        .command("stockfleet")
        .args([
            "stock",
            "set",
            "CAP-1",
            "--marketplace",
            "backmarket",
            "--quantity",
            "60",
            "--create",
            "--reason",
            "count",
        ])
        .env("STOCK_LEVEL_MAX", "50")
        .output()
        .await
        .unwrap();
    assert!(!env_max.status.success());
    assert!(String::from_utf8_lossy(&env_max.stderr).contains("maximum of 50"));
}
