//! The publisher against the simulator and the real services: buffered
//! quantities, coalescing, unknown stock, the freshness guard (design §2, §4,
//! §7 invariant 5).

use serde_json::json;
use stockfleet::bus::QueueSpec;
use stockfleet::ledger::Role;
use stockfleet_tests::*;

const BM: &str = "backmarket";

async fn history(env: &TestEnv, change_type: &str) -> Vec<(i32, Option<String>)> {
    sqlx::query_as(
        "SELECT quantity_change, notes FROM marketplace_stock_history
         WHERE change_type = $1 ORDER BY id",
    )
    .bind(change_type)
    .fetch_all(&env.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn pushes_buffered_available_once_and_records_it() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "IPH12", 0).await;
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;

    env.set_stock("IPH12", 10).await;
    eventually("9 shown", || async {
        sim.quantity(BM, "IPH12").await == Some(9)
    })
    .await;
    eventually("the push recorded", || async {
        env.in_sync(&sim, BM).await
    })
    .await;
    assert_eq!(
        history(&env, "api_sync").await,
        vec![(9, Some("pushed 9 to backmarket (was 0)".into()))]
    );

    // A change that leaves the buffered quantity alone costs no call:
    // 11 available still shows floor(11 × 0.9) = 9.
    env.set_stock("IPH12", 11).await;
    env.wait_settled(&env.queue(&QueueSpec::publisher(BM)), 2)
        .await;
    assert_eq!(sim.pushes(BM).await, vec![("IPH12".to_owned(), 9)]);

    // A decrease goes even without a fresh poll.
    sqlx::query("DELETE FROM sync_runs")
        .execute(&env.db)
        .await
        .unwrap();
    env.set_stock("IPH12", 5).await;
    eventually("4 shown", || async {
        sim.quantity(BM, "IPH12").await == Some(4)
    })
    .await;
    eventually("in sync", || async { env.in_sync(&sim, BM).await }).await;
    assert!(env.validate().await.is_clean());
    publisher.stop().await;
}

