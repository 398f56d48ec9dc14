//! Faults heal by themselves: the broker or the database goes away under load
//! (for these workers alone, through a test-owned proxy) and comes back; the
//! relay's connection is killed. Every process reports it at once, is ready
//! and consuming again within 10 s, and nothing is lost or doubled.

use std::future::Future;
use std::time::{Duration, Instant};
use stockfleet::bus::QueueSpec;
use stockfleet_tests::*;

/// Back within this of the service returning (issue 11).
const RECOVERY: Duration = Duration::from_secs(10);

struct Process {
    child: tokio::process::Child,
    readyz: String,
}

/// Starts `binary` with its broker and database at the given URLs, on a known health port.
fn start(env: &TestEnv, binary: &str, amqp_url: &str, database_url: &str) -> Process {
    let health = format!("127.0.0.1:{}", free_port());
    let child = env
        .command(binary)
        .env("AMQP_URL", amqp_url)
        .env("DATABASE_URL", database_url)
        .env("HEALTH_ADDR", &health)
        .env("API_ADDR", format!("127.0.0.1:{}", free_port()))
        // An outage of a few seconds must not exhaust a message's attempts
        // (the retry queues cycle every 200 ms in tests).
        .env("MAX_ATTEMPTS", "1000")
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    Process {
        child,
        readyz: format!("http://{health}/readyz"),
    }
}

async fn all_ready(fleet: &[Process]) -> bool {
    for process in fleet {
        if readiness(&process.readyz).await.map(|r| r.0) != Some(200) {
            return false;
        }
    }
    true
}

/// Every process answers /readyz (the health port listens throughout) and none is ready.
async fn none_ready(fleet: &[Process]) -> bool {
    for process in fleet {
        match readiness(&process.readyz).await {
            Some((503, _)) => {}
            _ => return false,
        }
    }
    true
}

/// Awaits `condition` for at most `limit`; returns how long it took.
async fn within<F, Fut>(what: &str, limit: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Awaits a 200 from `process`'s /readyz for at most `limit`; a timeout
/// shows the last answer, which names the tasks still down.
async fn ready_within(process: &Process, limit: Duration) {
    let started = Instant::now();
    loop {
        let answer = readiness(&process.readyz).await;
        if answer.as_ref().map(|r| r.0) == Some(200) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "not ready within {limit:?}; /readyz answered {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consuming(env: &TestEnv, per_queue: u32) -> bool {
    for spec in [
        QueueSpec::locker(),
        QueueSpec::reducer(),
        QueueSpec::poller(),
    ] {
        if env.consumers(&env.queue(&spec)).await < per_queue {
            return false;
        }
    }
    true
}

/// 300 orders on one SKU, published straight to the broker (not through the
/// proxy) by a background task, as the marketplaces' events keep coming.
fn load(env: &std::sync::Arc<TestEnv>, sku: &'static str) -> tokio::task::JoinHandle<()> {
    let env = env.clone();
    tokio::spawn(async move {
        for chunk in (0..300).collect::<Vec<_>>().chunks(10) {
            let orders: Vec<_> = chunk
                .iter()
                .map(|n| created(&format!("{sku}-{n}"), sku, 1))
                .collect();
            env.publish(&orders).await;
            tokio::task::yield_now().await;
        }
    })
}

/// All 300 orders locked once, their events relayed, nothing dead-lettered.
async fn settled_exactly_once(env: &TestEnv, sku: &str) {
    eventually("all 300 orders locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            == 300
    })
    .await;
    eventually("outbox drained", || async { env.outbox_len().await == 0 }).await;
    assert_eq!(env.levels(sku).await, (1000, 300, 700), "nothing doubled");
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_history WHERE change_type = 'lock'")
            .await,
        300
    );
    for spec in [QueueSpec::locker(), QueueSpec::reducer()] {
        let dlq = env.bus.topology.dead_letter_queue(&spec);
        assert_eq!(env.depth(&dlq).await, 0, "nothing dead-lettered on {dlq}");
    }
    let report = env.validate().await;
    assert!(report.is_clean(), "{report:?}");
}

