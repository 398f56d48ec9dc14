//! `audit`: the after-run audit of a fleet (tests/src/audit, docs/operations.md).
//! Its defaults are `stockfleet up`'s: the same database, broker and bus
//! prefix (the fleet's configuration variables), the simulator on 8900.
//! Exits 0 when clean, 1 on any problem, 2 when it cannot audit.

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;
use stockfleet::admin::queues::DEFAULT_MANAGEMENT_URL;
use stockfleet::config::Settings;
use stockfleet_tests::audit::{self, AuditConfig};

#[derive(Parser)]
#[command(about = "Audit an idle fleet against its simulated marketplaces")]
struct Args {
    #[command(flatten)]
    settings: Settings,
    /// The simulator the marketplaces point at.
    #[arg(long, default_value = "http://127.0.0.1:8900")]
    sim: String,
    /// RabbitMQ management API, for unacknowledged counts ("" = none).
    #[arg(long, env = "RABBITMQ_MANAGEMENT_URL", default_value = DEFAULT_MANAGEMENT_URL)]
    management_url: String,
    /// How long to wait for empty queues and a drained outbox.
    #[arg(long, default_value_t = 120)]
    idle_timeout_seconds: u64,
    /// How long problems may take to clear (audit again every 2 s); 0 = once.
    #[arg(long, default_value_t = 0)]
    converge_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = AuditConfig {
        settings: args.settings,
        sim: args.sim,
        management_url: Some(args.management_url).filter(|url| !url.is_empty()),
        idle_timeout: Duration::from_secs(args.idle_timeout_seconds),
        converge: Duration::from_secs(args.converge_seconds),
    };
    match audit::run(&config).await {
        Ok(report) => {
            println!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("audit: {error:#}");
            ExitCode::from(2)
        }
    }
}
