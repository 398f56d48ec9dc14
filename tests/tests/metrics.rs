//! Issue 13: every binary's `/metrics` passes `promtool check metrics`
//! (every family with `# HELP` and `# TYPE`). promtool comes with Debian's
//! `prometheus` package; without it this test fails and says so.

use std::process::Stdio;
use stockfleet_tests::*;
use tokio::io::AsyncWriteExt;

fn promtool() -> String {
    let path = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let found = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "promtool is missing: `apt-get install -y prometheus` (Debian), or set PROMTOOL"
    );
    path
}

async fn check(promtool: &str, binary: &str, text: &str) {
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{binary}: promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_binary_exports_metrics_promtool_accepts() {
    let promtool = promtool();
    let env = TestEnv::new().await;
    env.set_stock("M-1", 5).await;
    let http = reqwest::Client::new();
    // (binary, a family it has exported once it did some work)
    let binaries = [
        ("stockfleet-locker", "stockfleet_messages_handled_total"),
        ("stockfleet-reducer", "stockfleet_messages_handled_total"),
        ("stockfleet-publisher", "stockfleet_"),
        ("stockfleet-poller", "stockfleet_"),
        ("stockfleet-api", "stockfleet_http_requests_total"),
    ];
    let mut running = Vec::new();
    for (binary, family) in binaries {
        let health = free_port();
        let api = free_port();
        let child = env
            .command(binary)
            .env("HEALTH_ADDR", format!("127.0.0.1:{health}"))
            .env("API_ADDR", format!("127.0.0.1:{api}"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}; cargo build --workspace --bins"));
        running.push((binary, family, health, api, child));
    }
    // Work for the locker and reducer, a request for the api.
    env.publish(&[
        created("MET-1", "M-1", 1),
        changed("MET-1", "M-1", 1, stockfleet::domain::OrderStatus::Shipped),
    ])
    .await;
    for (binary, family, health, api, child) in running {
        let url = format!("http://127.0.0.1:{health}/metrics");
        let text = std::sync::Mutex::new(String::new());
        eventually(&format!("{binary} exports {family}"), || async {
            if binary == "stockfleet-api" {
                let _ = http
                    .get(format!("http://127.0.0.1:{api}/login"))
                    .send()
                    .await;
            }
            let body = match http.get(&url).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let found = body.contains(family);
            *text.lock().unwrap() = body;
            found
        })
        .await;
        let text = text.into_inner().unwrap();
        assert!(text.contains("# HELP"), "{binary}:\n{text}");
        check(&promtool, binary, &text).await;
        terminate(child).await;
    }
}