#[tokio::test]
async fn a_row_of_unknown_stock_is_never_pushed() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "NEVER-COUNTED", 7).await;
    env.orders_polled(BM).await;
    let locker = env.start(Role::Locker).await;
    let publisher = env.start_publisher(&sim).await;

    // An order creates the row (stock unknown) and announces it.
    sqlx::query("INSERT INTO variations (sku) VALUES ('NEVER-COUNTED')")
        .execute(&env.db)
        .await
        .unwrap();
    env.publish(&[created("O-1", "NEVER-COUNTED", 1)]).await;
    let queue = env.queue(&QueueSpec::publisher(BM));
    env.wait_settled(&queue, 1).await;
    // A counted row announced afterwards is pushed: the publisher went past the other.
    sim.listing(BM, "COUNTED", 0).await;
    env.set_stock("COUNTED", 3).await;
    eventually("the counted row is pushed", || async {
        sim.quantity(BM, "COUNTED").await == Some(2)
    })
    .await;
    assert_eq!(sim.quantity(BM, "NEVER-COUNTED").await, Some(7));
    assert!(
        sim.pushes(BM)
            .await
            .iter()
            .all(|(sku, _)| sku != "NEVER-COUNTED")
    );
    locker.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn a_burst_of_10000_changes_on_500_rows_costs_few_calls_and_ends_in_sync() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // Fast limits and no hourly cap on updates so the test is quick; the
    // benchmark measures the real limits.
    env.set_rate_limit(BM, 100, 1).await;
    env.set_quantity_cap(BM, None).await;
    sim.rate_limits(
        BM,
        json!({"requests": 1000, "window_ms": 1000}),
        json!({"requests": 100, "window_ms": 1000}),
    )
    .await;
    let skus: Vec<String> = (0..500).map(|n| format!("BURST-{n:03}")).collect();
    for sku in &skus {
        sim.listing(BM, sku, 0).await;
        env.set_stock(sku, 100).await;
    }
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    eventually("first sync of 500 rows", || async {
        env.in_sync(&sim, BM).await
    })
    .await;
    let before = sim.pushes(BM).await.len();
    assert_eq!(before, 500);

    // 10,000 orders of one unit, 20 per row, through the locker: 10,000
    // stock.changed messages, all decreases. They were never placed on the
    // simulator, so it did not decrement its listings: say so.
    sqlx::query("UPDATE marketplaces SET decrements_on_order = false")
        .execute(&env.db)
        .await
        .unwrap();
    let locker = env.start(Role::Locker).await;
    let events: Vec<_> = (0..10_000)
        .map(|n| created(&format!("B{n}"), &skus[n % 500], 1))
        .collect();
    for chunk in events.chunks(1000) {
        env.publish(chunk).await;
    }
    eventually("every order locked", || async {
        env.levels(&skus[0]).await.1 == 20
            && sqlx::query_scalar::<_, i64>("SELECT count(*) FROM marketplace_stock_locks")
                .fetch_one(&env.db)
                .await
                .unwrap()
                == 10_000
    })
    .await;
    eventually("every row in sync (invariant 5)", || async {
        env.in_sync(&sim, BM).await
    })
    .await;
    let calls = sim.pushes(BM).await.len() - before;
    println!("10,000 changes on 500 rows: {calls} quantity calls");
    assert!(
        calls <= 2_500,
        "{calls} quantity calls for 10,000 changes: coalescing should save at least 75%"
    );
    for sku in &skus {
        assert_eq!(sim.quantity(BM, sku).await, Some(72)); // floor(80 × 0.9)
    }
    assert_eq!(sim.violations(BM).await, 0);
    locker.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn an_increase_waits_for_a_fresh_orders_poll_so_an_unpolled_order_is_not_oversold() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "HOT", 0).await;
    env.orders_polled(BM).await;
    let locker = env.start(Role::Locker).await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock("HOT", 10).await;
    eventually("9 shown", || async {
        sim.quantity(BM, "HOT").await == Some(9)
    })
    .await;

    // The poll goes stale; a buyer orders 2 on the marketplace, which shows 7.
    sqlx::query("UPDATE sync_runs SET started_at = now() - interval '1 hour'")
        .execute(&env.db)
        .await
        .unwrap();
    let order = sim.order(BM, "HOT", 2).await;
    assert_eq!(sim.quantity(BM, "HOT").await, Some(7));
    let poller_queue = env.queue(&QueueSpec::poller());
    let poll_requests = env.depth(&poller_queue).await;

    // A top-up of 5: our table says 15 available (13 shown), but only 13 can
    // be sold, of which 11 may be shown. Pushing 13 would oversell.
    stockfleet::admin::stock::correct(
        &env.db,
        "HOT",
        BM,
        stockfleet::admin::stock::Correction::Adjust(5),
        "test",
        "top-up",
    )
    .await
    .unwrap();
    eventually("the publisher asks the poller for a poll", || async {
        env.depth(&poller_queue).await > poll_requests
    })
    .await;
    // The increase keeps coming back (deferred) and is never pushed.
    let queue = env.queue(&QueueSpec::publisher(BM));
    let settled = env.settled(&queue);
    env.wait_settled(&queue, settled + 5).await;
    assert_eq!(sim.quantity(BM, "HOT").await, Some(7));
    let dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher(BM));
    assert_eq!(env.depth(&dlq).await, 0);

    // The poll: the order reaches the locker, then the run is recorded.
    let order_id = order["id"].to_string();
    let item_id = format!("{order_id}-1");
    env.publish(&[order_event(
        stockfleet::events::ORDER_CREATED,
        &order_id,
        &item_id,
        "HOT",
        2,
        stockfleet::domain::OrderStatus::Pending,
    )])
    .await;
    eventually("locked", || async {
        env.levels("HOT").await == (15, 2, 13)
    })
    .await;
    assert!(sim.quantity(BM, "HOT").await.unwrap() <= 11);
    env.orders_polled(BM).await;
    eventually("the increase goes after the poll", || async {
        sim.quantity(BM, "HOT").await == Some(11)
    })
    .await;
    eventually("in sync", || async { env.in_sync(&sim, BM).await }).await;
    let pushed: Vec<i64> = sim.pushes(BM).await.into_iter().map(|(_, q)| q).collect();
    assert_eq!(pushed, vec![9, 11], "never more than could be sold");
    locker.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn marketplaces_added_or_moved_while_the_publisher_runs_are_served_without_a_restart() {
    let env = TestEnv::new().await;
    let first = env.sim().await;
    let publisher = env.start_publisher(&first).await;

    // A second Back Market account, added as one row while the publisher runs.
    sqlx::query(
        "INSERT INTO marketplaces (code, name, kind, base_url, credential_env)
         VALUES ('backmarket_fr', 'Back Market FR', 'backmarket', $1, 'BACKMARKET_FR_TOKEN')",
    )
    .bind(first.handle.base_url(BM))
    .execute(&env.db)
    .await
    .unwrap();
    first.listing(BM, "FR-1", 0).await;
    env.orders_polled("backmarket_fr").await;
    // Usually announced before the publisher (re-reading the table every
    // 200 ms) has declared its queue: then the reconciliation that a new
    // marketplace gets brings the row over.
    env.set_stock_on("backmarket_fr", "FR-1", 10).await;
    eventually("the new marketplace is served", || async {
        first.quantity(BM, "FR-1").await == Some(9)
    })
    .await;

    // Back Market moves (another simulator). The publisher notices within its
    // refresh interval: each new quantity lands on one of the two, and soon
    // on the new one.
    let second = env.sim().await;
    second.listing(BM, "IPH12", 0).await;
    first.listing(BM, "IPH12", 0).await;
    for available in (20..).step_by(10) {
        env.set_stock("IPH12", available).await;
        let shown = Some(i64::from(available) * 9 / 10);
        eventually("the quantity is pushed", || async {
            // Each increase needs a poll that started after the last push:
            // this stands in for the poller the publisher asks.
            env.orders_polled(BM).await;
            first.quantity(BM, "IPH12").await == shown
                || second.quantity(BM, "IPH12").await == shown
        })
        .await;
        if second.quantity(BM, "IPH12").await == shown {
            break;
        }
        assert!(available < 1000, "pushes never reached the new address");
    }
    publisher.stop().await;
}

