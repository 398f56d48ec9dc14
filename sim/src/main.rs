//! `stockfleet-sim`: the marketplace simulator as a standalone server.

use clap::Parser;
use std::net::SocketAddr;
use stockfleet_sim::{Credentials, GeneratorConfig, Marketplace, SimConfig, SkuWeight};

#[derive(Parser, Debug)]
#[command(
    name = "stockfleet-sim",
    about = "Back Market-, Refurbed- and WooCommerce-like APIs with a control API"
)]
struct Args {
    /// Address to listen on; the APIs are under /backmarket, /refurbed, /woocommerce, the control API under /control.
    #[arg(long, env = "SIM_ADDR", default_value = "127.0.0.1:8900")]
    addr: SocketAddr,
    #[arg(long, env = "SIM_BACKMARKET_TOKEN", default_value = "bm-sim-token")]
    backmarket_token: String,
    #[arg(long, env = "SIM_REFURBED_TOKEN", default_value = "rf-sim-token")]
    refurbed_token: String,
    #[arg(long, env = "SIM_WOOCOMMERCE_KEY", default_value = "ck_sim")]
    woocommerce_key: String,
    #[arg(long, env = "SIM_WOOCOMMERCE_SECRET", default_value = "cs_sim")]
    woocommerce_secret: String,
    /// Seeds the fault dice and, unless --generator-seed says otherwise, the order generator.
    #[arg(long, env = "SIM_SEED", default_value_t = 0)]
    seed: u64,
    /// Start the random order generator at this many orders per second.
    #[arg(long, env = "SIM_ORDERS_PER_SECOND")]
    orders_per_second: Option<f64>,
    #[arg(long, env = "SIM_GENERATOR_SEED")]
    generator_seed: Option<u64>,
    /// SKU mix for the generator: SKU or SKU=WEIGHT, comma-separated (default: every listing).
    #[arg(long, env = "SIM_SKUS", value_delimiter = ',')]
    skus: Vec<String>,
    /// Marketplaces the generator places orders on (default: all).
    #[arg(long, env = "SIM_GENERATOR_MARKETPLACES", value_delimiter = ',')]
    generator_marketplaces: Vec<String>,
    #[arg(long, env = "SIM_MAX_QUANTITY", default_value_t = 1)]
    max_quantity: u32,
    /// Orders start unpaid and are paid after this delay (0 = placed paid).
    #[arg(long, env = "SIM_PAY_AFTER_MS", default_value_t = 0)]
    pay_after_ms: u64,
    /// Share of orders never paid, 0..1.
    #[arg(long, env = "SIM_UNPAID_RATE", default_value_t = 0.0)]
    unpaid_rate: f64,
}

fn generator(args: &Args) -> anyhow::Result<Option<GeneratorConfig>> {
    let Some(orders_per_second) = args.orders_per_second else {
        return Ok(None);
    };
    let skus = args
        .skus
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((sku, weight)) => Ok(SkuWeight {
                sku: sku.to_owned(),
                weight: weight.parse()?,
            }),
            None => Ok(SkuWeight {
                sku: entry.clone(),
                weight: 1,
            }),
        })
        .collect::<anyhow::Result<_>>()?;
    let marketplaces = if args.generator_marketplaces.is_empty() {
        Marketplace::ALL.to_vec()
    } else {
        args.generator_marketplaces
            .iter()
            .map(|code| {
                Marketplace::parse(code)
                    .ok_or_else(|| anyhow::anyhow!("unknown marketplace {code:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let defaults = GeneratorConfig::default();
    Ok(Some(GeneratorConfig {
        seed: args.generator_seed.unwrap_or(args.seed),
        orders_per_second,
        marketplaces,
        skus,
        max_quantity: args.max_quantity,
        progression: stockfleet_sim::Progression {
            pay_after_ms: args.pay_after_ms,
            unpaid_rate: args.unpaid_rate,
        },
        ..defaults
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        addr: args.addr,
        credentials: Credentials {
            backmarket_token: args.backmarket_token.clone(),
            refurbed_token: args.refurbed_token.clone(),
            woocommerce_key: args.woocommerce_key.clone(),
            woocommerce_secret: args.woocommerce_secret.clone(),
        },
        seed: args.seed,
        generator: generator(&args)?,
    };
    let sim = stockfleet_sim::start(config).await?;
    tracing::info!(addr = %sim.addr(), "stockfleet-sim ready; control API at {}", sim.control_url());
    // SIGTERM (containers, `stockfleet up`) or SIGINT (a terminal) stops it cleanly.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        signalled = tokio::signal::ctrl_c() => signalled?,
    }
    sim.shutdown().await;
    Ok(())
}
