//! What a run is asked to do and how it ended: its trigger and options, the
//! summary recorded in `sync_runs`, and whether it finished, was cut short
//! (partial) or failed.

pub use crate::domain::trigger::Trigger;
use crate::marketplace::MarketplaceError;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub trigger: Trigger,
    /// Modified and care syncs: read from this many days back instead of the cursor.
    pub days_back: Option<u32>,
    /// Skip the run when a successful run of the same type started after this
    /// time (the request it answers is already satisfied).
    pub satisfied_after: Option<DateTime<Utc>>,
    /// Stop between pages when cancelled.
    pub shutdown: CancellationToken,
}

impl RunOptions {
    pub fn new(trigger: Trigger, shutdown: CancellationToken) -> Self {
        Self {
            trigger,
            days_back: None,
            satisfied_after: None,
            shutdown,
        }
    }
}

/// The record of one run, as in `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: i64,
    pub fetched: u32,
    pub created: u32,
    pub updated: u32,
    pub events: u32,
    pub errors: u32,
    pub pages: u32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded(RunSummary),
    /// Cut short by the marketplace's rate limit or the request budget: what
    /// was fetched is stored, `error` says where it stopped, the next run
    /// catches up.
    Partial(RunSummary),
    Failed(RunSummary),
    /// Another run of this (marketplace, type) is under way.
    Busy,
    /// A run since the request already covered it.
    Satisfied,
}

/// How a run's fetching ended when nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finished {
    Complete,
    /// Stopped early by the rate limit or the budget: why, for `error_text`.
    Partial(String),
}

impl Finished {
    pub(super) fn status(result: &Result<Finished, String>) -> &'static str {
        match result {
            Ok(Finished::Complete) => "succeeded",
            Ok(Finished::Partial(_)) => "partial",
            Err(_) => "failed",
        }
    }
}

/// A list call that gave up: a rate limit cuts the run (partial), any other
/// error fails it.
pub(super) fn cut(error: MarketplaceError, summary: &RunSummary) -> Result<Finished, String> {
    match error {
        MarketplaceError::RateLimited { .. } => Ok(Finished::Partial(format!(
            "cut by the rate limit after {} pages: {error}",
            summary.pages
        ))),
        error => Err(describe(&error)),
    }
}

pub(super) fn describe(error: &MarketplaceError) -> String {
    format!("{} error: {error}", error.kind())
}
