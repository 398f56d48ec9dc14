//! `stockfleet`: the operator's command line. One module per command family.

mod stock;
mod sync;
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
    /// Show and correct stock.
    #[command(subcommand)]
    Stock(stock::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    }
}
