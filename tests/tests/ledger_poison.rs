//! One poison message in a locker batch (a value the database refuses after
//! the edge checks passed it): the batch is split until the poison is alone,
//! its neighbours are applied, and only it is dead-lettered with its reason.

use stockfleet::bus::headers::{ERROR, ERROR_KIND};
use stockfleet::bus::{Envelope, QueueSpec};
use stockfleet::ledger::Role;
use stockfleet_tests::*;

/// `neighbours` orders of one unit of MANY with `poison` among them (at
/// `at`), published before the locker starts so they arrive as one batch;
/// returns the locker once it settled them all.
async fn lock_a_batch_with_poison(
    env: &TestEnv,
    (neighbours, poison, at): (usize, &Envelope, usize),
    settings: stockfleet::config::Settings,
) -> InProcessWorker {
    let mut events: Vec<Envelope> = (0..neighbours)
        .map(|i| created(&format!("G{i}"), "MANY", 1))
        .collect();
    events.insert(at, poison.clone());
    env.publish(&events).await;
    let queue = env.queue(&QueueSpec::locker());
    let all = events.len() as u32;
    eventually(&format!("{all} messages queued"), || async {
        env.depth(&queue).await == all
    })
    .await;
    let locker = env.start_with(settings, Role::Locker).await;
    env.wait_settled(&queue, u64::from(all)).await;
    locker
}

/// Asserts the poison alone was dead-lettered, as a permanent failure;
/// returns its reason.
async fn only_the_poison_dead_lettered(env: &TestEnv, poison: &Envelope) -> String {
    let dlq = env.bus.topology.dead_letter_queue(&QueueSpec::locker());
    let dead = env.drain(&dlq).await;
    assert_eq!(dead.len(), 1, "only the poison is dead-lettered");
    let (headers, body) = &dead[0];
    assert_eq!(Envelope::decode(body).unwrap().id, poison.id);
    assert_eq!(header(headers, ERROR_KIND).as_deref(), Some("permanent"));
    header(headers, ERROR).unwrap()
}

/// Asserts how many transactions committed the lock rows.
async fn locks_committed_in(env: &TestEnv, expected: std::ops::RangeInclusive<i64>) {
    let transactions = env
        .scalar("SELECT count(DISTINCT xmin::text) FROM marketplace_stock_locks")
        .await;
    assert!(
        expected.contains(&transactions),
        "{transactions} transactions"
    );
}

/// Issue 13: a value the database refuses fails the batch's transaction; the
/// consumer splits the batch until the poison is alone, so its 40 neighbours
/// are applied and only it is dead-lettered, with its own reason.
#[tokio::test]
async fn a_poison_message_costs_its_batch_neighbours_nothing() {
    let env = TestEnv::new().await;
    env.set_stock("MANY", 100).await;
    let poison = created("X\u{0}", "MANY", 1);
    // One batch: the test's batch size is 50.
    let settings = env.settings.clone();
    let locker = lock_a_batch_with_poison(&env, (40, &poison, 25), settings).await;

    assert_eq!(env.levels("MANY").await, (100, 40, 60));
    for i in 0..40 {
        let order = format!("G{i}");
        assert_eq!(
            env.lock_state(&order, &format!("{order}-1"))
                .await
                .as_deref(),
            Some("locked")
        );
    }
    let reason = only_the_poison_dead_lettered(&env, &poison).await;
    assert!(
        reason.contains("0x00") || reason.contains("NUL"),
        "{reason}"
    );
    assert!(env.validate().await.is_clean());
    locker.stop().await;
}

/// Issue 33: the set-based batch is one transaction of one write statement;
/// a value the database refuses there (a trigger stands in for any refusal
/// that passes the edge checks) fails it, and the batch of 100 is split
/// until the poison is alone: its 99 neighbours are committed in a few
/// shared transactions, none retried or dead-lettered.
#[tokio::test]
async fn a_poison_message_in_a_batch_of_100_costs_no_neighbour() {
    let env = TestEnv::new().await;
    env.set_stock("MANY", 1000).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.order_external_id = 'POISON' THEN
                 RAISE EXCEPTION 'poisoned order item %', NEW.order_item_external_id;
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON marketplace_stock_locks
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let poison = created("POISON", "MANY", 1);
    let mut settings = env.settings.clone();
    settings.consumer.batch_size = 100;
    settings.consumer.prefetch = 200;
    let locker = lock_a_batch_with_poison(&env, (99, &poison, 60), settings).await;

    assert_eq!(env.levels("MANY").await, (1000, 99, 901));
    let locked = env
        .scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
        .await;
    assert_eq!(locked, 99, "every neighbour applied at once, none retried");
    // Halving a batch of 100 around one poison commits its neighbours in 7
    // transactions (a few more when the deliveries came as two batches);
    // one per message would mean no batch at all.
    locks_committed_in(&env, 1..=14).await;
    let reason = only_the_poison_dead_lettered(&env, &poison).await;
    assert!(reason.contains("poisoned order item POISON-1"), "{reason}");
    let history = env
        .scalar(
            "SELECT count(*) FROM marketplace_stock_history WHERE order_external_id IS NOT NULL",
        )
        .await;
    assert_eq!(
        history, 99,
        "one history row per neighbour, none for the poison"
    );
    locker.stop().await;
}

/// Issue 33: SKUs are resolved inside the batch's transaction. A message
/// naming an unknown SKU fails alone, none of its items applied (its other
/// items' SKUs are known, one without a stock row yet: none is locked or
/// created), and costs no split: its 40 neighbours commit in their batch's
/// transaction.
#[tokio::test]
async fn an_unknown_sku_fails_its_message_alone_and_its_neighbours_commit_together() {
    let env = TestEnv::new().await;
    env.set_stock("MANY", 100).await;
    let mut mixed = created("MIXED", "MANY", 1);
    let mut event: stockfleet::events::OrderEvent = mixed.payload().unwrap();
    let mut unknown = event.items[0].clone();
    unknown.item_id = "MIXED-2".into();
    unknown.sku = "NO-SUCH-SKU".into();
    let mut rowless = event.items[0].clone();
    rowless.item_id = "MIXED-3".into();
    rowless.sku = "NO-ROW-YET".into();
    event.items.extend([unknown, rowless]);
    sqlx::query("INSERT INTO variations (sku) VALUES ('NO-ROW-YET')")
        .execute(&env.db)
        .await
        .unwrap();
    mixed = Envelope::new(&mixed.kind, &mixed.marketplace, &event);
    let settings = env.settings.clone();
    let locker = lock_a_batch_with_poison(&env, (40, &mixed, 20), settings).await;

    assert_eq!(env.levels("MANY").await, (100, 40, 60));
    assert_eq!(env.lock_state("MIXED", "MIXED-1").await, None);
    let rows_of_known_sku = env
        .scalar(
            "SELECT count(*) FROM marketplace_stock s JOIN variations v ON v.id = s.variation_id
             WHERE v.sku = 'NO-ROW-YET'",
        )
        .await;
    assert_eq!(
        rows_of_known_sku, 0,
        "a failed message creates no stock row"
    );
    // Two when the deliveries came as two batches; a split around a failed
    // transaction would take six or more.
    locks_committed_in(&env, 1..=2).await;
    let reason = only_the_poison_dead_lettered(&env, &mixed).await;
    assert!(reason.contains("unknown SKU \"NO-SUCH-SKU\""), "{reason}");
    assert!(
        !reason.contains("NO-ROW-YET"),
        "a known SKU is not named: {reason}"
    );
    assert!(env.validate().await.is_clean());
    locker.stop().await;
}