/// Locker, reducer, api and poller with their broker and database at these
/// URLs, ready (the publisher has its own test below, with the simulator).
async fn ready_fleet(env: &TestEnv, amqp_url: &str, database_url: &str) -> Vec<Process> {
    let binaries = [
        "stockfleet-locker",
        "stockfleet-reducer",
        "stockfleet-api",
        "stockfleet-poller",
    ];
    let fleet: Vec<Process> = binaries
        .into_iter()
        .map(|binary| start(env, binary, amqp_url, database_url))
        .collect();
    eventually("the fleet is ready", || all_ready(&fleet)).await;
    fleet
}

/// Puts 300 orders of `sku` through the fleet and cuts `proxy` once locking
/// is under way; returns once every process reports the loss (how long that
/// took) and the load is published, with the service still away.
async fn cut_under_load(
    env: &std::sync::Arc<TestEnv>,
    proxy: &Proxy,
    fleet: &[Process],
    sku: &'static str,
) -> Duration {
    env.set_stock(sku, 1000).await;
    let load = load(env, sku);
    eventually("locking is under way", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            >= 20
    })
    .await;
    proxy.cut();
    let noticed = within(
        "every process reports the loss",
        Duration::from_secs(5),
        || none_ready(fleet),
    )
    .await;
    load.await.unwrap();
    noticed
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_lost_under_load_every_process_is_back_within_10_s_of_its_return() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let fleet = ready_fleet(
        &env,
        &proxy.url(&env.settings.amqp_url),
        &env.settings.database_url,
    )
    .await;
    eventually("lockers and reducers consume", || consuming(&env, 2)).await;

    let noticed = cut_under_load(&env, &proxy, &fleet, "BROKER").await;
    within(
        "the api names what is down, its relay included",
        Duration::from_secs(5),
        || async {
            let (_, body) = readiness(&fleet[2].readyz).await.unwrap_or_default();
            body.contains("broker: not connected") && body.contains("outbox relay: reconnecting")
        },
    )
    .await;
    assert_eq!(
        env.consumers(&env.queue(&QueueSpec::locker())).await,
        0,
        "consumers stopped with the broker"
    );

    proxy.restore();
    let back = within("every process ready again", RECOVERY, || all_ready(&fleet)).await;
    let consuming_again = within("consuming again", RECOVERY, || consuming(&env, 2)).await;
    println!(
        "broker loss noticed in {noticed:?}; ready {back:?} and consuming {consuming_again:?} after its return"
    );
    assert!(back.max(consuming_again) < RECOVERY);

    settled_exactly_once(&env, "BROKER").await;
    for process in fleet {
        terminate(process.child).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_lost_under_load_every_process_is_back_within_10_s_of_its_return() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let fleet = ready_fleet(
        &env,
        &env.settings.amqp_url,
        &proxy.url(&env.settings.database_url),
    )
    .await;

    cut_under_load(&env, &proxy, &fleet, "DATABASE").await;
    within(
        "the locker names what is down, its relay included",
        Duration::from_secs(5),
        || async {
            let (_, body) = readiness(&fleet[0].readyz).await.unwrap_or_default();
            body.contains("database:") && body.contains("outbox relay: reconnecting")
        },
    )
    .await;

    proxy.restore();
    let back = within("every process ready again", RECOVERY, || all_ready(&fleet)).await;
    println!("ready {back:?} after the database's return");
    settled_exactly_once(&env, "DATABASE").await;
    for process in fleet {
        terminate(process.child).await;
    }
}

/// The connections' name of the locker in the relay test.
const APPLICATION: &str = "heal-relay-test";

