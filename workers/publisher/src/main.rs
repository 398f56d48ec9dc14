//! stockfleet-publisher: buffered quantities and order commands out to every
//! marketplace, and the stock reconciliation schedule (see `stockfleet::publisher`).

use std::time::Duration;
use stockfleet::publisher::{self, Options};

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("publisher", 9104, |worker| async move {
        let mut options = Options::default();
        // Demos and tests shorten the reconciliation schedule's hour.
        if let Ok(seconds) = std::env::var("RECONCILE_HOUR_SECONDS") {
            let seconds: f64 = seconds.parse().map_err(|_| {
                anyhow::anyhow!("RECONCILE_HOUR_SECONDS must be a number of seconds")
            })?;
            options.schedule_hour = Duration::from_secs_f64(seconds);
        }
        publisher::run(worker, options).await
    })
}
