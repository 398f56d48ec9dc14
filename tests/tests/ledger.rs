//! The locker and reducer against real PostgreSQL and RabbitMQ (design §4, §7).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use stockfleet::bus::headers::{ATTEMPTS, ERROR, ERROR_KIND, ORIGINAL_ROUTING_KEY};
use stockfleet::bus::{Envelope, QueueSpec};
use stockfleet::domain::OrderStatus::{Accepted, Cancelled, Shipped};
use stockfleet::ledger::Role;
use stockfleet_tests::*;

#[tokio::test]
async fn lock_then_complete_moves_listed_and_locked_with_history_and_one_event_per_change() {
    let env = TestEnv::new().await;
    let observer = env.observe("stock.changed.*").await;
    env.set_stock("IPH12-128", 10).await;
    let locker = env.start(Role::Locker).await;
    let reducer = env.start(Role::Reducer).await;

    env.publish(&[created("BM-1", "IPH12-128", 2)]).await;
    eventually("lock", || async {
        env.levels("IPH12-128").await == (10, 2, 8)
    })
    .await;
    assert_eq!(
        env.lock_state("BM-1", "BM-1-1").await.as_deref(),
        Some("locked")
    );

    env.publish(&[changed("BM-1", "IPH12-128", 2, Accepted)])
        .await;
    env.publish(&[changed("BM-1", "IPH12-128", 2, Shipped)])
        .await;
    eventually("consume", || async {
        env.levels("IPH12-128").await == (8, 0, 8)
    })
    .await;
    env.wait_settled(&env.queue(&QueueSpec::locker()), 3).await;
    env.wait_settled(&env.queue(&QueueSpec::reducer()), 3).await;
    assert_eq!(
        env.lock_state("BM-1", "BM-1-1").await.as_deref(),
        Some("consumed")
    );

    let history: Vec<(String, i32, i32, i32, i32)> = sqlx::query_as(
        "SELECT change_type, listed_before, listed_after, locked_before, locked_after
         FROM marketplace_stock_history ORDER BY id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(
        history,
        vec![
            ("manual".into(), 0, 10, 0, 0),
            ("lock".into(), 10, 10, 0, 2),
            ("order_completed".into(), 10, 8, 2, 0),
        ]
    );
    eventually("outbox relayed", || async { env.outbox_len().await == 0 }).await;
    let events = observer.take().await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| e.payload["change_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["manual", "lock", "order_completed"]);
    assert!(env.validate().await.is_clean());
    locker.stop().await;
    reducer.stop().await;
}

#[tokio::test]
async fn out_of_order_and_never_open_orders_end_as_the_rules_say() {
    let env = TestEnv::new().await;
    env.set_stock("PIXEL7", 20).await;
    let locker = env.start(Role::Locker).await;
    let reducer = env.start(Role::Reducer).await;

    // lock → cancel
    env.publish(&[
        created("A", "PIXEL7", 2),
        changed("A", "PIXEL7", 2, Cancelled),
    ])
    .await;
    // cancel seen before created: the tombstone keeps the late creation from locking
    env.publish(&[changed("B", "PIXEL7", 3, Cancelled)]).await;
    env.wait_settled(&env.queue(&QueueSpec::locker()), 3).await;
    env.publish(&[created("B", "PIXEL7", 3)]).await;
    // completion seen before created
    env.publish(&[changed("C", "PIXEL7", 1, Shipped)]).await;
    env.wait_settled(&env.queue(&QueueSpec::reducer()), 5).await;
    env.publish(&[created("C", "PIXEL7", 1)]).await;
    // never seen open
    env.publish(&[changed("D", "PIXEL7", 4, Shipped)]).await;

    env.wait_settled(&env.queue(&QueueSpec::locker()), 7).await;
    env.wait_settled(&env.queue(&QueueSpec::reducer()), 7).await;
    assert_eq!(
        env.lock_state("A", "A-1").await.as_deref(),
        Some("released")
    );
    assert_eq!(
        env.lock_state("B", "B-1").await.as_deref(),
        Some("released")
    );
    assert_eq!(
        env.lock_state("C", "C-1").await.as_deref(),
        Some("consumed")
    );
    assert_eq!(
        env.lock_state("D", "D-1").await.as_deref(),
        Some("consumed")
    );
    // 20 − 1 (C) − 4 (D), nothing left locked
    assert_eq!(env.levels("PIXEL7").await, (15, 0, 15));
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
    locker.stop().await;
    reducer.stop().await;
}

/// Per order: created, then shipped, cancelled or still open; some orders of 2 units.
fn stream(seed: u64) -> (Vec<Envelope>, i32, i32) {
    let mut events = Vec::new();
    let (mut listed_drop, mut still_locked) = (0, 0);
    for n in 0..40u64 {
        let order = format!("O{n}");
        let sku = ["S1", "S2", "S3"][(n % 3) as usize];
        let quantity = 1 + ((n + seed) % 2) as i64;
        events.push(created(&order, sku, quantity));
        match n % 3 {
            0 => {
                events.push(changed(&order, sku, quantity, Shipped));
                listed_drop += quantity as i32;
            }
            1 => events.push(changed(&order, sku, quantity, Cancelled)),
            _ => still_locked += quantity as i32,
        }
    }
    (events, listed_drop, still_locked)
}

async fn final_state(env: &TestEnv) -> Vec<(String, i32, i32, String, String)> {
    sqlx::query_as(
        "SELECT v.sku, s.listed_stock, s.locked_stock, l.order_external_id, l.lock_status
         FROM marketplace_stock_locks l JOIN marketplace_stock s ON s.id = l.stock_id
         JOIN variations v ON v.id = s.variation_id ORDER BY 4",
    )
    .fetch_all(&env.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_message_twice_and_shuffled_ends_like_one_ordered_delivery() {
    let (events, listed_drop, still_locked) = stream(7);
    let ordered = TestEnv::new().await;
    let shuffled = TestEnv::new().await;
    for env in [&ordered, &shuffled] {
        for sku in ["S1", "S2", "S3"] {
            env.set_stock(sku, 50).await;
        }
    }

    // One consumer per queue handles messages in publish order.
    let workers = [
        ordered.start(Role::Locker).await,
        ordered.start(Role::Reducer).await,
    ];
    ordered.publish(&events).await;
    ordered
        .wait_settled(&ordered.queue(&QueueSpec::locker()), events.len() as u64)
        .await;
    ordered
        .wait_settled(&ordered.queue(&QueueSpec::reducer()), events.len() as u64)
        .await;

    let mut twice: Vec<Envelope> = events.iter().chain(events.iter()).cloned().collect();
    twice.shuffle(&mut rand::rngs::StdRng::seed_from_u64(42));
    shuffled.publish(&twice).await;
    let more = [
        shuffled.start(Role::Locker).await,
        shuffled.start(Role::Reducer).await,
    ];
    shuffled
        .wait_settled(&shuffled.queue(&QueueSpec::locker()), twice.len() as u64)
        .await;
    shuffled
        .wait_settled(&shuffled.queue(&QueueSpec::reducer()), twice.len() as u64)
        .await;

    assert_eq!(final_state(&shuffled).await, final_state(&ordered).await);
    let total: (i64, i64) = sqlx::query_as(
        "SELECT sum(listed_stock)::bigint, sum(locked_stock)::bigint FROM marketplace_stock",
    )
    .fetch_one(&shuffled.db)
    .await
    .unwrap();
    assert_eq!(
        total,
        (150 - i64::from(listed_drop), i64::from(still_locked))
    );
    for env in [&ordered, &shuffled] {
        let report = env.validate().await;
        assert!(report.is_clean(), "{report:?}");
    }
    for worker in workers.into_iter().chain(more) {
        worker.stop().await;
    }
}

#[tokio::test]
async fn bad_messages_are_dead_lettered_with_a_reason_and_consumption_goes_on() {
    let env = TestEnv::new().await;
    env.set_stock("GOOD", 5).await;
    let locker = env.start(Role::Locker).await;

    env.publish_raw("order.created.backmarket", b"{not json".to_vec())
        .await;
    env.publish(&[created("U", "NO-SUCH-SKU", 1)]).await;
    env.publish(&[created("Z", "GOOD", 0)]).await;
    env.publish(&[created("N", "GOOD", -2)]).await;
    let mut foreign = created("F", "GOOD", 1);
    foreign.marketplace = "ebay".into();
    env.publish_raw("order.created.backmarket", foreign.to_bytes())
        .await;
    env.publish(&[created("OK", "GOOD", 1)]).await;

    eventually("good order locked", || async {
        env.levels("GOOD").await == (5, 1, 4)
    })
    .await;
    env.wait_settled(&env.queue(&QueueSpec::locker()), 6).await;
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::locker());
    // Settled is counted when the consumer has handed a letter over; on a
    // loaded machine the broker may show it in the queue a moment later.
    eventually("five dead letters", || async { env.depth(&dlq).await == 5 }).await;
    let dead = env.drain(&dlq).await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|(headers, _)| {
            assert_eq!(header(headers, ERROR_KIND).as_deref(), Some("permanent"));
            assert_eq!(
                header(headers, ORIGINAL_ROUTING_KEY).as_deref(),
                Some("order.created.backmarket")
            );
            assert_eq!(
                stockfleet::bus::headers::get_u32(headers, ATTEMPTS),
                Some(1)
            );
            header(headers, ERROR).unwrap()
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("malformed envelope")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unknown SKU \"NO-SUCH-SKU\"")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("got 0")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("got -2")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("marketplace \"ebay\" does not match routing key")),
        "{reasons:?}"
    );
    assert_eq!(env.lock_state("U", "U-1").await, None);
    locker.stop().await;
}

#[tokio::test]
async fn transient_failures_retry_through_delay_queues_then_dead_letter() {
    let env = TestEnv::new().await;
    env.set_stock("FLAKY", 5).await;
    // Another transaction holds the stock table; the locker's lock_timeout turns
    // the wait into a transient error (55P03), as a busy or failing-over database would.
    let mut blocker = env.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE marketplace_stock IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut settings = env.settings.clone();
    settings
        .database_url
        .push_str("?options=-c%20lock_timeout%3D100");
    let locker = env.start_with(settings, Role::Locker).await;
    env.publish(&[created("R", "FLAKY", 1)]).await;
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::locker());
    eventually("dead-lettered after max attempts", || async {
        env.depth(&dlq).await == 1
    })
    .await;
    let dead = env.drain(&dlq).await;
    let headers = &dead[0].0;
    assert_eq!(header(headers, ERROR_KIND).as_deref(), Some("transient"));
    assert_eq!(
        stockfleet::bus::headers::get_u32(headers, ATTEMPTS),
        Some(3)
    );
    blocker.rollback().await.unwrap();
    locker.stop().await;
}

