//! `stockfleet stock show|set|adjust`.

use anyhow::Context;
use std::process::ExitCode;
use stockfleet::admin::stock::{self, Correction};
use stockfleet::config::Settings;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every marketplace row of a SKU: listed, locked, available, shown.
    Show { sku: String },
    /// Set listed stock to a counted number.
    Set {
        sku: String,
        #[arg(long)]
        marketplace: String,
        #[arg(long)]
        quantity: i32,
        /// Create the SKU when it is new (without it, an unknown SKU is refused as a likely typo).
        #[arg(long)]
        create: bool,
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
pub struct Why {
    /// Why the stock changes; kept in the history.
    #[arg(long)]
    reason: String,
    /// Who changes it (default: $USER).
    #[arg(long, env = "USER", default_value = "operator")]
    actor: String,
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<ExitCode> {
    let pool = crate::connect::database(settings, 2).await?;
    let (sku, marketplace, correction, why) = match command {
        Command::Show { sku } => {
            print(&stock::show(&pool, &sku).await?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Set {
            sku,
            marketplace,
            quantity,
            create,
            why,
        } => {
            let correction = if create {
                Correction::Create(quantity)
            } else {
                Correction::Set(quantity)
            };
            (sku, marketplace, correction, why)
        }
        Command::Adjust {
            sku,
            marketplace,
            by,
            why,
        } => (sku, marketplace, Correction::Adjust(by), why),
    };
    let row = stock::correct(
        &pool,
        &sku,
        &marketplace,
        correction,
        &why.actor,
        &why.reason,
    )
    .await
    .with_context(|| format!("changing stock of {sku} on {marketplace}"))?;
    print(&[row]);
    Ok(ExitCode::SUCCESS)
}

fn print(rows: &[stock::StockRowView]) {
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
}
