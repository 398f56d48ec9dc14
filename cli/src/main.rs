//! `stockfleet`: the operator's command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use stockfleet::admin::stock::{self, Correction};
use stockfleet::admin::validate;
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
    Validate {
        /// Recompute drifted counters, writing a `reconciliation` history row per correction.
        #[arg(long)]
        repair: bool,
        /// Report locks older than this many hours whose order has not changed.
        #[arg(long, default_value_t = 72)]
        stale_after_hours: u64,
    },
    /// Show and correct stock.
    #[command(subcommand)]
    Stock(StockCommand),
}

#[derive(Subcommand)]
enum StockCommand {
    /// Every marketplace row of a SKU: listed, locked, available, shown.
    Show { sku: String },
    /// Set listed stock to a counted number (creates the SKU if new).
    Set {
        sku: String,
        #[arg(long)]
        marketplace: String,
        #[arg(long)]
        quantity: i32,
        #[command(flatten)]
        why: Why,
    },
    /// Add (top-up) or remove units of listed stock.
    Adjust {
        sku: String,
        #[arg(long)]
        marketplace: String,
        /// Units to add; negative removes.
        #[arg(long, allow_hyphen_values = true)]
        by: i32,
        #[command(flatten)]
        why: Why,
    },
}

#[derive(clap::Args)]
struct Why {
    /// Why the stock changes; kept in the history.
    #[arg(long)]
    reason: String,
    /// Who changes it (default: $USER).
    #[arg(long, env = "USER", default_value = "operator")]
    actor: String,
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
        Command::Validate {
            repair,
            stale_after_hours,
        } => {
            let pool = stockfleet::db::connect_migrated(&settings.database_url, 2).await?;
            let stale_after = Duration::from_secs(stale_after_hours * 3600);
            let mut report = validate::validate(&pool, stale_after).await?;
            print_report(&report);
            if repair && !report.is_clean() {
                let actor = std::env::var("USER").unwrap_or_else(|_| "operator".into());
                let repaired = validate::repair(&pool, &actor).await?;
                println!("repaired {} row(s): {repaired:?}", repaired.len());
                report = validate::validate(&pool, stale_after).await?;
                print_report(&report);
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Stock(command) => {
            let pool = stockfleet::db::connect_migrated(&settings.database_url, 2).await?;
            let rows = match command {
                StockCommand::Show { sku } => stock::show(&pool, &sku).await?,
                StockCommand::Set {
                    sku,
                    marketplace,
                    quantity,
                    why,
                } => vec![
                    stock::correct(
                        &pool,
                        &sku,
                        &marketplace,
                        Correction::Set(quantity),
                        &why.actor,
                        &why.reason,
                    )
                    .await
                    .context("stock set")?,
                ],
                StockCommand::Adjust {
                    sku,
                    marketplace,
                    by,
                    why,
                } => vec![
                    stock::correct(
                        &pool,
                        &sku,
                        &marketplace,
                        Correction::Adjust(by),
                        &why.actor,
                        &why.reason,
                    )
                    .await
                    .context("stock adjust")?,
                ],
            };
            println!(
                "{:<24} {:<14} {:>7} {:>7} {:>9} {:>7} {:>10}  known",
                "sku", "marketplace", "listed", "locked", "available", "shown", "last push"
            );
            for row in rows {
                println!(
                    "{:<24} {:<14} {:>7} {:>7} {:>9} {:>7} {:>10}  {}",
                    row.sku,
                    row.marketplace,
                    row.listed,
                    row.locked,
                    row.available,
                    row.buffered,
                    row.last_api_quantity.map_or("-".into(), |q| q.to_string()),
                    if row.stock_known { "yes" } else { "NO: set it" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(report: &validate::Report) {
    for violation in &report.violations {
        println!(
            "VIOLATION invariant {} ({}): stock row {}: {}",
            violation.invariant,
            validate::INVARIANTS[usize::from(violation.invariant) - 1],
            violation.stock_id.map_or("-".into(), |id| id.to_string()),
            violation.detail
        );
    }
    for finding in &report.findings {
        println!("REPORT {}: {}", finding.kind, finding.detail);
    }
    if report.is_clean() {
        println!("invariants 1-4 hold ({} report(s))", report.findings.len());
    } else {
        println!("{} invariant violation(s)", report.violations.len());
    }
}