/// The backend of the relay's LISTEN connection.
async fn relay_backend(env: &TestEnv) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(APPLICATION)
    .fetch_optional(&env.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_whose_connections_are_terminated_is_back_within_10_s() {
    let env = TestEnv::new().await;
    env.set_stock("RELAYED", 10).await;
    let observer = env.observe("stock.changed.*").await;
    let database_url = format!(
        "{}?application_name={APPLICATION}",
        env.settings.database_url
    );
    let locker = start(
        &env,
        "stockfleet-locker",
        &env.settings.amqp_url,
        &database_url,
    );
    eventually("ready", || all_ready(std::slice::from_ref(&locker))).await;
    eventually("the relay listens", || async {
        relay_backend(&env).await.is_some()
    })
    .await;
    let killed = relay_backend(&env).await.unwrap();
    // The relay's LISTEN connection and every pooled one, as an administrator would.
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = $1",
    )
    .bind(APPLICATION)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert!(terminated >= 1);

    env.publish(&[created("R1", "RELAYED", 1)]).await;
    let relayed = within("the lock's event relayed", RECOVERY, || async {
        env.outbox_len().await == 0 && observer.count().await >= 2 // the top-up's and the lock's
    })
    .await;
    within("the relay listens again", RECOVERY - relayed, || async {
        relay_backend(&env).await.is_some_and(|pid| pid != killed)
    })
    .await;
    assert!(all_ready(std::slice::from_ref(&locker)).await);
    terminate(locker.child).await;
}

/// Requests the simulated Back Market has received.
async fn requests(sim: &Sim) -> usize {
    let requests = sim.get("/requests?marketplace=backmarket").await;
    requests.as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_that_loses_the_broker_starts_no_marketplace_call_for_its_batch() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // Slow answers keep a batch of 40 pushes (two requests each) under way
    // for seconds; no rate limit slows it further.
    sim.faults(MARKETPLACE, serde_json::json!({"latency_ms": 100}))
        .await;
    env.set_rate_limit(MARKETPLACE, 1000, 1).await;
    for n in 0..40 {
        let sku = format!("P-{n:02}");
        sim.listing(MARKETPLACE, &sku, 0).await;
        env.set_stock(&sku, 10).await;
    }
    env.orders_polled(MARKETPLACE).await;
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let publisher = start(
        &env,
        "stockfleet-publisher",
        &proxy.url(&env.settings.amqp_url),
        &env.settings.database_url,
    );
    eventually("the batch is under way", || async {
        requests(&sim).await >= 6
    })
    .await;
    proxy.cut();
    let at_cut = requests(&sim).await;
    within(
        "the publisher reports the loss",
        Duration::from_secs(5),
        || none_ready(std::slice::from_ref(&publisher)),
    )
    .await;
    // Nothing must happen now, so there is no condition to await: watch the
    // marketplace for 2 s (up to 20 more requests if the batch went on).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = requests(&sim).await;
    println!("requests: {at_cut} at the cut, {after} 2 s later");
    assert!(
        after <= at_cut + 2,
        "{} requests started for deliveries that could no longer be acknowledged",
        after - at_cut
    );

    proxy.restore();
    ready_within(&publisher, RECOVERY).await;
    eventually("every row pushed after all", || async {
        env.in_sync(&sim, MARKETPLACE).await
    })
    .await;
    let dlq = env
        .bus
        .topology
        .dead_letter_queue(&QueueSpec::publisher(MARKETPLACE));
    assert_eq!(env.depth(&dlq).await, 0);
    terminate(publisher.child).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_stops_answering_is_noticed_by_its_heartbeat() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    // A short heartbeat keeps the test short; the default is 10 s.
    let amqp = format!("{}?heartbeat=2", proxy.url(&env.settings.amqp_url));
    let locker = start(&env, "stockfleet-locker", &amqp, &env.settings.database_url);
    let fleet = std::slice::from_ref(&locker);
    eventually("ready", || all_ready(fleet)).await;
    proxy.hold();
    // Two missed heartbeats (4 s) close the silent connection.
    let noticed = within("the silent broker noticed", RECOVERY, || none_ready(fleet)).await;
    println!("a silent broker noticed in {noticed:?}");
    proxy.cut();
    proxy.restore();
    within("ready again", RECOVERY, || all_ready(fleet)).await;
    env.set_stock("HEARD", 2).await;
    env.publish(&[created("H1", "HEARD", 1)]).await;
    eventually("the order is locked", || async {
        env.levels("HEARD").await.1 == 1
    })
    .await;
    terminate(locker.child).await;
}
