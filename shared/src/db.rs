//! PostgreSQL: the pool, migrations, and the check that workers run on a
//! migrated database.

use anyhow::{Context, bail};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashSet;
use std::time::Duration;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A query built a part at a time: statements made of several set-based
/// parts (each binding its own arrays) are sent as one round trip.
pub type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Opens a pool, retrying while the server is not answering yet (containers
/// start in any order).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let policy = crate::retry::Policy {
        initial: Duration::from_millis(200),
        max_interval: Duration::from_secs(5),
        max_elapsed: Duration::from_secs(60),
    };
    crate::retry::retry(
        &policy,
        || {
            PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
        },
        is_unreachable,
        |error, wait| tracing::warn!(%error, ?wait, "PostgreSQL not reachable yet; retrying"),
    )
    .await
    .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

/// Connects and refuses to go on unless every migration this build knows is applied.
pub async fn connect_migrated(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = connect(url, max_connections).await?;
    ensure_migrated(&pool)
        .await
        .with_context(|| format!("database {} is not ready", redact(url)))?;
    Ok(pool)
}

/// Creates the database when missing and applies every pending migration.
pub async fn migrate(url: &str) -> anyhow::Result<PgPool> {
    if !sqlx::Postgres::database_exists(url).await.unwrap_or(false) {
        sqlx::Postgres::create_database(url)
            .await
            .with_context(|| format!("cannot create database {}", redact(url)))?;
    }
    let pool = connect(url, 2).await?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations failed")?;
    Ok(pool)
}

pub async fn ensure_migrated(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    let applied: HashSet<i64> = applied.into_iter().collect();
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if !missing.is_empty() {
        bail!(
            "migrations not applied: {}. Run `stockfleet migrate` against this DATABASE_URL first.",
            missing.join(", ")
        );
    }
    Ok(())
}

fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
    )
}

/// Classifies a database error for message handling: connection trouble,
/// serialization failures and deadlocks pass; the rest is a bug or bad data.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300")
        ),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// A connection URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/stock"),
            "postgres://app:***@db:5432/stock"
        );
        assert!(!super::redact("amqp://guest:guest@h/%2f").contains(":guest@"));
    }
}
