//! `stockfleet marketplace list|set|pause|resume`.

use anyhow::{Context, bail};
use std::process::ExitCode;
use stockfleet::admin::marketplaces::{self, MarketplaceChange, MarketplaceView};
use stockfleet::config::Settings;
use stockfleet::domain::input;
use stockfleet::outage::store::{self, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every marketplace: where it is, its schedule, limit and buffer default.
    List,
    /// Change a marketplace (only the options given).
    Set {
        code: String,
        /// API base URL, e.g. https://www.backmarket.fr or the simulator's.
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        enabled: Option<bool>,
        /// The slowest new-orders poll and the modified sync's interval, in seconds.
        #[arg(long)]
        poll_seconds: Option<i32>,
        /// The fastest new-orders poll, in seconds, where the request budget has headroom.
        #[arg(long)]
        poll_fastest_seconds: Option<i32>,
        /// Minutes past each reconciliation cycle, to stagger marketplaces.
        #[arg(long)]
        offset_minutes: Option<i32>,
        /// The publisher's limit, as REQUESTS/SECONDS (e.g. 20/10).
        #[arg(long)]
        rate_limit: Option<String>,
        /// Cap on quantity updates as UPDATES/SECONDS (Back Market: 2000/3600), or `none`.
        #[arg(long)]
        quantity_updates: Option<String>,
        /// Default safety buffer of the marketplace's rows, in percent.
        #[arg(long)]
        buffer_percentage: Option<f64>,
    },
    /// Pause a marketplace: its publisher queues wait (no attempts spent,
    /// no dead letters) until `resume`; a probe never ends this pause.
    Pause {
        code: String,
        /// Why, recorded with your name.
        #[arg(long)]
        reason: String,
    },
    /// Resume a paused marketplace (an operator's pause or the fleet's).
    Resume {
        code: String,
        #[arg(long, default_value = "resumed by hand")]
        reason: String,
    },
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<ExitCode> {
    let pool = crate::connect::database(settings, 2).await?;
    let rows = match command {
        Command::Pause { code, reason } => {
            return pause_or_resume(&pool, &code, &reason, true).await;
        }
        Command::Resume { code, reason } => {
            return pause_or_resume(&pool, &code, &reason, false).await;
        }
        Command::List => marketplaces::list(&pool).await?,
        Command::Set {
            code,
            base_url,
            enabled,
            poll_seconds,
            poll_fastest_seconds,
            offset_minutes,
            rate_limit,
            quantity_updates,
            buffer_percentage,
        } => {
            let change = MarketplaceChange {
                base_url,
                sync_enabled: enabled,
                order_poll_interval_seconds: poll_seconds,
                order_poll_fastest_seconds: poll_fastest_seconds,
                sync_offset_minutes: offset_minutes,
                rate_limit: rate_limit.as_deref().map(parse_rate).transpose()?,
                quantity_updates: match quantity_updates.as_deref() {
                    None => None,
                    Some("none") => Some(None),
                    Some(cap) => Some(Some(parse_rate(cap)?)),
                },
                default_buffer_percentage: buffer_percentage,
            };
            let Some(current) = marketplaces::get(&pool, &code).await? else {
                bail!("unknown marketplace {code:?}; `stockfleet marketplace list` shows them")
            };
            change
                .check(&current)
                .with_context(|| format!("changing marketplace {code}"))?;
            match marketplaces::set(&pool, &code, &change)
                .await
                .with_context(|| format!("changing marketplace {code}"))?
            {
                Some(row) => vec![row],
                None => {
                    bail!("unknown marketplace {code:?}; `stockfleet marketplace list` shows them")
                }
            }
        }
    };
    print(&rows);
    Ok(ExitCode::SUCCESS)
}

/// Pauses or resumes `code`, recorded as the operating-system user.
async fn pause_or_resume(
    pool: &sqlx::PgPool,
    code: &str,
    reason: &str,
    pausing: bool,
) -> anyhow::Result<ExitCode> {
    let reason = input::pause_reason("--reason", reason)?;
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let outcome = if pausing {
        store::pause(pool, code, reason, &actor).await?
    } else {
        store::resume(pool, code, reason, &actor).await?
    };
    let done = if pausing { "paused" } else { "resumed" };
    match outcome {
        Outcome::Changed => println!("{code} {done} by {actor}: {reason}"),
        Outcome::AsItWas => println!("{code} was {done} already; nothing changed"),
        Outcome::UnknownMarketplace => {
            bail!("unknown marketplace {code:?}; `stockfleet marketplace list` shows them")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_rate(text: &str) -> anyhow::Result<(i32, i32)> {
    let (requests, seconds) = text
        .split_once('/')
        .with_context(|| format!("rate limit {text:?}: write REQUESTS/SECONDS, e.g. 20/10"))?;
    Ok((requests.trim().parse()?, seconds.trim().parse()?))
}

fn print(rows: &[MarketplaceView]) {
    println!(
        "{:<3} {:<14} {:<12} {:<7} {:>8} {:>9} {:>8} {:>11} {:>7}  base URL (credential from)",
        "id", "code", "kind", "syncing", "poll s", "recon h+m", "limit", "updates cap", "buffer"
    );
    for m in rows {
        let cap = m.quantity_update_limit.map_or("-".to_owned(), |limit| {
            format!("{limit}/{}s", m.quantity_update_window_seconds)
        });
        println!(
            "{:<3} {:<14} {:<12} {:<7} {:>8} {:>9} {:>8} {:>11} {:>6}%  {} (${})",
            m.id,
            m.code,
            m.kind,
            if m.sync_enabled { "yes" } else { "no" },
            // The new-orders poll's fastest and slowest interval.
            format!(
                "{}-{}",
                m.order_poll_fastest_seconds, m.order_poll_interval_seconds
            ),
            format!("{}h+{}m", m.sync_interval_hours, m.sync_offset_minutes),
            format!("{}/{}s", m.rate_limit_requests, m.rate_limit_window_seconds),
            cap,
            m.default_buffer_percentage,
            m.base_url,
            m.credential_env
        );
    }
}
