//! A marketplace's pause in the database: on its `marketplaces` row (so
//! every publisher process sees it) and in `marketplace_pause_history` (who
//! paused or resumed it, when and why). Each change and its record are one
//! transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// The actor of the fleet's own pauses (and of the probe's resumes).
pub const FLEET: &str = "fleet";

/// A marketplace's pause as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Paused {
    pub since: DateTime<Utc>,
    pub reason: String,
    /// `fleet` for a pause the outage rule made (a probe resumes it), else
    /// the operator's name (only a resume ends it).
    pub by: String,
}

impl Paused {
    /// Whether a probe that finds the marketplace answering may end it.
    pub fn probe_may_resume(&self) -> bool {
        self.by == FLEET
    }
}

/// One recorded pause or resume.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PauseEvent {
    pub marketplace: String,
    /// `pause` or `resume`.
    pub action: String,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// What a pause or resume request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    /// Already paused (a pause) or not paused (a resume): nothing recorded.
    AsItWas,
    UnknownMarketplace,
}

/// The pause of the marketplace with id `marketplace_id`, if it is paused.
pub async fn current(pool: &PgPool, marketplace_id: i32) -> sqlx::Result<Option<Paused>> {
    sqlx::query_as(
        "SELECT paused_since AS since, paused_reason AS reason, paused_by AS by
         FROM marketplaces WHERE id = $1 AND paused_since IS NOT NULL",
    )
    .bind(marketplace_id)
    .fetch_optional(pool)
    .await
}

/// Every paused marketplace by code.
pub async fn all(pool: &PgPool) -> sqlx::Result<Vec<(String, Paused)>> {
    let rows: Vec<(String, DateTime<Utc>, String, String)> = sqlx::query_as(
        "SELECT code, paused_since, paused_reason, paused_by FROM marketplaces
         WHERE paused_since IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(code, since, reason, by)| (code, Paused { since, reason, by }))
        .collect())
}

/// A statement that changes one marketplace's pause and returns its id.
type Update<'q> = sqlx::query::QueryScalar<'q, sqlx::Postgres, i32, sqlx::postgres::PgArguments>;

/// Pauses `code` unless it is paused already.
pub async fn pause(pool: &PgPool, code: &str, reason: &str, actor: &str) -> sqlx::Result<Outcome> {
    let update = sqlx::query_scalar(
        "UPDATE marketplaces SET paused_since = now(), paused_reason = $2, paused_by = $3
         WHERE code = $1 AND paused_since IS NULL RETURNING id",
    )
    .bind(code)
    .bind(reason)
    .bind(actor);
    change(pool, code, update, "pause", reason, actor).await
}

/// Resumes `code` if it is paused.
pub async fn resume(pool: &PgPool, code: &str, reason: &str, actor: &str) -> sqlx::Result<Outcome> {
    let update = sqlx::query_scalar(
        "UPDATE marketplaces SET paused_since = NULL, paused_reason = NULL, paused_by = NULL
         WHERE code = $1 AND paused_since IS NOT NULL RETURNING id",
    )
    .bind(code);
    change(pool, code, update, "resume", reason, actor).await
}

/// A probe's resume: only of a pause the fleet made, so an operator's
/// pause stays until an operator ends it.
pub async fn resume_fleet_pause(pool: &PgPool, code: &str, reason: &str) -> sqlx::Result<Outcome> {
    let update = sqlx::query_scalar(
        "UPDATE marketplaces SET paused_since = NULL, paused_reason = NULL, paused_by = NULL
         WHERE code = $1 AND paused_by = 'fleet' RETURNING id",
    )
    .bind(code);
    change(pool, code, update, "resume", reason, FLEET).await
}

async fn change(
    pool: &PgPool,
    code: &str,
    update: Update<'_>,
    action: &str,
    reason: &str,
    actor: &str,
) -> sqlx::Result<Outcome> {
    let mut tx = pool.begin().await?;
    let Some(marketplace_id) = update.fetch_optional(&mut *tx).await? else {
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM marketplaces WHERE code = $1)")
                .bind(code)
                .fetch_one(&mut *tx)
                .await?;
        return Ok(if known {
            Outcome::AsItWas
        } else {
            Outcome::UnknownMarketplace
        });
    };
    sqlx::query(
        "INSERT INTO marketplace_pause_history (marketplace_id, action, reason, actor)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(marketplace_id)
    .bind(action)
    .bind(reason)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Outcome::Changed)
}

/// The latest pauses and resumes of the marketplaces `codes`, newest first.
pub async fn history(pool: &PgPool, codes: &[String], limit: i64) -> sqlx::Result<Vec<PauseEvent>> {
    sqlx::query_as(
        "SELECT m.code AS marketplace, h.action, h.reason, h.actor, h.created_at AS at
         FROM marketplace_pause_history h JOIN marketplaces m ON m.id = h.marketplace_id
         WHERE m.code = ANY($1) ORDER BY h.id DESC LIMIT $2",
    )
    .bind(codes)
    .bind(limit)
    .fetch_all(pool)
    .await
}
