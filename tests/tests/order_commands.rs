//! Order commands are idempotent against the marketplace's state: a command
//! the marketplace refuses because the item already got there (a redelivery)
//! is done, one whose order ended another way (the buyer cancelled) is a
//! recorded no-op, and only a refusal an operator must look at is a dead
//! letter. Includes a publisher killed between the marketplace's accept and
//! the acknowledgement.

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use serde_json::{Value, json};
use stockfleet::bus::{Envelope, Exchange, QueueSpec};
use stockfleet::domain::OrderStatus;
use stockfleet::events::{
    ACCEPT_ORDERLINE, AcceptOrderline, CommandItem, CommandTracking, UPDATE_ORDER_STATUS,
    UpdateOrderStatus, marketplace_command_key,
};
use stockfleet_tests::*;

const BM: &str = "backmarket";
const RF: &str = "refurbed";

/// Sends a command to a marketplace's publisher, as the poller's relay would.
async fn send(env: &TestEnv, envelope: &Envelope) {
    let channel = env.bus.channel().await.expect("channel");
    channel
        .basic_publish(
            env.bus.topology.exchange(Exchange::Commands).into(),
            marketplace_command_key(&envelope.marketplace, &envelope.kind)
                .as_str()
                .into(),
            BasicPublishOptions::default(),
            &envelope.to_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
}

/// An order of one item on the simulator, moved through `states` (raw).
/// Returns (order id, item id).
async fn order_in(sim: &Sim, marketplace: &str, sku: &str, states: &[&str]) -> (String, String) {
    let order = sim.order(marketplace, sku, 1).await;
    let order_id = order["id"].to_string();
    let item_id = order["items"][0]["id"].to_string();
    for state in states {
        sim.move_order(marketplace, &order_id, state).await;
    }
    (order_id, item_id)
}

fn accept(marketplace: &str, order_id: &str, item_id: &str, sku: &str) -> Envelope {
    let command = AcceptOrderline {
        order_id: order_id.to_owned(),
        item_id: item_id.to_owned(),
        sku: sku.to_owned(),
    };
    Envelope::new(ACCEPT_ORDERLINE, marketplace, &command)
}

fn update(
    marketplace: &str,
    order_id: &str,
    item: Option<(&str, &str)>,
    status: OrderStatus,
) -> Envelope {
    let command = UpdateOrderStatus {
        order_id: order_id.to_owned(),
        status,
        items: item
            .map(|(item_id, sku)| CommandItem {
                item_id: item_id.to_owned(),
                sku: sku.to_owned(),
            })
            .into_iter()
            .collect(),
        tracking: Some(CommandTracking {
            number: Some("1Z999".into()),
            url: Some("https://track.example/1Z999".into()),
            carrier: Some("UPS".into()),
        }),
    };
    Envelope::new(UPDATE_ORDER_STATUS, marketplace, &command)
}

async fn item_state(sim: &Sim, marketplace: &str, order_id: &str) -> Value {
    sim.get(&format!("/orders/{marketplace}/{order_id}")).await["items"][0]["state"].clone()
}

/// Every request the simulator received for `marketplace`.
async fn requests(sim: &Sim, marketplace: &str) -> Vec<serde_json::Value> {
    let requests = sim
        .get(&format!("/requests?marketplace={marketplace}"))
        .await;
    requests.as_array().unwrap().clone()
}

/// Writes to a marketplace's orders that it refused (400).
async fn refused_writes(sim: &Sim, marketplace: &str) -> usize {
    requests(sim, marketplace)
        .await
        .iter()
        .filter(|r| r["method"] == "POST" && r["status"] == 400)
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            path.contains("/ws/orders/") || path.contains("OrderItemService")
        })
        .count()
}

