//! `stockfleet queues [--watch]`: depth and consumers of every queue;
//! `stockfleet queues migrate [--dry-run]`: this version's topology.

use std::process::ExitCode;
use std::time::Duration;
use stockfleet::admin::queues;
use stockfleet::config::Settings;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Refresh every N seconds until interrupted.
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    watch: Option<u64>,
    /// RabbitMQ management API, for unacknowledged counts (absent: shown as "-").
    #[arg(
        long,
        env = "RABBITMQ_MANAGEMENT_URL",
        default_value = queues::DEFAULT_MANAGEMENT_URL
    )]
    management_url: String,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Bring the queues to this version's topology, keeping every message:
    /// re-create queues declared with other arguments, move the old per-queue
    /// retry queues into the shared delay queues. Stop the workers first.
    Migrate {
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let (bus, marketplaces) = crate::connect_bus(settings).await?;
    if let Some(Command::Migrate { dry_run }) = args.command {
        let mut done = Vec::new();
        let migrated = stockfleet::bus::migrate::migrate(&bus, &marketplaces, dry_run, &mut done);
        let migrated = migrated.await;
        bus.close().await;
        // What was done is printed even when a later step failed.
        for line in &done {
            println!("{line}");
        }
        migrated?;
        return Ok(ExitCode::SUCCESS);
    }
    let pool = crate::connect::database(settings, 1).await?;
    loop {
        let stats = queues::stats(&bus, &marketplaces, Some(&args.management_url)).await?;
        let paused = stockfleet::outage::store::all(&pool).await?;
        if args.watch.is_some() {
            print!("\x1b[2J\x1b[H"); // clear the terminal between refreshes
        }
        println!(
            "{:<60} {:>8} {:>8} {:>9}",
            "queue", "ready", "unacked", "consumers"
        );
        for queue in &stats {
            let unacked = queue.unacked.map_or("-".to_owned(), |n| n.to_string());
            println!(
                "{:<60} {:>8} {:>8} {:>9}",
                queue.name, queue.ready, unacked, queue.consumers
            );
        }
        if stats.iter().all(|q| q.unacked.is_none()) {
            println!(
                "(unacked: the management API does not answer; `rabbitmq-plugins enable rabbitmq_management` turns it on)"
            );
        }
        // A paused marketplace's queues grow on purpose: say so beside them.
        for (code, pause) in &paused {
            println!(
                "{code}: paused since {} by {}, why: {}",
                pause.since.to_rfc3339(),
                pause.by,
                pause.reason
            );
        }
        let Some(seconds) = args.watch else { break };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(seconds.max(1))) => {}
        }
    }
    bus.close().await;
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}
