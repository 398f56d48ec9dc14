//! `stockfleet sync`: run order syncs or a stock reconciliation now, inline
//! with a progress bar, or ask the running fleet with `--via-fleet`.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Duration;
use stockfleet::bus::{Exchange, Outgoing, Publisher};
use stockfleet::config::Settings;
use stockfleet::events::SyncRequest;
use stockfleet::marketplace::directory::{self, MarketplaceRow};
use stockfleet::poller::{RunOptions, RunOutcome, SyncKind, Syncer, Trigger};
use stockfleet::reconcile;

#[derive(clap::Args)]
pub struct Args {
    /// Marketplace id or code, or `all`.
    #[arg(long, default_value = "all")]
    marketplace: String,
    /// new, modified, care, incomplete, stock, or all.
    #[arg(long = "type", default_value = "all")]
    sync_type: String,
    /// Order syncs: re-read from --days-back instead of the cursor. Stock: push
    /// every row, not only those not pushed within the interval. Via the fleet:
    /// run even if a run since the request already covered it.
    #[arg(long)]
    force: bool,
    /// How far back a forced (or first) modified/care sync reads (1 to 366 days).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(stockfleet::domain::input::MAX_DAYS_BACK)))]
    days_back: Option<u32>,
    /// Queue the request for the running fleet instead of running it here.
    #[arg(long)]
    via_fleet: bool,
}

pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let pool = crate::connect::database(settings, 4).await?;
    let marketplaces = select_marketplaces(&directory::load_all(&pool).await?, &args.marketplace)?;
    let kinds = SyncKind::select(&args.sync_type).with_context(|| {
        format!(
            "unknown sync type {:?}: {}",
            args.sync_type,
            SyncKind::CHOICES
        )
    })?;
    let days_back = match (args.days_back, args.force) {
        (Some(days), _) => Some(days),
        (None, true) => Some(7),
        (None, false) => None,
    };
    if args.via_fleet {
        return request(settings, &marketplaces, &kinds, args.force, days_back).await;
    }

    let syncer = Syncer::new(pool.clone(), "cli");
    let shutdown = stockfleet::shutdown::on_signals();
    let mut failed = false;
    for marketplace in &marketplaces {
        for kind in &kinds {
            let bar = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                    .expect("progress template"),
            );
            bar.set_prefix(format!("{} {}", marketplace.code, kind.name()));
            bar.enable_steady_tick(Duration::from_millis(120));
            let line = match kind {
                SyncKind::Stock => {
                    let summary =
                        reconcile::run(&pool, &marketplace.code, args.force, Trigger::Manual)
                            .await?;
                    if summary.skipped {
                        "skipped: a reconciliation is under way".to_owned()
                    } else {
                        format!(
                            "ok      run {}: {} row(s) sent to the publisher, {} of unknown stock left out",
                            summary.run_id.unwrap_or_default(),
                            summary.enqueued,
                            summary.unknown_stock
                        )
                    }
                }
                SyncKind::Orders(sync_type) => {
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
                    match outcome {
                        RunOutcome::Succeeded(s) => format!(
                            "ok      run {}: {} fetched, {} created, {} updated, {} events",
                            s.run_id, s.fetched, s.created, s.updated, s.events
                        ),
                        RunOutcome::Partial(s) => format!(
                            "partial run {}: {} fetched, {} created, {} updated; {}",
                            s.run_id,
                            s.fetched,
                            s.created,
                            s.updated,
                            s.error.unwrap_or_default()
                        ),
                        RunOutcome::Failed(s) => {
                            failed = true;
                            format!("FAILED  run {}: {}", s.run_id, s.error.unwrap_or_default())
                        }
                        RunOutcome::Busy | RunOutcome::Satisfied => {
                            "skipped: a run is under way".to_owned()
                        }
                    }
                }
            };
            bar.finish_and_clear();
            println!("{:<14} {:<11} {line}", marketplace.code, kind.name());
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
    kinds: &[SyncKind],
    force: bool,
    days_back: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let bus = crate::connect::bus(settings).await?;
    let publisher = Publisher::new(&bus).await?;
    let mut messages = Vec::new();
    for marketplace in marketplaces {
        for kind in kinds {
            let request = SyncRequest {
                sync_type: kind.name().to_owned(),
                force,
                days_back,
                requested_by: std::env::var("USER").unwrap_or_else(|_| "operator".into()),
            };
            let (routing_key, envelope) = request.command(&marketplace.code);
            messages.push(Outgoing {
                exchange: bus.topology.exchange(Exchange::Commands),
                routing_key,
                message_id: envelope.id.to_string(),
                headers: Default::default(),
                body: envelope.to_bytes(),
            });
        }
    }
    let count = messages.len();
    publisher.publish_all(messages).await?;
    bus.close().await;
    println!("queued {count} sync request(s) for the running fleet");
    Ok(ExitCode::SUCCESS)
}
