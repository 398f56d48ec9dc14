//! `stockfleet`: the operator's command line. One module per command family.

mod connect;
mod dlq;
mod marketplace;
mod queues;
mod stock;
mod supervisor;
mod sync;
mod token;
mod up;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use stockfleet::config::Settings;

#[derive(Parser)]
#[command(
    name = "stockfleet",
    version,
    about = "Operate the stockfleet worker fleet"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    /// How long to wait for PostgreSQL or RabbitMQ before giving up (5s, 500ms).
    #[arg(long, env = "CONNECT_TIMEOUT", default_value = "5s", value_parser = connect::parse_timeout, global = true)]
    connect_timeout: std::time::Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if needed and apply every pending migration.
    Migrate,
    /// Check the stock invariants; exits 1 when any is broken.
    Validate(validate::Args),
    /// Run order syncs now (or ask the running pollers with --via-fleet).
    Sync(sync::Args),
    /// List and configure marketplaces.
    #[command(subcommand)]
    Marketplace(marketplace::Command),
    /// Show and correct stock.
    #[command(subcommand)]
    Stock(stock::Command),
    /// Ready, unacknowledged and consumers of every queue (retry and dead-letter queues too).
    Queues(queues::Args),
    /// Dead letters: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(dlq::Command),
    /// API tokens for the REST API and the dashboard.
    #[command(subcommand)]
    Token(token::Command),
    /// The whole fleet and the marketplace simulator on this machine.
    Up(up::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.settings.apply();
    connect::set_timeout(cli.connect_timeout);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command {
        Command::Migrate => {
            stockfleet::db::migrate(&settings.database_url).await?;
            println!(
                "database {} is migrated",
                stockfleet::db::redact(&settings.database_url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => validate::run(&settings, args).await,
        Command::Stock(command) => stock::run(&settings, command).await,
        Command::Sync(args) => sync::run(&settings, args).await,
        Command::Marketplace(command) => marketplace::run(&settings, command).await,
        Command::Queues(args) => queues::run(&settings, args).await,
        Command::Dlq(command) => dlq::run(&settings, command).await,
        Command::Token(command) => token::run(&settings, command).await,
        Command::Up(args) => up::run(&settings, args).await,
    }
}

/// The broker with this fleet's topology, and the marketplace codes whose queues exist.
async fn connect_bus(settings: &Settings) -> anyhow::Result<(stockfleet::bus::Bus, Vec<String>)> {
    let pool = connect::database(settings, 2).await?;
    let marketplaces = stockfleet::marketplace::directory::codes(&pool).await?;
    pool.close().await;
    let bus = connect::bus(settings).await?;
    Ok((bus, marketplaces))
}
