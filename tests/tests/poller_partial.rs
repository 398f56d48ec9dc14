//! Runs cut short and the Refurbed walk's searches (design §5): a run stopped
//! by the rate limit or a shutdown is partial and keeps its cursor; the
//! orders that left the open states cost a listing page, or one read each.

use stockfleet_tests::*;

const SKUS: [&str; 5] = ["P-1", "P-2", "P-3", "P-4", "P-5"];

/// Puts the modified cursor ahead of every order's release, so the walk's
/// first listing brings none of them: only the open walk and the search for
/// the orders that left the open states find anything.
async fn cursor_ahead(env: &TestEnv) {
    sqlx::query(
        "INSERT INTO sync_cursors (marketplace_id, sync_type, cursor_at)
         SELECT id, 'modified', now() + interval '1 hour' FROM marketplaces WHERE code = 'refurbed'",
    )
    .execute(&env.db)
    .await
    .unwrap();
}

async fn refurbed_modified_sync(env: &TestEnv) {
    let modified = env
        .cli(&["sync", "--marketplace", "refurbed", "--type", "modified"])
        .await;
    assert!(modified.status.success(), "{modified:?}");
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE sync_type = 'modified' AND status = 'succeeded'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn orders_that_left_the_open_states_are_found_a_page_at_a_time() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(sim.place("refurbed", SKUS[n % SKUS.len()], 1).await);
    }
    let new = env
        .cli(&["sync", "--marketplace", "refurbed", "--type", "new"])
        .await;
    assert!(new.status.success(), "{new:?}");
    assert_eq!(env.scalar("SELECT count(*) FROM orders").await, 30);

    // Twenty ship, ten stay open.
    for id in &ids[..20] {
        sim.move_order("refurbed", id, "ACCEPTED").await;
        sim.move_order("refurbed", id, "SHIPPED").await;
    }
    cursor_ahead(&env).await;
    let (reads, lists) = (
        sim.requests_to("refurbed", "/GetOrder").await,
        sim.requests_to("refurbed", "/ListOrders").await,
    );
    refurbed_modified_sync(&env).await;
    assert_eq!(
        sim.requests_to("refurbed", "/GetOrder").await - reads,
        0,
        "no order read on its own"
    );
    assert_eq!(
        sim.requests_to("refurbed", "/ListOrders").await - lists,
        3,
        "released since the cursor, open before it, closed since the oldest that left"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM orders WHERE status = 'shipped'")
            .await,
        20
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM orders WHERE rechecked_at IS NOT NULL")
            .await,
        20
    );
}

#[tokio::test]
async fn an_old_order_that_left_the_open_states_costs_one_read() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    let old = sim.place("refurbed", SKUS[0], 1).await;
    // 150 released after it: listing them would take two pages, a read one.
    for n in 0..150 {
        sim.place("refurbed", SKUS[n % SKUS.len()], 1).await;
    }
    let new = env
        .cli(&["sync", "--marketplace", "refurbed", "--type", "new"])
        .await;
    assert!(new.status.success(), "{new:?}");
    assert_eq!(env.scalar("SELECT count(*) FROM orders").await, 151);

    sim.move_order("refurbed", &old, "CANCELLED").await;
    cursor_ahead(&env).await;
    let reads = sim.requests_to("refurbed", "/GetOrder").await;
    refurbed_modified_sync(&env).await;
    assert_eq!(
        sim.requests_to("refurbed", "/GetOrder").await - reads,
        1,
        "one request for the one order that left"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM orders WHERE status = 'cancelled'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_run_cut_by_the_rate_limit_is_partial_keeps_its_cursor_and_the_next_run_catches_up() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    for sku in &SKUS[..3] {
        sim.place("refurbed", sku, 1).await;
    }
    sqlx::query(
        "INSERT INTO sync_cursors (marketplace_id, sync_type, cursor_at)
         SELECT id, 'modified', now() - interval '1 hour' FROM marketplaces WHERE code = 'refurbed'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let cursor = "SELECT EXTRACT(EPOCH FROM cursor_at)::bigint FROM sync_cursors
                  WHERE sync_type = 'modified'";
    let before = env.scalar(cursor).await;
    let modified = ["sync", "--marketplace", "refurbed", "--type", "modified"];

    // Every answer is a 429 for longer than the in-process retries last.
    sim.faults("refurbed", serde_json::json!({"rate_limit_storm_secs": 1}))
        .await;
    let cut = env.cli(&modified).await;
    let stdout = String::from_utf8_lossy(&cut.stdout);
    assert!(
        cut.status.success(),
        "a partial run is no failure: {stdout}"
    );
    assert!(stdout.contains("partial run"), "{stdout}");
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE status = 'partial'
             AND error_text LIKE 'cut by the rate limit after 0 pages%'"
        )
        .await,
        1
    );
    assert_eq!(env.scalar(cursor).await, before, "the cursor stays");
    assert_eq!(env.scalar("SELECT count(*) FROM orders").await, 0);

    sim.clear_faults("refurbed").await;
    let next = env.cli(&modified).await;
    assert!(next.status.success(), "{next:?}");
    assert_eq!(env.scalar("SELECT count(*) FROM orders").await, 3);
    assert_eq!(
        env.scalar("SELECT count(*) FROM sync_runs WHERE status = 'succeeded'")
            .await,
        1
    );
    assert!(env.scalar(cursor).await > before, "the cursor moves on");
}

#[tokio::test]
async fn a_run_stopped_by_shutdown_is_partial_and_the_next_poller_reads_on() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    env.stock_everywhere(&SKUS, 10_000).await;
    // 12 slow pages, so the SIGTERM lands mid-run.
    let first = env.poller_mid_run(&sim, &SKUS, 600).await;
    terminate(first).await;
    assert!(
        env.scalar("SELECT count(*) FROM orders").await < 600,
        "stopped mid-run"
    );
    assert!(
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE status = 'partial'
             AND error_text LIKE 'stopped by shutdown after % pages%'"
        )
        .await
            >= 1,
        "the run cut by the shutdown is partial"
    );
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM sync_runs WHERE status <> 'succeeded' AND status <> 'partial'"
        )
        .await,
        0,
        "a deploy is no failure"
    );

    let _second = env.spawn("stockfleet-poller");
    eventually("every order stored after the restart", || async {
        env.scalar("SELECT count(*) FROM orders").await == 600
    })
    .await;
}
