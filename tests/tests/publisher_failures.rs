//! The publisher when marketplaces fail or throttle: retries, dead letters,
//! replay, and the rate limit with one and several publisher processes.

use serde_json::json;
use std::time::{Duration, Instant};

use stockfleet::admin::dlq::{self, Filter};
use stockfleet::bus::{QueueSpec, Topology};
use stockfleet_tests::broker;
use stockfleet_tests::*;

const BM: &str = "backmarket";
const RF: &str = "refurbed";

fn marketplaces() -> Vec<String> {
    ["backmarket", "refurbed", "woocommerce"]
        .map(String::from)
        .to_vec()
}

/// Every queue of a marketplace's publisher (work, dead letters) and the
/// delay queues of `topology` (this test's alone) are empty.
async fn drained(env: &TestEnv, topology: &Topology, marketplace: &str) -> bool {
    let mut queues: Vec<String> = QueueSpec::publishers(marketplace)
        .iter()
        .flat_map(|spec| topology.queue_names(spec))
        .collect();
    queues.extend(topology.delay_queues());
    for queue in queues {
        if env.depth(&queue).await > 0 {
            return false;
        }
    }
    true
}

async fn answered(sim: &Sim, marketplace: &str, status: u64) -> usize {
    let requests = sim
        .get(&format!("/requests?marketplace={marketplace}"))
        .await;
    requests
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["status"] == status).count())
}

#[tokio::test]
async fn an_unknown_listing_is_dead_lettered_with_its_reason_counted_across_replays_and_replayed_once_it_exists()
 {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock("GHOST", 5).await;

    let filter = Filter {
        queue: Some(QueueSpec::publisher(BM).name),
        ..Filter::default()
    };
    let dlq_name = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher(BM));
    eventually("dead-lettered", || async {
        env.depth(&dlq_name).await == 1
    })
    .await;
    let letters = dlq::list(&env.bus, &marketplaces(), &filter).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error_kind, "permanent");
    assert!(letters[0].error.contains("404"), "{}", letters[0].error);
    assert_eq!(letters[0].routing_key, "stock.changed.backmarket");
    // Listing leaves it in place (handed back to the queue); a dry run moves nothing.
    let back = || async { env.depth(&dlq_name).await == 1 };
    eventually("handed back after the listing", back).await;
    let dry = dlq::replay(&env.bus, &marketplaces(), &filter, true)
        .await
        .unwrap();
    assert_eq!(dry.len(), 1);
    eventually("handed back after the dry run", back).await;

    // Replayed while the listing is still missing, it fails again: one
    // attempt more each time, by the fleet's own count (never `x-death`).
    assert_eq!(letters[0].attempts, 1);
    for attempt in [2, 3] {
        let moved = dlq::replay(&env.bus, &marketplaces(), &filter, false)
            .await
            .unwrap();
        assert_eq!(moved.len(), 1);
        eventually(
            &format!("dead-lettered again, attempt {attempt}"),
            || async {
                let letters = dlq::list(&env.bus, &marketplaces(), &filter).await.unwrap();
                letters.first().map(|letter| letter.attempts) == Some(attempt)
            },
        )
        .await;
    }
    eventually("handed back after the listing", back).await;

    sim.listing(BM, "GHOST", 0).await;
    let moved = dlq::replay(&env.bus, &marketplaces(), &filter, false)
        .await
        .unwrap();
    assert_eq!(moved.len(), 1);
    eventually("delivered after the replay", || async {
        sim.quantity(BM, "GHOST").await == Some(4)
    })
    .await;
    eventually("in sync", || async { env.in_sync(&sim, BM).await }).await;
    assert_eq!(env.depth(&dlq_name).await, 0);
    publisher.stop().await;
}

