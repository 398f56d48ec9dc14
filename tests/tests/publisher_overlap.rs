//! Batches of one stock queue overlap (the publisher works several at once):
//! a row's work holds the row's lock, and the marketplace ends at what the
//! last change of the row asked for, however its batches interleave
//! (publisher/push.rs, publisher/row_lock.rs).

use stockfleet::bus::QueueSpec;
use stockfleet_tests::*;

const BM: &str = "backmarket";

/// (pushes the simulator took for `sku`, api_sync history rows of it,
/// last_api_quantity).
async fn pushed(env: &TestEnv, sim: &Sim, sku: &str) -> (Vec<i64>, i64, Option<i32>) {
    let pushes = sim
        .pushes(BM)
        .await
        .into_iter()
        .filter(|(pushed, _)| pushed == sku)
        .map(|(_, quantity)| quantity)
        .collect();
    let recorded = env
        .scalar("SELECT count(*) FROM marketplace_stock_history WHERE change_type = 'api_sync'")
        .await;
    let last: Option<i32> = sqlx::query_scalar("SELECT last_api_quantity FROM marketplace_stock")
        .fetch_one(&env.db)
        .await
        .unwrap();
    (pushes, recorded, last)
}

/// The sum of a metric family's series in this process whose labels hold `label`.
fn metric(name: &str, label: &str) -> u64 {
    stockfleet::telemetry::metrics()
        .render()
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn a_decrease_overtaking_its_rows_increase_waiting_for_permits_is_what_the_marketplace_keeps()
{
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "ROW", 9).await;
    env.set_stock("ROW", 10).await;
    // Pushed a minute ago (9 shown), then a fresh poll: an increase is covered.
    env.pushed_a_minute_ago().await;
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    let queue = env.queue(&QueueSpec::publisher(BM));
    env.wait_settled(&queue, 1).await;
    assert_eq!(sim.pushes(BM).await, vec![], "9 shown already");

    let observer = env.observe("stock.changed.*").await;
    // No low-priority permit (the increase's read and push) comes.
    let seeded = env.listing_budget(BM).await;
    env.listing_budget_for_high_priority_only(BM).await;
    // An increase (9 → 18) is taken by one batch and waits for its permits...
    env.set_stock("ROW", 20).await;
    eventually("the increase waiting for its permits", || async {
        metric("stockfleet_push_rows_waiting_for_permits", BM) == 1
    })
    .await;
    // ...while a decrease of the same row (9 → 4) comes in the next batch.
    env.set_stock("ROW", 5).await;
    let announced = tokio::time::Instant::now();
    eventually("the decrease pushed", || async {
        sim.quantity(BM, "ROW").await == Some(4)
    })
    .await;
    let took = announced.elapsed();
    // Worked one batch at a time, the decrease would wait for the increase's
    // patience (5 s) to run out.
    assert!(
        took < std::time::Duration::from_secs(3),
        "the decrease waited {took:?} behind its row's increase"
    );

    // The increase gets its permits: under the row's lock it finds the row
    // pushed at 4, and sends nothing (its view, 18, is gone).
    env.set_listing_budget(BM, seeded, f64::from(seeded.0))
        .await;
    env.wait_settled(&queue, 3).await;
    let delay_queues = env.bus.topology.delay_queues();
    eventually("nothing deferred is left", || async {
        let mut waiting = 0;
        for delay_queue in &delay_queues {
            waiting += env.depth(delay_queue).await;
        }
        waiting == 0 && env.depth(&queue).await == 0
    })
    .await;
    assert_eq!(sim.quantity(BM, "ROW").await, Some(4));
    // Its read's and push's permits, taken before the lock, went unspent
    // (unless it ran out of patience first and came back as a new batch).
    let deferred = metric("stockfleet_messages_deferred_total", &queue);
    let unused = metric("stockfleet_push_permits_unused_total", BM);
    if deferred == 0 {
        assert_eq!(unused, 2, "the increase's permits are counted unused");
    }
    assert_eq!(
        pushed(&env, &sim, "ROW").await,
        (vec![4], 1, Some(4)),
        "one push, recorded once, and the row knows it"
    );

    // Both changes delivered again, in their order: nothing more is sent.
    let changes = observer.take().await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    let settled = env.settled(&queue);
    env.publish(&changes).await;
    env.wait_settled(&queue, settled + 2).await;
    assert_eq!(pushed(&env, &sim, "ROW").await, (vec![4], 1, Some(4)));
    let dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher(BM));
    assert_eq!(env.depth(&dlq).await, 0);
    assert!(env.validate().await.is_clean());
    publisher.stop().await;
}

#[tokio::test]
async fn sigterm_with_batches_waiting_for_permits_exits_0_and_every_row_lands_once_after() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let skus: Vec<String> = (1..=6).map(|n| format!("TERM-{n}")).collect();
    for sku in &skus {
        sim.listing(BM, sku, 0).await;
    }
    let seeded = env.listing_budget(BM).await;
    env.listing_budget_for_high_priority_only(BM).await;
    env.orders_polled(BM).await;
    let publisher = env.spawn("stockfleet-publisher");
    let queue = env.queue(&QueueSpec::publisher(BM));
    eventually("the publisher consumes its stock queue", || async {
        env.consumers(&queue).await > 0
    })
    .await;
    // One increase at a time, each taken before the next is announced: a
    // batch each, all waiting for low-priority permits together.
    for sku in &skus {
        env.set_stock(sku, 10).await;
        eventually("the increase in the publisher's hands", || async {
            env.scalar("SELECT count(*) FROM outbox").await == 0 && env.depth(&queue).await == 0
        })
        .await;
    }
    let signalled = tokio::time::Instant::now();
    terminate(publisher).await;
    // The batches under way end by their patience (5 s), deferred, within
    // the grace period (10 s): none is cut off.
    let took = signalled.elapsed();
    assert!(
        took < std::time::Duration::from_secs(9),
        "SIGTERM -> exit took {took:?}"
    );
    assert!(sim.pushes(BM).await.is_empty(), "nothing had its permits");

    env.set_listing_budget(BM, seeded, f64::from(seeded.0))
        .await;
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    eventually("every row lands", || async { env.in_sync(&sim, BM).await }).await;
    let mut pushed: Vec<(String, i64)> = sim.pushes(BM).await;
    pushed.sort();
    let once: Vec<(String, i64)> = skus.iter().map(|sku| (sku.clone(), 9)).collect();
    assert_eq!(pushed, once, "each row pushed once");
    let dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher(BM));
    assert_eq!(env.depth(&dlq).await, 0);
    publisher.stop().await;
}