async fn moot_rows(env: &TestEnv) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT m.code, c.order_external_id, c.command, c.found_status
         FROM moot_order_commands c JOIN marketplaces m ON m.id = c.marketplace_id
         ORDER BY m.code, c.order_external_id, c.command",
    )
    .fetch_all(&env.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn commands_for_items_already_there_or_cancelled_by_the_buyer_are_no_dead_letters() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "CMD-BM", 50).await;
    sim.listing(RF, "CMD-RF", 50).await;
    // Back Market lines: accepted, shipped, cancelled by the buyer, and one
    // still unpaid (state 0), whose accept is a real refusal.
    let bm_accepted = order_in(&sim, BM, "CMD-BM", &["2"]).await;
    let bm_shipped = order_in(&sim, BM, "CMD-BM", &["2", "3"]).await;
    let bm_cancelled = order_in(&sim, BM, "CMD-BM", &["4"]).await;
    let bm_unpaid = {
        let order = sim
            .post(
                "/orders",
                json!({"marketplace": BM, "status": "0", "items": [{"sku": "CMD-BM", "quantity": 1}]}),
            )
            .await;
        (order["id"].to_string(), order["items"][0]["id"].to_string())
    };
    let rf_accepted = order_in(&sim, RF, "CMD-RF", &["ACCEPTED"]).await;
    let rf_shipped = order_in(&sim, RF, "CMD-RF", &["ACCEPTED", "SHIPPED"]).await;
    let rf_cancelled = order_in(&sim, RF, "CMD-RF", &["CANCELLED"]).await;

    let mut bm_commands = Vec::new();
    for (order, item) in [&bm_accepted, &bm_shipped, &bm_cancelled, &bm_unpaid] {
        bm_commands.push(accept(BM, order, item, "CMD-BM"));
    }
    // Ship an order already shipped (Back Market ships the whole order).
    bm_commands.push(update(BM, &bm_shipped.0, None, OrderStatus::Shipped));
    let mut rf_commands = Vec::new();
    for (order, item) in [&rf_accepted, &rf_shipped, &rf_cancelled] {
        rf_commands.push(accept(RF, order, item, "CMD-RF"));
    }
    // Ship an item the buyer cancelled, and one already returned past shipping.
    rf_commands.push(update(
        RF,
        &rf_cancelled.0,
        Some((&rf_cancelled.1, "CMD-RF")),
        OrderStatus::Shipped,
    ));
    rf_commands.push(update(
        RF,
        &rf_shipped.0,
        Some((&rf_shipped.1, "CMD-RF")),
        OrderStatus::Accepted,
    ));
    for envelope in bm_commands.iter().chain(&rf_commands) {
        send(&env, envelope).await;
    }

    let publisher = env.start_publisher(&sim).await;
    let bm_queue = env.queue(&QueueSpec::publisher_commands(BM));
    let rf_queue = env.queue(&QueueSpec::publisher_commands(RF));
    env.wait_settled(&bm_queue, bm_commands.len() as u64).await;
    env.wait_settled(&rf_queue, rf_commands.len() as u64).await;

    // Every write was refused by the marketplace: the outcome came from reading the order.
    assert_eq!(refused_writes(&sim, BM).await, bm_commands.len());
    // Refurbed's accepts share batch calls, the two status changes go in one
    // each (refused item by item inside a 200), and every command read its
    // order once to settle the refusal. Three accepts in one call make 3
    // calls; the consumer's first batch can hold only the deliveries already
    // arrived (one, at worst), which makes 4. Unbatched accepts make 5.
    let batch_calls = sim.requests_to(RF, "BatchUpdateOrderItemsState").await;
    assert!(
        (3..=4).contains(&batch_calls),
        "{batch_calls} batch calls for 3 accepts and 2 status changes"
    );
    assert_eq!(sim.requests_to(RF, "UpdateOrderItemState").await, 0);
    assert!(sim.requests_to(RF, "GetOrder").await >= rf_commands.len());
    // Only the unpaid line's accept is for an operator.
    let bm_dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher_commands(BM));
    let rf_dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher_commands(RF));
    eventually("the unpaid line's accept dead-lettered", || async {
        env.depth(&bm_dlq).await == 1
    })
    .await;
    let letters = env.drain(&bm_dlq).await;
    let letter = Envelope::decode(&letters[0].1).unwrap();
    assert_eq!(
        letter.payload["order_id"].as_str(),
        Some(bm_unpaid.0.as_str())
    );
    let reason = header(&letters[0].0, stockfleet::bus::headers::ERROR).unwrap_or_default();
    assert!(reason.contains("is 0"), "{reason}");
    assert_eq!(env.depth(&rf_dlq).await, 0);

    // The buyer's cancellations are recorded, once each, where an operator finds them.
    assert_eq!(
        moot_rows(&env).await,
        vec![
            (
                BM.to_owned(),
                bm_cancelled.0.clone(),
                ACCEPT_ORDERLINE.to_owned(),
                "4".to_owned()
            ),
            (
                RF.to_owned(),
                rf_cancelled.0.clone(),
                ACCEPT_ORDERLINE.to_owned(),
                "CANCELLED".to_owned()
            ),
            (
                RF.to_owned(),
                rf_cancelled.0.clone(),
                UPDATE_ORDER_STATUS.to_owned(),
                "CANCELLED".to_owned()
            ),
        ]
    );
    // The order's detail (as the API serves it) lists them.
    sqlx::query(
        "INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw)
         SELECT id, $1, 'cancelled', 'CANCELLED', '{}' FROM marketplaces WHERE code = $2",
    )
    .bind(&rf_cancelled.0)
    .bind(RF)
    .execute(&env.db)
    .await
    .unwrap();
    let detail = stockfleet::admin::orders::order(&env.db, &[RF.to_owned()], RF, &rf_cancelled.0)
        .await
        .unwrap()
        .expect("the order");
    let moot: Vec<(&str, &str, &str)> = detail
        .moot_commands
        .iter()
        .map(|c| {
            (
                c.item_id.as_str(),
                c.command.as_str(),
                c.requested_status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        moot,
        vec![
            (rf_cancelled.1.as_str(), ACCEPT_ORDERLINE, "accepted"),
            (rf_cancelled.1.as_str(), UPDATE_ORDER_STATUS, "shipped"),
        ]
    );
    assert!(detail.moot_commands[0].reason.contains("CANCELLED"));
    // Nothing moved on the marketplaces.
    assert_eq!(item_state(&sim, BM, &bm_shipped.0).await, "3");
    assert_eq!(item_state(&sim, BM, &bm_cancelled.0).await, "4");
    assert_eq!(item_state(&sim, RF, &rf_shipped.0).await, "SHIPPED");
    assert_eq!(item_state(&sim, RF, &rf_cancelled.0).await, "CANCELLED");

    // A redelivery of the cancelled line's accept records nothing new.
    send(&env, &bm_commands[2]).await;
    env.wait_settled(&bm_queue, bm_commands.len() as u64 + 1)
        .await;
    assert_eq!(moot_rows(&env).await.len(), 3);
    assert_eq!(env.depth(&bm_dlq).await, 0);
    publisher.stop().await;
}

#[tokio::test]
async fn a_publisher_killed_between_the_accept_and_its_acknowledgement_leaves_no_dead_letter() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sim.listing(BM, "KILL-BM", 5).await;
    let (order_id, item_id) = order_in(&sim, BM, "KILL-BM", &[]).await;
    // Back Market carries out the accept, then its answer is held back past the kill.
    sim.faults(BM, json!({"answer_delay_ms": 60000})).await;
    let queue = env.queue(&QueueSpec::publisher_commands(BM));
    let mut doomed = env.spawn("stockfleet-publisher");
    eventually("the publisher consuming", || async {
        env.consumers(&queue).await >= 1
    })
    .await;
    send(&env, &accept(BM, &order_id, &item_id, "KILL-BM")).await;
    eventually("the line accepted on Back Market", || async {
        item_state(&sim, BM, &order_id).await == "2"
    })
    .await;
    doomed.start_kill().expect("SIGKILL");
    doomed.wait().await.expect("killed");
    sim.clear_faults(BM).await;
    // The unacknowledged delivery is back, for the next publisher.
    eventually("the accept back in its queue", || async {
        env.depth(&queue).await == 1
    })
    .await;

    let publisher = env.start_publisher(&sim).await;
    env.wait_settled(&queue, 1).await;
    let dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher_commands(BM));
    assert_eq!(env.depth(&dlq).await, 0);
    for retry in env
        .bus
        .topology
        .queue_names(&QueueSpec::publisher_commands(BM))
    {
        assert_eq!(env.depth(&retry).await, 0, "{retry}");
    }
    // The redelivered accept was refused (already accepted) and read as done.
    assert_eq!(refused_writes(&sim, BM).await, 1);
    assert_eq!(item_state(&sim, BM, &order_id).await, "2");
    assert!(moot_rows(&env).await.is_empty());
    publisher.stop().await;
}