#[tokio::test]
async fn an_order_placed_before_a_push_landed_is_lowered_when_learned_late() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(3600).await;
    sim.listing(BM, "LATE", 0).await;
    env.orders_polled(BM).await;
    let locker = env.start(Role::Locker).await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock("LATE", 10).await;
    eventually("9 shown", || async {
        sim.quantity(BM, "LATE").await == Some(9)
    })
    .await;

    // A top-up to 20 (covered by a poll): the publisher reads 9 shown, then
    // pushes 18. A buyer takes 1 while the push is on its way (Back Market
    // slowed to 1.5 s a call): the push overwrites the marketplace's own
    // decrement, and the order, dated to the second, came well before it.
    env.orders_polled(BM).await;
    sim.faults(BM, json!({"latency_ms": 1500})).await;
    let writes = || async {
        sim.get("/requests?marketplace=backmarket")
            .await
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["method"] == "POST")
            .count()
    };
    let before = writes().await;
    stockfleet::admin::stock::correct(
        &env.db,
        "LATE",
        BM,
        stockfleet::admin::stock::Correction::Adjust(10),
        "test",
        "top-up",
    )
    .await
    .unwrap();
    eventually("the push on its way", || async { writes().await > before }).await;
    sim.order(BM, "LATE", 1).await;
    assert_eq!(sim.quantity(BM, "LATE").await, Some(8));
    eventually("18 shown", || async {
        sim.quantity(BM, "LATE").await == Some(18)
    })
    .await;
    sim.clear_faults(BM).await;

    // The order is learned only now, after the push landed.
    let sync = env
        .cli(&["sync", "--marketplace", BM, "--type", "new"])
        .await;
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    eventually("locked", || async {
        env.levels("LATE").await == (20, 1, 19)
    })
    .await;

    // Back Market shows 18, not 18 − 1: the guard must push 17 down to it.
    eventually("17 shown", || async {
        sim.quantity(BM, "LATE").await == Some(17)
    })
    .await;
    eventually("in sync", || async { env.in_sync(&sim, BM).await }).await;
    locker.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn an_increase_short_of_budget_steps_aside_so_the_next_decrease_goes_at_once() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "INC", 2).await;
    sim.listing(BM, "DEC", 9).await;
    env.set_stock("INC", 3).await;
    env.set_stock("DEC", 10).await;
    // Both already pushed a minute ago (2 and 9 shown), then a fresh poll.
    env.pushed_a_minute_ago().await;
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    let queue = env.queue(&QueueSpec::publisher(BM));
    env.wait_settled(&queue, 2).await;
    assert_eq!(
        sim.pushes(BM).await,
        vec![],
        "both rows show their quantity"
    );

    // Back Market's listing budget: 2 permits for high priority (a push and
    // its listing lookup), none for low priority for about an hour.
    env.listing_budget_for_high_priority_only(BM).await;
    // An increase (2 → 9) is taken by the publisher and waits for a permit...
    env.set_stock("INC", 10).await;
    eventually("the increase in the publisher's hands", || async {
        env.scalar("SELECT count(*) FROM outbox").await == 0 && env.depth(&queue).await == 0
    })
    .await;
    // ...while a decrease (9 → 2) of another row is announced.
    env.set_stock("DEC", 3).await;
    eventually("the decrease pushed", || async {
        sim.quantity(BM, "DEC").await == Some(2)
    })
    .await;
    assert_eq!(
        sim.quantity(BM, "INC").await,
        Some(2),
        "the increase still waits"
    );
    let dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher(BM));
    assert_eq!(env.depth(&dlq).await, 0, "a waiting increase is no failure");
    publisher.stop().await;
}
