//! The after-run audit: against a fleet that has gone idle, compares what
//! the simulated marketplaces hold with what the fleet stored and shows, and
//! prints one table; any line marked FAIL is a loss, a doubling, a broken
//! invariant or a message left behind (docs/operations.md, "Audit").
//!
//! Used by `cargo run -p stockfleet-tests --bin audit`, `scripts/chaos` and
//! the benchmarks; each check lives in the file of its concern.

mod bus;
mod idle;
mod orders;
mod stock;

pub use idle::wait_for_idle;

use sqlx::{PgPool, Row};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};
use stockfleet::bus::Bus;
use stockfleet::config::Settings;

/// Where the fleet and its simulator are, and how long to wait.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub settings: Settings,
    /// The simulator's address, e.g. `http://127.0.0.1:8900`.
    pub sim: String,
    /// RabbitMQ's management API (unacknowledged counts), when it runs.
    pub management_url: Option<String>,
    /// How long to wait for the fleet to go idle before auditing anyway.
    pub idle_timeout: Duration,
    /// How long problems may take to clear (a modified-orders poll that has
    /// not run yet, a push held back for a fresh poll); 0 = audit once.
    pub converge: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Fail,
    /// A figure to read, never a failure.
    Info,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Info => "info",
        })
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Line {
    pub check: &'static str,
    /// A marketplace, a queue, an invariant; `-` for the whole fleet.
    pub scope: String,
    pub result: String,
    pub verdict: Verdict,
}

impl Line {
    fn new(
        check: &'static str,
        scope: impl Into<String>,
        result: String,
        verdict: Verdict,
    ) -> Self {
        Line {
            check,
            scope: scope.into(),
            result,
            verdict,
        }
    }

    /// Ok when `failed` is false.
    fn unless(check: &'static str, scope: impl Into<String>, result: String, failed: bool) -> Self {
        let verdict = if failed { Verdict::Fail } else { Verdict::Ok };
        Line::new(check, scope, result, verdict)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lines.iter().all(|line| line.verdict != Verdict::Fail)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Line> {
        self.lines
            .iter()
            .filter(|line| line.verdict == Verdict::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |column: fn(&Line) -> usize, title: &str| {
            self.lines
                .iter()
                .map(column)
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let check = width(|l| l.check.len(), "check");
        let scope = width(|l| l.scope.len(), "scope");
        writeln!(
            f,
            "{:<check$}  {:<scope$}  {:<4}  result",
            "check", "scope", ""
        )?;
        for line in &self.lines {
            writeln!(
                f,
                "{:<check$}  {:<scope$}  {:<4}  {}",
                line.check,
                line.scope,
                line.verdict.to_string(),
                line.result
            )?;
        }
        let failed = self.failures().count();
        match failed {
            0 => write!(f, "audit clean"),
            n => write!(f, "audit: {n} problem(s)"),
        }
    }
}

/// What every check reads from.
pub struct Fleet {
    pub db: PgPool,
    pub bus: Bus,
    pub codes: Vec<String>,
    /// The fleet's marketplace code → the simulator's marketplace
    /// (`backmarket`, `refurbed`, `woocommerce`) for those it points at.
    pub on_sim: BTreeMap<String, String>,
    pub control: String,
    pub management_url: Option<String>,
    http: reqwest::Client,
}

impl Fleet {
    pub async fn connect(config: &AuditConfig) -> anyhow::Result<Self> {
        let settings = &config.settings;
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&settings.database_url)
            .await?;
        let bus = Bus::connect(
            &settings.amqp_url,
            stockfleet::bus::Topology::of(settings),
            settings.amqp_timeout(),
        )
        .await?;
        let sim = config.sim.trim_end_matches('/');
        let mut codes = Vec::new();
        let mut on_sim = BTreeMap::new();
        for row in sqlx::query("SELECT code, base_url FROM marketplaces ORDER BY code")
            .fetch_all(&db)
            .await?
        {
            let code: String = row.get("code");
            let base: String = row.get("base_url");
            if let Some(rest) = base.strip_prefix(sim) {
                let name = rest.trim_start_matches('/').split('/').next().unwrap_or("");
                on_sim.insert(code.clone(), name.to_owned());
            }
            codes.push(code);
        }
        Ok(Fleet {
            db,
            bus,
            codes,
            on_sim,
            control: format!("{sim}/control"),
            management_url: config.management_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// A JSON answer of the simulator's control API.
    pub async fn sim_get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.control);
        let answer = self.http.get(&url).send().await?.error_for_status()?;
        Ok(answer.json().await?)
    }

    pub async fn close(self) {
        self.bus.close().await;
        self.db.close().await;
    }
}

/// Every check once.
pub async fn checks(fleet: &Fleet) -> anyhow::Result<Report> {
    let mut report = Report::default();
    orders::check(fleet, &mut report.lines).await?;
    stock::check(fleet, &mut report.lines).await?;
    bus::check(fleet, &mut report.lines).await?;
    Ok(report)
}

/// Waits for idle, audits, and while problems remain and `converge` has not
/// passed, waits and audits again. Returns the last report.
pub async fn run(config: &AuditConfig) -> anyhow::Result<Report> {
    let fleet = Fleet::connect(config).await?;
    let deadline = Instant::now() + config.converge;
    let report = loop {
        let idle = wait_for_idle(&fleet, config.idle_timeout).await?;
        let mut report = checks(&fleet).await?;
        report.lines.insert(0, idle);
        if report.is_clean() || Instant::now() >= deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    fleet.close().await;
    Ok(report)
}

/// The first few of `items`, for a line that names examples.
fn examples<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let shown: Vec<String> = items.into_iter().take(3).map(|i| i.to_string()).collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", shown.join(", "))
    }
}
