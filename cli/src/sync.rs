//! `stockfleet sync`: run order syncs now, inline with a progress bar, or ask
//! the running pollers with `--via-fleet`.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Duration;
use stockfleet::bus::{Bus, Envelope, Exchange, Outgoing, Publisher, Topology};
use stockfleet::config::Settings;
use stockfleet::events::{SyncRequest, sync_command_key};
use stockfleet::marketplace::directory::{self, MarketplaceRow};
use stockfleet::poller::{RunOptions, RunOutcome, SyncType, Syncer, Trigger};

#[derive(clap::Args)]
pub struct Args {
    /// Marketplace id or code, or `all`.
    #[arg(long, default_value = "all")]
    marketplace: String,
    /// new, modified, care, incomplete, or all.
    #[arg(long = "type", default_value = "all")]
    sync_type: String,
    /// Re-read from --days-back instead of the cursor; via the fleet, run even
    /// if a run since the request already covered it.
    #[arg(long)]
    force: bool,
    /// How far back a forced (or first) modified/care sync reads.
    #[arg(long)]
    days_back: Option<u32>,
    /// Queue the request for the running pollers instead of running it here.
    #[arg(long)]
    via_fleet: bool,
}

pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let pool = stockfleet::db::connect_migrated(&settings.database_url, 4).await?;
    let marketplaces = select_marketplaces(&directory::load_all(&pool).await?, &args.marketplace)?;
    let types = match args.sync_type.as_str() {
        "all" => SyncType::ALL.to_vec(),
        name => vec![SyncType::parse(name).with_context(|| {
            format!("unknown sync type {name:?}: new, modified, care, incomplete or all")
        })?],
    };
    let days_back = match (args.days_back, args.force) {
        (Some(days), _) => Some(days),
        (None, true) => Some(7),
        (None, false) => None,
    };
    if args.via_fleet {
        return request(settings, &marketplaces, &types, args.force, days_back).await;
    }

    let syncer = Syncer::new(pool.clone());
    let shutdown = stockfleet::shutdown::on_signals();
    let mut failed = false;
    for marketplace in &marketplaces {
        for sync_type in &types {
            let bar = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                    .expect("progress template"),
            );
            bar.set_prefix(format!("{} {sync_type}", marketplace.code));
            bar.enable_steady_tick(Duration::from_millis(120));
            let mut options = RunOptions::new(Trigger::Manual, shutdown.clone());
            options.days_back = days_back;
            let outcome = syncer
                .run(marketplace, *sync_type, &options, &|s| {
                    bar.set_message(format!(
                        "page {}: {} fetched, {} new, {} updated",
                        s.pages, s.fetched, s.created, s.updated
                    ));
                })
                .await?;
            bar.finish_and_clear();
            let line = match &outcome {
                RunOutcome::Succeeded(s) => format!(
                    "ok      run {}: {} fetched, {} created, {} updated, {} events",
                    s.run_id, s.fetched, s.created, s.updated, s.events
                ),
                RunOutcome::Failed(s) => {
                    failed = true;
                    format!(
                        "FAILED  run {}: {}",
                        s.run_id,
                        s.error.as_deref().unwrap_or_default()
                    )
                }
                RunOutcome::Skipped(reason) => format!("skipped {reason}"),
            };
            println!("{:<14} {:<11} {line}", marketplace.code, sync_type.as_str());
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn select_marketplaces(
    all: &[MarketplaceRow],
    wanted: &str,
) -> anyhow::Result<Vec<MarketplaceRow>> {
    if wanted == "all" {
        return Ok(all.to_vec());
    }
    let found: Vec<MarketplaceRow> = all
        .iter()
        .filter(|m| m.code == wanted || m.id.to_string() == wanted)
        .cloned()
        .collect();
    if found.is_empty() {
        let known: Vec<&str> = all.iter().map(|m| m.code.as_str()).collect();
        bail!(
            "unknown marketplace {wanted:?}; known: {}",
            known.join(", ")
        );
    }
    Ok(found)
}

/// Publishes one `sync.<mp>.<type>` command per pair, with confirms.
async fn request(
    settings: &Settings,
    marketplaces: &[MarketplaceRow],
    types: &[SyncType],
    force: bool,
    days_back: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let topology = Topology::new(&settings.bus_prefix, settings.consumer.retry_delays());
    let bus = Bus::connect(&settings.amqp_url, topology).await?;
    let publisher = Publisher::new(&bus).await?;
    let request = SyncRequest {
        force,
        days_back,
        requested_by: std::env::var("USER").unwrap_or_else(|_| "operator".into()),
    };
    let mut messages = Vec::new();
    for marketplace in marketplaces {
        for sync_type in types {
            let envelope = Envelope::new(&sync_type.request_kind(), &marketplace.code, &request);
            messages.push(Outgoing {
                exchange: bus.topology.exchange(Exchange::Commands),
                routing_key: sync_command_key(&marketplace.code, sync_type.as_str()),
                message_id: envelope.id.to_string(),
                headers: Default::default(),
                body: envelope.to_bytes(),
            });
        }
    }
    let count = messages.len();
    publisher.publish_all(messages).await?;
    bus.close().await;
    println!("queued {count} sync request(s) for the running pollers");
    Ok(ExitCode::SUCCESS)
}