#[tokio::test]
async fn every_update_arrives_after_a_429_storm_5xx_timeouts_and_a_minute_down() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let skus: Vec<String> = (0..20).map(|n| format!("F-{n:02}")).collect();
    for sku in &skus {
        sim.listing(RF, sku, 0).await;
    }
    env.orders_polled(RF).await;
    // No orders here: the increases need not wait for a poll after each push
    // (the guard is tests/tests/publisher.rs's subject, not this one's).
    sqlx::query(
        "UPDATE marketplaces SET increase_freshness_seconds = 3600, decrements_on_order = false",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let mut settings = env.settings.clone();
    // Enough attempts to outlast a minute down (production: MAX_ATTEMPTS 6
    // with delays up to 10 minutes covers about 13 minutes).
    settings.consumer.max_attempts = 30;
    settings.consumer.retry_delays_ms = vec![200, 1000, 2000];
    let topology = stockfleet::bus::Topology::of(&settings);
    let publisher = env
        .start_publisher_with(settings, &sim, Duration::from_secs(3600))
        .await;
    let mut round = 0;
    let mut change_all = || {
        round += 1;
        let listed = 10 + round;
        let (env, skus) = (&env, &skus);
        async move {
            for sku in skus {
                env.set_stock_on(RF, sku, listed).await;
            }
        }
    };

    sim.faults(RF, json!({"rate_limit_storm_secs": 1})).await;
    change_all().await;
    eventually("429s answered", || async {
        answered(&sim, RF, 429).await >= 3
    })
    .await;

    sim.faults(RF, json!({"error_rate": 0.3})).await;
    change_all().await;
    eventually("500s answered", || async {
        answered(&sim, RF, 500).await >= 3
    })
    .await;

    // Requests hang past the client's 2 s timeout.
    sim.faults(RF, json!({"timeout_ms": 3000})).await;
    change_all().await;
    eventually("timeouts", || async {
        answered(&sim, RF, 504).await + answered(&sim, RF, 0).await >= 2
    })
    .await;

    sim.faults(RF, json!({"down": true})).await;
    change_all().await;
    let down = Instant::now();
    eventually("503s answered", || async {
        answered(&sim, RF, 503).await >= 3
    })
    .await;
    // The outage itself: a minute, whatever the publisher does meanwhile.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down.elapsed())).await;
    sim.clear_faults(RF).await;

    eventually("every update arrived", || async {
        env.in_sync(&sim, RF).await
    })
    .await;
    eventually("nothing left in any queue", || async {
        drained(&env, &topology, RF).await
    })
    .await;
    for sku in &skus {
        assert_eq!(sim.quantity(RF, sku).await, Some(12)); // floor(14 × 0.9)
    }
    publisher.stop().await;
}

/// Pushes a marketplace at its limit with `processes` publishers; returns pushes/s.
async fn at_the_limit(processes: usize) -> f64 {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // Back Market's listing limit, scaled to 20 requests per 2 s to keep the test short.
    env.set_rate_limit(BM, 20, 2).await;
    sim.rate_limits(
        BM,
        json!({"requests": 200, "window_ms": 10000}),
        json!({"requests": 20, "window_ms": 2000}),
    )
    .await;
    let skus: Vec<String> = (0..40).map(|n| format!("R-{n:02}")).collect();
    for sku in &skus {
        sim.listing(BM, sku, 0).await;
        env.set_stock(sku, 10).await;
    }
    env.orders_polled(BM).await;
    let mut publishers: Vec<_> = (0..processes)
        .map(|_| env.spawn("stockfleet-publisher"))
        .collect();
    // Every process consumes every marketplace queue (2 channels each), and
    // the broker lets exactly one of those consumers receive: one gate paces
    // each marketplace however many publishers run.
    for marketplace in stockfleet_tests::broker::SEEDED {
        let queue = env.queue(&QueueSpec::publisher(marketplace));
        eventually("publishers consuming", || async {
            broker::consumers_active(&queue).await.len() == 2 * processes
        })
        .await;
        let active = broker::consumers_active(&queue).await;
        assert_eq!(
            active.iter().filter(|active| **active).count(),
            1,
            "{queue}: {active:?}"
        );
    }
    eventually("every row pushed", || async { env.in_sync(&sim, BM).await }).await;
    assert_eq!(
        sim.violations(BM).await,
        0,
        "the simulator's limit was exceeded"
    );
    // 40 reads before the first pushes (they find each listing's id too) +
    // 40 writes, all counted by the listing limit; a push deferred for its
    // permit reads again when it comes back. The rate is measured where the
    // marketplace sees it, from first to last arrival.
    let requests = sim.get("/requests?marketplace=backmarket").await;
    let times: Vec<chrono::DateTime<chrono::Utc>> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.len() >= 80, "{} requests", times.len());
    let span = (times[times.len() - 1] - times[0]).as_seconds_f64();
    for publisher in &mut publishers {
        publisher.start_kill().ok();
        publisher.wait().await.ok();
    }
    (times.len() - 1) as f64 / span
}

