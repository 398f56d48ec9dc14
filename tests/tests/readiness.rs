//! A publisher's readiness follows its real tasks (issue 30): every consumer
//! of every marketplace it serves is in `/readyz` from its start, a
//! single-active-consumer standby included (and ready), and a marketplace it
//! cannot start is reported down, not left out, until it starts.

use stockfleet::bus::QueueSpec;
use stockfleet_tests::broker::{self, SEEDED};
use stockfleet_tests::*;

struct Publisher {
    child: tokio::process::Child,
    readyz: String,
}

fn start_publisher(env: &TestEnv) -> Publisher {
    let health = format!("127.0.0.1:{}", free_port());
    let child = env
        .command("stockfleet-publisher")
        .env("HEALTH_ADDR", &health)
        .env("MARKETPLACE_REFRESH_SECONDS", "1")
        .kill_on_drop(true)
        .spawn()
        .expect("start stockfleet-publisher");
    Publisher {
        child,
        readyz: format!("http://{health}/readyz"),
    }
}

/// The consumer names `/readyz` must list for `marketplace` (CONSUMERS=2 in tests).
fn consumers_of(env: &TestEnv, marketplace: &str) -> Vec<String> {
    QueueSpec::publishers(marketplace)
        .iter()
        .flat_map(|spec| {
            let queue = env.queue(spec);
            (1..=2).map(move |n| format!("consumer {queue} #{n}: ready"))
        })
        .collect()
}

/// Waits for `/readyz` to answer 200; every 200 seen must list every consumer of `marketplaces`.
async fn ready_with_every_consumer(env: &TestEnv, publisher: &Publisher, marketplaces: &[&str]) {
    eventually("the publisher is ready", || async {
        match readiness(&publisher.readyz).await {
            Some((200, report)) => {
                for marketplace in marketplaces {
                    for line in consumers_of(env, marketplace) {
                        assert!(report.contains(&line), "ready without {line:?}:\n{report}");
                    }
                }
                true
            }
            _ => false,
        }
    })
    .await;
}

#[tokio::test]
async fn a_restarted_publisher_reports_every_consumer_and_a_standby_is_ready() {
    let env = TestEnv::new().await;
    let mut active = start_publisher(&env);
    ready_with_every_consumer(&env, &active, &SEEDED).await;
    // A second publisher waits as the standby on every queue: ready too.
    let standby = start_publisher(&env);
    ready_with_every_consumer(&env, &standby, &SEEDED).await;
    let stock_queue = env.queue(&QueueSpec::publisher("refurbed"));
    eventually(
        "both publishers consume refurbed's stock queue, one active",
        || async {
            let mut active = broker::consumers_active(&stock_queue).await;
            active.sort();
            active == [false, false, false, true]
        },
    )
    .await;

    // The active one killed, a new one started: it reports all of them again.
    active.child.kill().await.unwrap();
    let restarted = start_publisher(&env);
    ready_with_every_consumer(&env, &restarted, &SEEDED).await;
    terminate(restarted.child).await;
    terminate(standby.child).await;
}

#[tokio::test]
async fn a_marketplace_the_publisher_cannot_start_is_reported_down_until_it_starts() {
    let env = TestEnv::new().await;
    let publisher = start_publisher(&env);
    ready_with_every_consumer(&env, &publisher, &SEEDED).await;

    // A queue of the new marketplace's name that its declaration refuses (a
    // classic queue where a quorum queue with a single active consumer is due).
    let blocking = env.queue(&QueueSpec::publisher("shopx"));
    let channel = env.bus.channel().await.unwrap();
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(blocking.as_str().into(), durable, Default::default())
        .await
        .unwrap();
    let add_shopx = || async {
        sqlx::query(
            "INSERT INTO marketplaces (code, name, kind, base_url, credential_env)
             VALUES ('shopx', 'Shop X', 'woocommerce', 'http://127.0.0.1:9', 'WOOCOMMERCE_CREDENTIALS')",
        )
        .execute(&env.db)
        .await
        .unwrap();
    };
    add_shopx().await;
    eventually(
        "the marketplace it cannot start makes it not ready, by name",
        || async {
            matches!(readiness(&publisher.readyz).await,
            Some((503, report)) if report.contains("publisher shopx: cannot start"))
        },
    )
    .await;

    // Removed before it could start: no longer waited for.
    sqlx::query("DELETE FROM marketplaces WHERE code = 'shopx'")
        .execute(&env.db)
        .await
        .unwrap();
    ready_with_every_consumer(&env, &publisher, &SEEDED).await;

    // Once the obstacle is gone it starts by itself and is reported ready.
    channel
        .queue_delete(blocking.as_str().into(), Default::default())
        .await
        .unwrap();
    add_shopx().await;
    // Known once the publisher re-reads the table (every second here).
    eventually("the publisher knows the marketplace again", || async {
        readiness(&publisher.readyz)
            .await
            .is_some_and(|(_, report)| report.contains("shopx"))
    })
    .await;
    ready_with_every_consumer(
        &env,
        &publisher,
        &["backmarket", "refurbed", "woocommerce", "shopx"],
    )
    .await;
    terminate(publisher.child).await;
    for spec in QueueSpec::publishers("shopx") {
        channel
            .queue_delete(env.queue(&spec).as_str().into(), Default::default())
            .await
            .unwrap();
    }
}
