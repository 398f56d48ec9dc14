//! stockfleet-publisher: buffered quantities and order commands out to every
//! marketplace, and the stock reconciliation schedule (see `stockfleet::publisher`).

use std::time::Duration;
use stockfleet::publisher::{self, Options};

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("publisher", 9104, |worker| async move {
        let mut options = Options::default();
        // Demos and tests shorten the reconciliation schedule's hour.
        if let Some(hour) = seconds_from_env("RECONCILE_HOUR_SECONDS")? {
            options.schedule_hour = hour;
        }
        if let Some(refresh) = seconds_from_env("MARKETPLACE_REFRESH_SECONDS")? {
            options.refresh = refresh;
        }
        if let Some(calls) = count_from_env("PUBLISHER_CALLS_IN_FLIGHT", 64)? {
            options.calls_in_flight = calls;
        }
        if let Some(batch) = count_from_env("PUBLISHER_STOCK_BATCH", 10_000)? {
            options.stock_batch = batch;
        }
        if let Some(batches) = count_from_env("PUBLISHER_STOCK_BATCHES_IN_FLIGHT", 64)? {
            options.stock_batches_in_flight = batches;
        }
        // Outage mode: when a marketplace that keeps failing is paused, how it is probed.
        if let Some(after) = seconds_from_env("OUTAGE_PAUSE_AFTER_SECONDS")? {
            options.outage.rule.after = after;
        }
        if let Some(calls) = count_from_env("OUTAGE_PAUSE_AFTER_CALLS", 1_000)? {
            options.outage.rule.calls = calls as u32;
        }
        if let Some(probe) = seconds_from_env("OUTAGE_PROBE_SECONDS")? {
            options.outage.probe = probe;
        }
        if let Some(refresh) = seconds_from_env("PAUSE_REFRESH_SECONDS")? {
            options.outage.refresh = refresh;
        }
        publisher::run(worker, options).await
    })
}

fn seconds_from_env(name: &str) -> anyhow::Result<Option<Duration>> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    let seconds: f64 = value
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .ok_or_else(|| {
            anyhow::anyhow!("{name} must be a positive number of seconds, not {value:?}")
        })?;
    Ok(Some(Duration::from_secs_f64(seconds)))
}

fn count_from_env(name: &str, max: usize) -> anyhow::Result<Option<usize>> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    let count = value
        .parse()
        .ok()
        .filter(|n: &usize| (1..=max).contains(n))
        .ok_or_else(|| {
            anyhow::anyhow!("{name} must be a whole number from 1 to {max}, not {value:?}")
        })?;
    Ok(Some(count))
}
