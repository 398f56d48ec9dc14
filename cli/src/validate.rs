//! `stockfleet validate [--repair]`.

use std::process::ExitCode;
use std::time::Duration;
use stockfleet::admin::validate::{self, Report};
use stockfleet::config::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// Recompute drifted counters and bridge broken history chains, writing a
    /// `reconciliation` history row per correction (history is never rewritten).
    #[arg(long)]
    repair: bool,
    /// Report locks older than this many hours whose order has not changed.
    #[arg(long, default_value_t = validate::DEFAULT_STALE_AFTER_HOURS)]
    stale_after_hours: u64,
}

pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let pool = crate::connect::database(settings, 2).await?;
    let stale_after = Duration::from_secs(args.stale_after_hours * 3600);
    let mut report = validate::validate(&pool, stale_after).await?;
    print_report(&report);
    if args.repair && !report.is_clean() {
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

fn print_report(report: &Report) {
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
    let oversold: Vec<String> = report
        .oversold_units
        .iter()
        .map(|(code, units)| format!("{code} {units}"))
        .collect();
    println!("oversold units: {}", oversold.join(", "));
    if report.is_clean() {
        println!("invariants 1-4 hold ({} report(s))", report.findings.len());
    } else {
        println!("{} invariant violation(s)", report.violations.len());
    }
}
