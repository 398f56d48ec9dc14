//! How the CLI reaches PostgreSQL and RabbitMQ: one attempt that gives up
//! after `--connect-timeout` (default 5 s) and says which address it tried
//! (password redacted), why it failed and what to do. Workers retry for
//! longer (they start alongside their services); an operator wants an answer.

use anyhow::{Context, anyhow};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::OnceLock;
use std::time::Duration;
use stockfleet::config::Settings;
use stockfleet::db::redact;

static TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// Set once from the command line.
pub fn set_timeout(timeout: Duration) {
    let _ = TIMEOUT.set(timeout);
}

fn timeout() -> Duration {
    TIMEOUT.get().copied().unwrap_or(Duration::from_secs(5))
}

/// A pool on a migrated database.
pub async fn database(settings: &Settings, max_connections: u32) -> anyhow::Result<PgPool> {
    let url = &settings.database_url;
    let limit = timeout();
    reachable("PostgreSQL", url, 5432, "DATABASE_URL").await?;
    let attempt = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(limit)
        .connect(url);
    let pool = match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(error)) => return Err(anyhow!(database_problem(url, &error))),
        Err(_) => return Err(anyhow!(no_answer("PostgreSQL", url, limit, "DATABASE_URL"))),
    };
    stockfleet::db::ensure_migrated(&pool)
        .await
        .with_context(|| format!("database {} is not ready", redact(url)))?;
    Ok(pool)
}

/// The broker, with this fleet's topology.
pub async fn bus(settings: &Settings) -> anyhow::Result<stockfleet::bus::Bus> {
    let url = &settings.amqp_url;
    let limit = timeout();
    reachable("RabbitMQ", url, 5672, "AMQP_URL").await?;
    let connecting =
        stockfleet::bus::Bus::connect(url, stockfleet::bus::Topology::of(settings), limit);
    match tokio::time::timeout(limit, connecting).await {
        Ok(connected) => connected.map_err(|error| {
            anyhow!(
                "cannot connect to RabbitMQ at {}: {}. Check AMQP_URL (host, port, credentials, vhost) and that the broker runs.",
                redact(url),
                error.root_cause()
            )
        }),
        Err(_) => Err(anyhow!(no_answer("RabbitMQ", url, limit, "AMQP_URL"))),
    }
}

/// A TCP connection to the URL's host and port, so a closed port is named
/// at once with its cause (the clients would retry it silently until the timeout).
async fn reachable(
    service: &str,
    url: &str,
    default_port: u16,
    variable: &str,
) -> anyhow::Result<()> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Err(anyhow!("{variable} is not a URL: {}", redact(url)));
    };
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port().unwrap_or(default_port);
    let limit = timeout();
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(anyhow!(
            "cannot connect to {service} at {}: {error}. Check {variable} (host and port) and that {service} runs.",
            redact(url)
        )),
        Err(_) => Err(anyhow!(no_answer(service, url, limit, variable))),
    }
}

fn no_answer(service: &str, url: &str, limit: Duration, variable: &str) -> String {
    format!(
        "{service} at {} did not answer within {} s. Check {variable} and that {service} runs \
         (a closed port or a firewall); --connect-timeout / CONNECT_TIMEOUT waits longer.",
        redact(url),
        limit.as_secs_f64()
    )
}

fn database_problem(url: &str, error: &sqlx::Error) -> String {
    let at = redact(url);
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => format!(
            "database {at} does not exist. Run `stockfleet migrate` to create it, or fix DATABASE_URL."
        ),
        sqlx::Error::Database(db)
            if db.code().as_deref() == Some("28P01") || db.code().as_deref() == Some("28000") =>
        {
            format!(
                "PostgreSQL at {at} refused the credentials: {}. Fix the user or password in DATABASE_URL.",
                db.message()
            )
        }
        sqlx::Error::PoolTimedOut => no_answer("PostgreSQL", url, timeout(), "DATABASE_URL"),
        other => format!(
            "cannot connect to PostgreSQL at {at}: {}. Check DATABASE_URL and that PostgreSQL runs.",
            root_cause(other)
        ),
    }
}

/// The innermost cause, once (the layers above repeat it).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Parses `5s`, `500ms`, `2m` or a number of seconds.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{text:?} is not a duration like 5s or 500ms"));
    }
    stockfleet::admin::dlq::parse_age(text)
}
