//! `stockfleet up`: the whole fleet on this machine, against the local
//! PostgreSQL and RabbitMQ, with the marketplace simulator (and its order
//! generator) as every marketplace. Migrates first; seeds a small demo catalog
//! when the database has none; says "fleet running" once every worker is
//! ready; restarts a worker that exits (see [`crate::supervisor`]); on
//! SIGINT/SIGTERM stops them in dependency order within 3 s.

use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use stockfleet::admin::stock::{self, Correction};
use stockfleet::admin::tokens::{self, Role, TokenError};
use stockfleet::config::Settings;

use crate::supervisor::{Fleet, Spec};

/// The workers, in the order of their health ports, each with its stop
/// stage: what brings work in (api, poller) stops first, then the ledger
/// (locker, reducer), then the publisher, and the simulator it talks to last.
const WORKERS: [(&str, u8); 5] = [
    ("poller", 0),
    ("locker", 1),
    ("reducer", 1),
    ("publisher", 2),
    ("api", 0),
];
const SIM_STAGE: u8 = 3;
/// The whole fleet stops within this after SIGTERM or SIGINT.
const STOP_WITHIN: Duration = Duration::from_millis(2800);
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
    /// Health port of the (first) poller; the other workers take the next
    /// ones, in the order poller, locker, reducer, publisher, api (each
    /// instance its own). 0: free ports `up` picks (it prints them).
    #[arg(long, default_value_t = 9101)]
    health_port_base: u16,
    /// Where the API and dashboard listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_addr: String,
    /// Seconds every worker has to become ready (its /readyz answering 200)
    /// before `up` gives up, naming the one that is not.
    #[arg(long, default_value_t = 60)]
    ready_timeout_seconds: u64,
    /// Run N instances of a worker, as a container runtime scaling it out
    /// would: `--scale poller=2 --scale publisher=3`. poller, locker, reducer
    /// or publisher, 1 to 8 each (the api listens on one address).
    #[arg(long = "scale", value_name = "WORKER=N", value_parser = parse_scale)]
    scale: Vec<(String, u8)>,
}

/// The most instances of one worker `--scale` starts.
const MAX_INSTANCES: u8 = 8;

fn parse_scale(text: &str) -> Result<(String, u8), String> {
    let (worker, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected WORKER=N, e.g. publisher=3"))?;
    let scalable = WORKERS
        .iter()
        .any(|(name, _)| *name == worker && *name != "api");
    if !scalable {
        return Err(format!(
            "{worker:?}: not a worker that scales (poller, locker, reducer or publisher)"
        ));
    }
    match count.parse::<u8>() {
        Ok(n) if (1..=MAX_INSTANCES).contains(&n) => Ok((worker.to_owned(), n)),
        _ => Err(format!(
            "{worker}={count:?}: the count must be a whole number from 1 to {MAX_INSTANCES}"
        )),
    }
}

impl Args {
    fn control(&self) -> String {
        format!("http://{}/control", self.sim_addr)
    }

    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout_seconds)
    }

    /// Every worker instance to start: its name (`publisher`, or
    /// `publisher-2` when scaled out), binary name and stop stage.
    fn instances(&self) -> Vec<(String, &'static str, u8)> {
        let mut instances = Vec::new();
        for (worker, stop_stage) in WORKERS {
            // The last --scale of a worker counts, as with any repeated flag.
            let count = self
                .scale
                .iter()
                .rev()
                .find(|(name, _)| name == worker)
                .map_or(1, |(_, n)| *n);
            for n in 1..=count {
                let name = match count {
                    1 => worker.to_owned(),
                    _ => format!("{worker}-{n}"),
                };
                instances.push((name, worker, stop_stage));
            }
        }
        instances
    }

    /// One health port per instance: from the base, or free ones when it is 0.
    fn health_ports(&self, instances: usize) -> Vec<u16> {
        match self.health_port_base {
            0 => (0..instances).map(|_| free_port()).collect(),
            base => (0..instances as u16).map(|n| base + n).collect(),
        }
    }
}

/// A port free a moment ago (the worker binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_or(0, |addr| addr.port())
}

pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let stopping = stockfleet::shutdown::on_signals();
    let pool = stockfleet::db::migrate(&settings.database_url).await?;
    let webhook_secret = std::env::var("WEBHOOK_SECRET_WOOCOMMERCE")
        .unwrap_or_else(|_| DEMO_WEBHOOK_SECRET.to_owned());
    let dir = sibling_dir()?;
    let mut fleet = Fleet::default();
    fleet.start(Spec {
        name: "sim".into(),
        binary: dir.join("stockfleet-sim"),
        args: vec![
            "--addr".into(),
            args.sim_addr.clone(),
            "--orders-per-second".into(),
            args.orders_per_second.to_string(),
        ],
        env: Vec::new(),
        readyz: None,
        // Its listings live in memory: a new simulator would not match the seeded catalog.
        restart: false,
        stop_stage: SIM_STAGE,
    })?;
    let instances = args.instances();
    let ports = args.health_ports(instances.len());
    let started = start_workers(
        &mut fleet,
        settings,
        &args,
        &instances,
        &ports,
        &pool,
        &webhook_secret,
    )
    .await;
    let running = match started {
        Ok(()) => fleet.wait_ready(args.ready_timeout(), &stopping).await,
        Err(error) => Err(error),
    };
    let token = match running {
        Ok(true) => connect_api(&pool, &args.control(), &args.api_addr, &webhook_secret).await,
        Ok(false) => Err(anyhow::anyhow!("stopped before the fleet was ready")),
        Err(error) => Err(error),
    };
    pool.close().await;
    let token = match token {
        Ok(token) => token,
        Err(error) => {
            fleet.stop(STOP_WITHIN).await;
            return Err(error);
        }
    };
    println!(
        "fleet running: dashboard and API at http://{}/ (sign in with {token}), health on 127.0.0.1 ports {} (/healthz, /readyz, /metrics), simulator control API at {}; Ctrl-C stops it",
        args.api_addr,
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        args.control()
    );
    let supervised = fleet.supervise(&stopping).await;
    if let Err(error) = &supervised {
        eprintln!("{error:#}");
    }
    let clean = fleet.stop(STOP_WITHIN).await;
    Ok(match supervised {
        Ok(()) if clean => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Seeds the simulator, then starts every worker.
async fn start_workers(
    fleet: &mut Fleet,
    settings: &Settings,
    args: &Args,
    instances: &[(String, &'static str, u8)],
    ports: &[u16],
    pool: &sqlx::PgPool,
    webhook_secret: &str,
) -> anyhow::Result<()> {
    let moved = follow_simulator(pool, &args.sim_addr).await?;
    if moved > 0 {
        println!(
            "{moved} marketplace(s) pointed at the simulator on {}",
            args.sim_addr
        );
    }
    let listed = seed(pool, &args.control(), args.demo_skus).await?;
    println!("simulator on {} with {listed} listings", args.sim_addr);
    let dir = sibling_dir()?;
    for ((name, worker, stop_stage), port) in instances.iter().zip(ports) {
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", settings.database_url.as_str()),
            ("AMQP_URL", &settings.amqp_url),
            ("BUS_PREFIX", &settings.bus_prefix),
            ("API_ADDR", &args.api_addr),
            ("WEBHOOK_SECRET_WOOCOMMERCE", webhook_secret),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.push(("HEALTH_ADDR".into(), format!("127.0.0.1:{port}")));
        for (variable, value) in CREDENTIALS {
            if std::env::var_os(variable).is_none() {
                env.push((variable.into(), value.into()));
            }
        }
        if std::env::var_os("LOG_FORMAT").is_none() {
            env.push(("LOG_FORMAT".into(), "text".into()));
        }
        if std::env::var_os("SHUTDOWN_GRACE_MS").is_none() {
            // The whole fleet stops within STOP_WITHIN: a batch gets 1 s of it.
            env.push(("SHUTDOWN_GRACE_MS".into(), "1000".into()));
        }
        fleet.start(Spec {
            name: name.clone(),
            binary: dir.join(format!("stockfleet-{worker}")),
            args: Vec::new(),
            env,
            readyz: Some(format!("http://127.0.0.1:{port}/readyz")),
            restart: true,
            stop_stage: *stop_stage,
        })?;
    }
    Ok(())
}

/// The directory of this executable, where cargo puts the sibling binaries.
fn sibling_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Up {
        #[command(flatten)]
        args: Args,
    }

    fn up(flags: &[&str]) -> Result<Args, clap::Error> {
        Up::try_parse_from(std::iter::once("up").chain(flags.iter().copied())).map(|up| up.args)
    }

    #[test]
    fn scaled_workers_get_numbered_instances_and_a_port_each() {
        let args = up(&["--scale", "poller=2", "--scale", "publisher=3"]).unwrap();
        let names: Vec<String> = args
            .instances()
            .into_iter()
            .map(|(name, ..)| name)
            .collect();
        assert_eq!(
            names,
            [
                "poller-1",
                "poller-2",
                "locker",
                "reducer",
                "publisher-1",
                "publisher-2",
                "publisher-3",
                "api"
            ]
        );
        assert_eq!(
            args.health_ports(names.len()),
            (9101..9109).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_scale_that_cannot_run_is_refused_naming_it() {
        for (flag, named) in [
            ("api=2", "\"api\""),
            ("publisher=0", "publisher=\"0\""),
            ("publisher=9", "publisher=\"9\""),
            ("publisher=-1", "publisher=\"-1\""),
            ("publisher", "expected WORKER=N"),
            ("poller=2\0", "poller=\"2\\0\""),
        ] {
            let error = up(&["--scale", flag]).err().expect(flag).to_string();
            assert!(error.contains(named), "{flag}: {error}");
        }
    }
}
