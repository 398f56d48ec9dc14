//! The bus topology on the real broker: how many quorum queues a fleet
//! declares, single active consumer really declared, a queue of an older
//! version refused and migrated, and a worker facing a broker that never answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockfleet::bus::{Bus, Envelope, Exchange, QueueSpec, Topology};
use stockfleet::config::Settings;
use stockfleet::events::{ACCEPT_ORDERLINE, AcceptOrderline, marketplace_command_key};
use stockfleet::worker::Worker;
use stockfleet_tests::broker::{self, OwnPrefix, SEEDED};
use stockfleet_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_fleet_with_n_marketplaces_declares_the_documented_number_of_quorum_queues() {
    let env = TestEnv::new().await;
    for code in ["extra_one", "extra_two"] {
        sqlx::query(
            "INSERT INTO marketplaces (code, name, kind, base_url, credential_env)
             VALUES ($1, $1, 'backmarket', 'http://127.0.0.1:1', 'EXTRA_TOKEN')",
        )
        .bind(code)
        .execute(&env.db)
        .await
        .unwrap();
    }
    let own = OwnPrefix::new("count", &env.settings.amqp_url);
    let prefix = own.prefix.clone();
    let mut settings = env.settings.clone();
    settings.bus_prefix = prefix.clone();
    // The production delays: five of them.
    settings.consumer.retry_delays_ms = Settings::default().consumer.retry_delays_ms;
    let worker = Worker::start("count", settings, None, CancellationToken::new())
        .await
        .expect("a worker declares its fleet's topology");
    let queues = broker::queues_of(&prefix).await;
    worker.stop(Ok(())).await.unwrap();

    let quorum = queues
        .iter()
        .filter(|(_, kind, _)| kind == "quorum")
        .count();
    assert_eq!(
        quorum,
        queues.len(),
        "every queue is a quorum queue: {queues:?}"
    );
    // docs/architecture.md: 2 × (3 + 2M) + D + 1, here M = 5 and D = 5.
    assert_eq!(quorum, Topology::quorum_queue_count(5, 5));
    assert_eq!(quorum, 32, "{queues:?}");
}

#[tokio::test]
async fn publisher_queues_are_declared_single_active_consumer_and_no_other() {
    let env = TestEnv::new().await;
    let queues = broker::queues_of(&env.prefix).await;
    let arguments = |spec: QueueSpec| {
        let name = env.queue(&spec);
        queues
            .iter()
            .find(|(queue, _, _)| *queue == name)
            .unwrap_or_else(|| panic!("{name} declared: {queues:?}"))
            .2
            .clone()
    };
    for spec in SEEDED.into_iter().flat_map(QueueSpec::publishers) {
        let declared = arguments(spec.clone());
        assert!(
            declared.contains("{\"x-single-active-consumer\",true}"),
            "{}: {declared}",
            spec.name
        );
    }
    for spec in [
        QueueSpec::locker(),
        QueueSpec::reducer(),
        QueueSpec::poller(),
    ] {
        let declared = arguments(spec);
        assert!(!declared.contains("x-single-active-consumer"), "{declared}");
    }
}

#[tokio::test]
async fn a_queue_of_an_older_version_is_refused_then_migrated_with_its_messages() {
    let env = TestEnv::new().await;
    let own = OwnPrefix::new("migrate", &env.settings.amqp_url);
    let prefix = own.prefix.clone();
    let mut settings = env.settings.clone();
    settings.bus_prefix = prefix.clone();
    let topology = stockfleet::bus::Topology::of(&settings);
    let publisher_queue = topology.queue(&QueueSpec::publisher("backmarket"));
    let legacy_retry =
        topology.legacy_retry_queue(&QueueSpec::locker(), Duration::from_millis(200));
    // What an older version left: a publisher queue without single active
    // consumer holding two messages, a per-queue retry queue holding one.
    let old = Bus::connect(
        &settings.amqp_url,
        topology.clone(),
        settings.amqp_timeout(),
    )
    .await
    .unwrap();
    let channel = old.channel().await.unwrap();
    let mut old_args = lapin::types::FieldTable::default();
    old_args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    for (queue, messages) in [(&publisher_queue, 2), (&legacy_retry, 1)] {
        let durable = lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), durable, old_args.clone())
            .await
            .unwrap();
        for n in 0..messages {
            let body = created(&format!("OLD-{n}"), "SKU", 1).to_bytes();
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    Default::default(),
                    &body,
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap();
        }
    }
    channel.close(200, "seeded".into()).await.ok();
    let all = QueueSpec::all(SEEDED);

    let refused = old
        .declare(&all)
        .await
        .expect_err("an inequivalent queue is refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains(&publisher_queue) && message.contains("stockfleet queues migrate"),
        "{message}"
    );

    let migrate = |dry_run: bool| {
        let mut command = env.command("stockfleet");
        command
            .env("BUS_PREFIX", &prefix)
            .args(["queues", "migrate"]);
        if dry_run {
            command.arg("--dry-run");
        }
        async move {
            let output = command.output().await.unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(
                output.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            stdout
        }
    };
    let planned = migrate(true).await;
    assert!(
        planned.contains(&format!("{publisher_queue}: would be re-created")),
        "{planned}"
    );
    assert!(
        planned.contains(&format!("{legacy_retry}: would move 1 message(s)")),
        "{planned}"
    );
    assert_eq!(
        env.depth(&publisher_queue).await,
        2,
        "a dry run changes nothing"
    );
    assert_eq!(env.depth(&legacy_retry).await, 1);

    let done = migrate(false).await;
    assert!(
        done.contains(&format!(
            "{publisher_queue}: re-created with this version's arguments (2 message(s) kept)"
        )),
        "{done}"
    );
    assert!(
        done.contains(&format!(
            "{legacy_retry}: moved 1 message(s) to {prefix}.retry.200ms, deleted"
        )),
        "{done}"
    );
    let queues = broker::queues_of(&prefix).await;
    let after = queues.iter().find(|q| q.0 == publisher_queue).unwrap();
    assert!(
        after.2.contains("{\"x-single-active-consumer\",true}"),
        "{after:?}"
    );
    assert!(queues.iter().all(|q| q.0 != legacy_retry), "{queues:?}");
    assert_eq!(env.depth(&publisher_queue).await, 2);
    // The moved retry waits its delay in the shared queue, then comes back to its queue.
    let locker = topology.queue(&QueueSpec::locker());
    eventually("the moved retry is back on the locker queue", || async {
        env.depth(&locker).await == 1
    })
    .await;
    old.declare(&all)
        .await
        .expect("the migrated topology declares as is");
    old.close().await;
}