#[tokio::test]
async fn validate_names_a_corrupted_row_and_repair_fixes_it() {
    let env = TestEnv::new().await;
    env.set_stock("DRIFT", 10).await;
    let locker = env.start(Role::Locker).await;
    env.publish(&[created("V", "DRIFT", 2)]).await;
    eventually("lock", || async { env.levels("DRIFT").await == (10, 2, 8) }).await;
    locker.stop().await;
    assert!(env.validate().await.is_clean());

    sqlx::query("UPDATE marketplace_stock SET locked_stock = locked_stock + 3, listed_stock = 4")
        .execute(&env.db)
        .await
        .unwrap();
    let report = env.validate().await;
    let broken: Vec<u8> = report.violations.iter().map(|v| v.invariant).collect();
    assert!(broken.contains(&1) && broken.contains(&4), "{report:?}");
    assert!(report.violations[0].detail.contains("DRIFT"));

    let repaired = stockfleet::admin::validate::repair(&env.db, "test")
        .await
        .unwrap();
    assert_eq!(repaired.len(), 1);
    assert_eq!(env.levels("DRIFT").await, (10, 2, 8));
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
    let reconciliations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM marketplace_stock_history WHERE change_type = 'reconciliation' AND actor = 'test'",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(reconciliations, 1);
}