#[tokio::test]
async fn one_publisher_never_exceeds_the_rate_limit() {
    let rate = at_the_limit(1).await;
    println!("1 publisher: {rate:.1} requests/s at a limit of 10/s");
    assert!(rate <= 10.0, "{rate}");
}

#[tokio::test]
async fn three_publishers_never_exceed_the_rate_limit_together() {
    let rate = at_the_limit(3).await;
    println!("3 publishers: {rate:.1} requests/s at a limit of 10/s");
    assert!(rate <= 10.0, "{rate}");
}

/// Three publisher processes: one receives, the others stand by; when the
/// active one dies another takes over and the marketplace is served again.
#[tokio::test]
async fn a_standby_publisher_takes_over_when_the_active_one_dies() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.orders_polled(BM).await;
    sim.listing(BM, "TAKEOVER", 0).await;
    let mut publishers: Vec<_> = (0..3).map(|_| env.spawn("stockfleet-publisher")).collect();
    let queue = env.queue(&QueueSpec::publisher(BM));
    let consumers = |count: usize| {
        let queue = &queue;
        async move {
            let active = broker::consumers_active(queue).await;
            active.len() == count && active.iter().filter(|a| **a).count() == 1
        }
    };
    eventually("six consumers, one active", || consumers(6)).await;
    let active = broker::active_consumer_pid(&queue).await;
    let index = publishers
        .iter()
        .position(|p| p.id() == Some(active))
        .expect("the active consumer is one of the publishers");
    let mut dead = publishers.remove(index);
    dead.start_kill().unwrap();
    dead.wait().await.unwrap();

    eventually("four consumers, one active", || consumers(4)).await;
    let successor = broker::active_consumer_pid(&queue).await;
    assert_ne!(successor, active);
    env.set_stock("TAKEOVER", 10).await;
    eventually("served by the successor", || async {
        sim.quantity(BM, "TAKEOVER").await == Some(9)
    })
    .await;
    for publisher in publishers {
        terminate(publisher).await;
    }
}

/// Back Market also caps listing updates (about 2,000 an hour), scaled here
/// to 6 per 4 s with requests otherwise unlimited: the publisher spends that
/// budget and the marketplace never has to refuse an update.
#[tokio::test]
async fn the_cap_on_quantity_updates_is_never_exceeded() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let generous = json!({"requests": 1000, "window_ms": 1000});
    let cap = json!({"requests": 6, "window_ms": 4000});
    sim.put(
        "/rate-limits/backmarket",
        json!({"general": generous, "listings": generous, "quantity_updates": cap}),
    )
    .await;
    env.set_rate_limit(BM, 100, 1).await;
    env.set_quantity_cap(BM, Some((6, 4))).await;
    let skus: Vec<String> = (0..18).map(|n| format!("CAP-{n:02}")).collect();
    for sku in &skus {
        sim.listing(BM, sku, 0).await;
        env.set_stock(sku, 10).await;
    }
    env.orders_polled(BM).await;
    let publisher = env.start_publisher(&sim).await;
    eventually("every row pushed", || async { env.in_sync(&sim, BM).await }).await;
    assert_eq!(sim.violations(BM).await, 0, "an update was refused");
    assert_eq!(sim.pushes(BM).await.len(), skus.len());
    publisher.stop().await;
}