#[tokio::test]
async fn a_worker_facing_a_broker_that_never_answers_is_alive_not_ready_and_stops_on_sigterm() {
    let env = TestEnv::new().await;
    // Accepts every connection and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker_addr = silent.local_addr().unwrap();
    let listener = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let health = format!("127.0.0.1:{}", free_port());
    let mut worker = env
        .command("stockfleet-locker")
        .env("AMQP_URL", format!("amqp://guest:guest@{broker_addr}/%2f"))
        .env("AMQP_TIMEOUT_SECONDS", "1")
        .env("HEALTH_ADDR", &health)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let logs = Arc::new(Mutex::new(String::new()));
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let collected = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            collected.lock().unwrap().push_str(&line);
        }
    });

    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, health) = (&http, &health);
        async move {
            let response = http
                .get(format!("http://{health}{path}"))
                .send()
                .await
                .ok()?;
            Some((
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ))
        }
    };
    eventually("/readyz answers", || async {
        status("/readyz").await.is_some()
    })
    .await;
    let (code, body) = status("/readyz").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("broker: not connected"), "{body}");
    assert_eq!(status("/healthz").await, Some((200, "ok".to_owned())));
    eventually("the worker says the broker does not answer", || async {
        logs.lock().unwrap().contains("did not answer within 1s")
    })
    .await;
    assert_eq!(status("/readyz").await.map(|s| s.0), Some(503));

    let pid = worker.id().unwrap().to_string();
    let signalled = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(3), worker.wait())
        .await
        .expect("exits within 3 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit}");
    println!("exited {:?} after SIGTERM", signalled.elapsed());
    listener.abort();
}

#[tokio::test]
async fn an_older_stock_queue_gives_up_its_command_binding_to_the_commands_queue() {
    let env = TestEnv::new().await;
    let own = OwnPrefix::new("commands", &env.settings.amqp_url);
    let mut settings = env.settings.clone();
    settings.bus_prefix = own.prefix.clone();
    let topology = stockfleet::bus::Topology::of(&settings);
    let bus = Bus::connect(
        &settings.amqp_url,
        topology.clone(),
        settings.amqp_timeout(),
    )
    .await
    .unwrap();
    bus.declare(&[]).await.unwrap();
    // What an older version declared: one publisher queue per marketplace,
    // bound to the marketplace's stock changes and its order commands.
    let stock = QueueSpec::publisher("backmarket");
    let stock_queue = topology.queue(&stock);
    let commands_queue = topology.queue(&QueueSpec::publisher_commands("backmarket"));
    let channel = bus.channel().await.unwrap();
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(
            stock_queue.as_str().into(),
            durable,
            topology.work_queue_arguments(&stock),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            stock_queue.as_str().into(),
            topology.exchange(Exchange::Commands).as_str().into(),
            "marketplace.backmarket.*".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let command = |n: u32| {
        let accept = AcceptOrderline {
            order_id: format!("O-{n}"),
            item_id: "1".into(),
            sku: "SKU".into(),
        };
        Envelope::new(ACCEPT_ORDERLINE, "backmarket", &accept)
    };
    let send = |envelope: Envelope| {
        let channel = channel.clone();
        let exchange = topology.exchange(Exchange::Commands);
        async move {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    marketplace_command_key("backmarket", ACCEPT_ORDERLINE)
                        .as_str()
                        .into(),
                    Default::default(),
                    &envelope.to_bytes(),
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    send(command(1)).await;
    eventually(
        "the old binding routes commands to the stock queue",
        || async { env.depth(&stock_queue).await == 1 },
    )
    .await;

    // This version's declaration (twice: retiring a binding that is gone is no error).
    for _ in 0..2 {
        bus.declare(&QueueSpec::all(SEEDED)).await.unwrap();
    }
    send(command(2)).await;
    eventually("commands have their own queue", || async {
        env.depth(&commands_queue).await == 1
    })
    .await;
    // A marker sent straight to the stock queue after the command: had the
    // command been routed there too, it would stand before the marker.
    channel
        .basic_publish(
            "".into(),
            stock_queue.as_str().into(),
            Default::default(),
            &command(3).to_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    eventually("the marker in the stock queue", || async {
        env.depth(&stock_queue).await >= 2
    })
    .await;
    assert_eq!(
        env.depth(&stock_queue).await,
        2,
        "the stock queue keeps what it had and gets no new command"
    );
}
