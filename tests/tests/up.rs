//! `stockfleet up` as a container runtime: it restarts a worker that dies,
//! says "fleet running" only once every worker is ready, and stops in
//! dependency order within 3 s.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockfleet::bus::QueueSpec;
use stockfleet_tests::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Every line `reader` gives, kept as it comes.
fn collect(reader: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    lines
}

fn said(lines: &Mutex<Vec<String>>, text: &str) -> bool {
    lines.lock().unwrap().iter().any(|line| line.contains(text))
}

/// The pid of `parent`'s child running `binary`.
fn child_pid(parent: u32, binary: &str) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .find(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(binary))
        })
}

fn signal(signal: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

fn up(env: &TestEnv, api_addr: &str) -> tokio::process::Child {
    env.command("stockfleet")
        .args(["up", "--sim-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--orders-per-second", "2", "--health-port-base", "0"])
        .args(["--demo-skus", "2", "--api-addr", api_addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// One fleet at a time: two `up`s at once race for the free ports each picks.
static ONE_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn up_restarts_a_killed_worker_and_stops_in_dependency_order_within_3_s() {
    let _one_fleet = ONE_FLEET.lock().await;
    let env = TestEnv::new().await;
    let mut up = up(&env, &format!("127.0.0.1:{}", free_port()));
    let out = collect(up.stdout.take().unwrap());
    let err = collect(up.stderr.take().unwrap());
    let running = tokio::time::timeout(Duration::from_secs(90), async {
        while !said(&out, "fleet running") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        running.is_ok(),
        "up never said \"fleet running\"; it said {:?}",
        err.lock().unwrap()
    );
    let up_pid = up.id().unwrap();
    let locker_queue = env.queue(&QueueSpec::locker());
    let killed = child_pid(up_pid, "stockfleet-locker").expect("a locker child");
    signal("-KILL", killed);
    eventually("the restart is said", || async {
        said(&err, "locker exited unexpectedly") && said(&err, "locker restarted")
    })
    .await;
    eventually("a new locker consumes", || async {
        child_pid(up_pid, "stockfleet-locker").is_some_and(|pid| pid != killed)
            && env.consumers(&locker_queue).await >= 2
    })
    .await;
    assert!(
        child_pid(up_pid, "stockfleet-api").is_some(),
        "the rest of the fleet ran on"
    );

    let asked = Instant::now();
    signal("-TERM", up_pid);
    let exit = tokio::time::timeout(Duration::from_secs(10), up.wait())
        .await
        .expect("up exits")
        .unwrap();
    let took = asked.elapsed();
    println!("stockfleet up stopped in {took:?}");
    let stderr = err.lock().unwrap().join("\n");
    assert!(exit.success(), "up exited with {exit}: {stderr}");
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");
    // Each stage has fully stopped before the next is asked to.
    let lines = out.lock().unwrap().clone();
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} not said: {lines:?}"))
    };
    let stages = [
        vec!["poller", "api"],
        vec!["locker", "reducer"],
        vec!["publisher"],
        vec!["sim"],
    ];
    for pair in stages.windows(2) {
        let (first, next) = (&pair[0], &pair[1]);
        let last_stopped = first
            .iter()
            .map(|name| at(&format!("{name} stopped")))
            .max()
            .unwrap();
        assert!(
            last_stopped < at(&format!("stopping {}", next.join(", "))),
            "{first:?} stopped before {next:?} is asked: {lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_names_a_worker_that_never_becomes_ready_and_exits_non_zero() {
    let _one_fleet = ONE_FLEET.lock().await;
    let env = TestEnv::new().await;
    // The api cannot listen where something else already does.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut up = up(&env, &taken.local_addr().unwrap().to_string());
    let out = collect(up.stdout.take().unwrap());
    let err = collect(up.stderr.take().unwrap());
    let exit = tokio::time::timeout(Duration::from_secs(90), up.wait())
        .await
        .expect("up gives up")
        .unwrap();
    assert!(!exit.success());
    eventually("the error is said", || async {
        said(&err, "api exited (exit status: 1) before it was ready")
    })
    .await;
    assert!(!said(&out, "fleet running"), "{:?}", out.lock().unwrap());
}