#[tokio::test]
async fn units_locked_beyond_what_was_listed_are_reported_as_oversold() {
    let env = TestEnv::new().await;
    env.set_stock("OVER", 2).await;
    env.set_stock("FINE", 5).await;
    let locker = env.start(Role::Locker).await;
    assert_eq!(env.validate().await.oversold_units[MARKETPLACE], 0);

    // The marketplace took 3 units of a row that listed 2, and 1 of 5.
    env.publish(&[created("OV-1", "OVER", 3), created("OV-2", "FINE", 1)])
        .await;
    eventually("both locked", || async {
        env.levels("OVER").await == (2, 3, 0) && env.levels("FINE").await == (5, 1, 4)
    })
    .await;
    let report = env.validate().await;
    assert_eq!(report.oversold_units[MARKETPLACE], 1);
    assert_eq!(report.oversold_units["refurbed"], 0);
    let oversold: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.kind == "oversold")
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(
        oversold,
        ["OVER on backmarket: 1 unit(s) oversold (3 locked by orders, 2 listed)"]
    );
    let every = stockfleet::marketplace::directory::codes(&env.db)
        .await
        .unwrap();
    let totals = stockfleet::admin::overview::totals(&env.db, &every)
        .await
        .unwrap();
    assert_eq!(totals.oversold_units, 1);
    locker.stop().await;
}
