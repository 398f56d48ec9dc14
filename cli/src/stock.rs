//! `stockfleet stock show|set|adjust|pool|unpool`.

use anyhow::Context;
use std::process::ExitCode;
use stockfleet::admin::pools::{self, Hold, PoolView};
use stockfleet::admin::stock::{self, Correction};
use stockfleet::config::Settings;
use stockfleet::domain::pool::StockMode;

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
    /// Share one count on hand between every marketplace of the SKU (its rows' units move into the pool).
    Pool {
        sku: String,
        /// Show the last N units on one marketplace only (0 lifts the hold).
        #[arg(long)]
        last_units: Option<u32>,
        /// The marketplace that keeps the last units.
        #[arg(long)]
        holder: Option<String>,
        /// Count the pool's units on hand (needs --reason).
        #[arg(long)]
        on_hand: Option<i64>,
        /// Why the count changes; kept in the pool's history.
        #[arg(long)]
        reason: Option<String>,
        /// Who changes it (default: $USER).
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
    /// Give a pool's units back to the SKU's marketplace rows (each its own locks first).
    Unpool {
        sku: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
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
            let rows = stock::show(&pool, &sku, None).await?;
            print(&rows);
            if rows
                .iter()
                .any(|row| row.mode == StockMode::Pooled.as_str())
            {
                print_pool(&pools::view(&pool, &sku).await?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Pool {
            sku,
            last_units,
            holder,
            on_hand,
            reason,
            actor,
        } => {
            let hold = (last_units.is_some() || holder.is_some()).then(|| Hold {
                units: last_units.unwrap_or(1),
                holder,
            });
            let mut view = pools::pool(&pool, &sku, hold, &actor)
                .await
                .with_context(|| format!("pooling {sku}"))?;
            if let Some(on_hand) = on_hand {
                let reason =
                    reason.context("--on-hand needs --reason (kept in the pool's history)")?;
                view = pools::set_on_hand(&pool, &sku, on_hand, &actor, &reason)
                    .await
                    .with_context(|| format!("counting the pool of {sku}"))?;
            }
            print_pool(&view);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Unpool { sku, actor } => {
            pools::unpool(&pool, &sku, &actor)
                .await
                .with_context(|| format!("unpooling {sku}"))?;
            print(&stock::show(&pool, &sku, None).await?);
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

fn print_pool(pool: &PoolView) {
    let hold = match (&pool.last_units_marketplace, pool.last_units) {
        (Some(holder), units) if units > 0 => format!("; last {units} unit(s) on {holder} only"),
        _ => String::new(),
    };
    println!(
        "pool of {}: on hand {}, locked {}, available {}{}{}",
        pool.sku,
        pool.on_hand,
        pool.locked,
        pool.available,
        if pool.oversold > 0 {
            format!(", OVERSOLD {}", pool.oversold)
        } else {
            String::new()
        },
        hold
    );
    println!(
        "  {:<14} {:>7} {:>7} {:>10}  {:<28} race window",
        "marketplace", "locked", "shown", "last push", "rule"
    );
    for row in &pool.marketplaces {
        let rule = format!(
            "{}% min {} cap {} {:?}",
            f64::from(row.rule.basis_points) / 100.0,
            row.rule.min_units,
            row.rule.max_shown.map_or("-".into(), |cap| cap.to_string()),
            row.rule.rounding
        );
        let race = match (&row.propagation_from, row.propagation_ms) {
            (Some(from), Some(ms)) => format!("{ms} ms after an order on {from}"),
            _ => "-".to_owned(),
        };
        println!(
            "  {:<14} {:>7} {:>7} {:>10}  {:<28} {}",
            row.marketplace,
            row.locked,
            row.shown,
            row.last_api_quantity.map_or("-".into(), |q| q.to_string()),
            rule,
            race
        );
    }
}
