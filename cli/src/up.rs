//! `stockfleet up`: the whole fleet on this machine, against the local
//! PostgreSQL and RabbitMQ, with the marketplace simulator (and its order
//! generator) as every marketplace. Migrates first; seeds a small demo catalog
//! when the database has none; forwards SIGINT/SIGTERM to every process and
//! exits when they have exited (or when any of them stops by itself).

use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use stockfleet::admin::stock::{self, Correction};
use stockfleet::admin::tokens::{self, Role, TokenError};
use stockfleet::config::Settings;
use tokio::process::{Child, Command};

/// The workers, in the order of their health ports.
const WORKERS: [&str; 5] = ["poller", "locker", "reducer", "publisher", "api"];
/// Where the seeded marketplaces point (migrations/0002_default_marketplaces.sql).
const SEEDED_SIM_ADDR: &str = "127.0.0.1:8900";
/// The name of the dashboard token `up` creates (replacing its previous one).
const TOKEN_NAME: &str = "stockfleet up";
/// The WooCommerce webhook secret shared by the simulator and the api,
/// unless WEBHOOK_SECRET_WOOCOMMERCE says otherwise.
const DEMO_WEBHOOK_SECRET: &str = "sim-webhook-secret";
/// The simulator's default credentials (docs/simulator.md), as each marketplace row names them.
const CREDENTIALS: [(&str, &str); 3] = [
    ("BACKMARKET_TOKEN", "bm-sim-token"),
    ("REFURBED_TOKEN", "rf-sim-token"),
    ("WOOCOMMERCE_CREDENTIALS", "ck_sim:cs_sim"),
];

#[derive(clap::Args)]
pub struct Args {
    /// Where the simulator listens. Marketplaces still pointing at the seeded
    /// simulator address (127.0.0.1:8900) are pointed here; others are left alone.
    #[arg(long, default_value = SEEDED_SIM_ADDR)]
    sim_addr: String,
    /// Orders per second the simulator's generator places (0 = none).
    #[arg(long, default_value_t = 0.2)]
    orders_per_second: f64,
    /// Demo SKUs created (20 units each, every marketplace) when the database has none.
    #[arg(long, default_value_t = 10)]
    demo_skus: u32,
    /// Health port of the poller; the locker, reducer, publisher and api take
    /// the next four. 0: ports the system picks (each worker logs its own).
    #[arg(long, default_value_t = 9101)]
    health_port_base: u16,
    /// Where the API and dashboard listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_addr: String,
}

pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let pool = stockfleet::db::migrate(&settings.database_url).await?;
    let webhook_secret = std::env::var("WEBHOOK_SECRET_WOOCOMMERCE")
        .unwrap_or_else(|_| DEMO_WEBHOOK_SECRET.to_owned());
    let dir = sibling_dir()?;
    let mut children = Vec::new();
    let sim = spawn(
        Command::new(dir.join("stockfleet-sim"))
            .args(["--addr", &args.sim_addr])
            .args(["--orders-per-second", &args.orders_per_second.to_string()]),
        "stockfleet-sim",
    )?;
    children.push(("sim", sim));
    let control = format!("http://{}/control", args.sim_addr);
    let moved = follow_simulator(&pool, &args.sim_addr).await?;
    if moved > 0 {
        println!(
            "{moved} marketplace(s) pointed at the simulator on {}",
            args.sim_addr
        );
    }
    let listed = match seed(&pool, &control, args.demo_skus).await {
        Ok(listed) => listed,
        Err(error) => {
            stop_all(&mut children).await;
            return Err(error);
        }
    };
    println!("simulator on {} with {listed} listings", args.sim_addr);
    for (offset, name) in (0u16..).zip(WORKERS) {
        let port = match args.health_port_base {
            0 => 0,
            base => base + offset,
        };
        let binary = format!("stockfleet-{name}");
        let mut command = Command::new(dir.join(&binary));
        command
            .env("DATABASE_URL", &settings.database_url)
            .env("AMQP_URL", &settings.amqp_url)
            .env("BUS_PREFIX", &settings.bus_prefix)
            .env("HEALTH_ADDR", format!("127.0.0.1:{port}"))
            .env("API_ADDR", &args.api_addr)
            .env("WEBHOOK_SECRET_WOOCOMMERCE", &webhook_secret);
        for (variable, value) in CREDENTIALS {
            if std::env::var_os(variable).is_none() {
                command.env(variable, value);
            }
        }
        if std::env::var_os("LOG_FORMAT").is_none() {
            command.env("LOG_FORMAT", "text");
        }
        match spawn(&mut command, &binary) {
            Ok(child) => children.push((name, child)),
            Err(error) => {
                stop_all(&mut children).await;
                return Err(error);
            }
        }
    }
    let health = match args.health_port_base {
        0 => "on ports each worker logs".to_owned(),
        base => format!("on 127.0.0.1:{base}-{}", base + 4),
    };
    let token = match connect_api(&pool, &control, &args.api_addr, &webhook_secret).await {
        Ok(token) => token,
        Err(error) => {
            stop_all(&mut children).await;
            return Err(error);
        }
    };
    pool.close().await;
    println!(
        "fleet running: dashboard and API at http://{}/ (sign in with {token}), health {health} (/healthz, /readyz, /metrics), simulator control API at {control}; Ctrl-C stops it",
        args.api_addr
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let first_exit = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminate.recv() => None,
        exited = any_exit(&mut children) => Some(exited),
    };
    if let Some((name, status)) = &first_exit {
        eprintln!("{name} exited ({status}); stopping the fleet");
    }
    let clean = stop_all(&mut children).await;
    Ok(match first_exit {
        None if clean => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// The directory of this executable, where cargo puts the sibling binaries.
fn sibling_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

fn spawn(command: &mut Command, name: &str) -> anyhow::Result<Child> {
    command.kill_on_drop(true).spawn().with_context(|| {
        format!("cannot start {name}; build every binary first (`cargo build --workspace --bins`)")
    })
}

/// Points the marketplaces that still use the seeded simulator address at
/// `sim_addr`; returns how many moved. Real marketplace URLs are never touched.
async fn follow_simulator(pool: &sqlx::PgPool, sim_addr: &str) -> anyhow::Result<u64> {
    if sim_addr == SEEDED_SIM_ADDR {
        return Ok(0);
    }
    let moved = sqlx::query(
        "UPDATE marketplaces SET base_url = replace(base_url, $1, $2), updated_at = now()
         WHERE base_url LIKE $1 || '%'",
    )
    .bind(format!("http://{SEEDED_SIM_ADDR}/"))
    .bind(format!("http://{sim_addr}/"))
    .execute(pool)
    .await
    .context("pointing the marketplaces at the simulator")?;
    Ok(moved.rows_affected())
}

/// Waits up to 30 s for `url` to answer over HTTP.
async fn wait_answering(client: &reqwest::Client, url: &str, what: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if client.get(url).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{what} did not answer on {url} within 30 s")
}

/// Waits for the api, points the simulator's WooCommerce webhooks at it and
/// creates a fresh operator token for the dashboard; returns the token.
async fn connect_api(
    pool: &sqlx::PgPool,
    control: &str,
    api_addr: &str,
    webhook_secret: &str,
) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    wait_answering(&client, &format!("http://{api_addr}/login"), "the api").await?;
    let hook = json!({
        "url": format!("http://{api_addr}/webhooks/woocommerce/woocommerce"),
        "secret": webhook_secret,
    });
    client
        .put(format!("{control}/webhooks/woocommerce"))
        .json(&hook)
        .send()
        .await?
        .error_for_status()?;
    match tokens::revoke(pool, TOKEN_NAME).await {
        Ok(()) | Err(TokenError::Unknown(_)) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(tokens::create(pool, TOKEN_NAME, Role::Operator).await?)
}

/// Waits for the simulator, then lists every variation on every simulated
/// marketplace, first creating demo SKUs when there are none. Returns the
/// number of listings.
async fn seed(pool: &sqlx::PgPool, control: &str, demo_skus: u32) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    wait_answering(&client, &format!("{control}/listings"), "the simulator").await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM variations")
        .fetch_one(pool)
        .await?;
    let marketplaces = stockfleet::marketplace::directory::codes(pool).await?;
    if count == 0 {
        for n in 1..=demo_skus {
            let sku = format!("DEMO-{n:03}");
            for marketplace in &marketplaces {
                stock::correct(
                    pool,
                    &sku,
                    marketplace,
                    Correction::Create(20),
                    "stockfleet up",
                    "demo catalog",
                )
                .await?;
            }
        }
    }
    let skus: Vec<String> = sqlx::query_scalar("SELECT sku FROM variations ORDER BY id")
        .fetch_all(pool)
        .await?;
    for sku in &skus {
        // No marketplace: the simulator lists it on all three, at 0 until the publisher pushes.
        client
            .post(format!("{control}/listings"))
            .json(&json!({"sku": sku, "quantity": 0}))
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(skus.len() * marketplaces.len())
}

/// The first child to exit, with its status.
async fn any_exit(children: &mut [(&'static str, Child)]) -> (&'static str, String) {
    let waits = children.iter_mut().map(|(name, child)| {
        Box::pin(async move {
            let status = child.wait().await;
            (
                *name,
                status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            )
        })
    });
    futures::future::select_all(waits).await.0
}

/// Asks every child to stop (SIGTERM), then waits for each; true when all exited 0.
async fn stop_all(children: &mut [(&'static str, Child)]) -> bool {
    for (_, child) in children.iter() {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    let mut clean = true;
    for (name, child) in children.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => {
                eprintln!("{name} exited with {status}");
                clean = false;
            }
            _ => {
                eprintln!("{name} did not stop within 30 s; killing it");
                let _ = child.kill().await;
                clean = false;
            }
        }
    }
    clean
}
