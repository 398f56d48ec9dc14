//! API tokens (`stockfleet token create|list|revoke`): bearer tokens with a
//! role. Only a token's SHA-256 is stored; the token itself is shown once,
//! when it is created.

use super::scope::Scope;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};
use std::fmt;
use std::str::FromStr;

/// What a token may do; each role may do everything the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads stock, locks, orders, syncs, queues and dead letters.
    Viewer,
    /// Also corrects stock, triggers syncs and replays dead letters.
    Operator,
    /// Also purges dead letters and changes marketplaces.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}; use viewer, operator or admin"
            )),
        }
    }
}

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The marketplaces this caller may see.
    pub scope: Scope,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The marketplaces it sees; `None`: every one.
    pub marketplaces: Option<Vec<String>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token named {0:?} is already active; revoke it first or pick another name")]
    NameTaken(String),
    #[error("no active token is named {0:?}")]
    Unknown(String),
    #[error("a token needs a name")]
    MissingName,
    #[error("unknown marketplace {0:?}; known: {1}")]
    UnknownMarketplace(String, String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token that sees every marketplace and returns it: the only
/// time it can be read.
pub async fn create(pool: &PgPool, name: &str, role: Role) -> Result<String, TokenError> {
    create_scoped(pool, name, role, &[]).await
}

/// Creates a token that sees only `marketplaces` (empty: every one), each
/// checked against the marketplaces table, and returns it.
pub async fn create_scoped(
    pool: &PgPool,
    name: &str,
    role: Role,
    marketplaces: &[String],
) -> Result<String, TokenError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(TokenError::MissingName);
    }
    let known = crate::marketplace::directory::codes(pool).await?;
    if let Some(unknown) = marketplaces.iter().find(|code| !known.contains(code)) {
        return Err(TokenError::UnknownMarketplace(
            unknown.clone(),
            known.join(", "),
        ));
    }
    let mut scope = marketplaces.to_vec();
    scope.sort();
    scope.dedup();
    let scope = (!scope.is_empty()).then_some(scope);
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("sft_{}", URL_SAFE_NO_PAD.encode(secret));
    sqlx::query(
        "INSERT INTO api_tokens (name, token_sha256, role, marketplaces) VALUES ($1, $2, $3, $4)",
    )
    .bind(name)
    .bind(digest(&token))
    .bind(role.as_str())
    .bind(scope)
    .execute(pool)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            TokenError::NameTaken(name.to_owned())
        }
        _ => TokenError::Database(error),
    })?;
    Ok(token)
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<TokenView>> {
    sqlx::query_as(
        "SELECT id, name, role, marketplaces, created_at, last_used_at, revoked_at
         FROM api_tokens ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// Revokes the active token with this name; it stops working at once.
pub async fn revoke(pool: &PgPool, name: &str) -> Result<(), TokenError> {
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(pool)
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(TokenError::Unknown(name.to_owned()));
    }
    Ok(())
}

/// The caller holding `token`, if it is a valid, unrevoked token. Its use is
/// recorded at most once a minute, so reads do not each cost a write.
pub async fn authenticate(pool: &PgPool, token: &str) -> sqlx::Result<Option<Caller>> {
    /// id, name, role, marketplaces, whether its last use is older than a minute.
    type Found = (i64, String, String, Option<Vec<String>>, bool);
    let found: Option<Found> = sqlx::query_as(
        "SELECT id, name, role, marketplaces,
                last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
         FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?;
    let Some((id, name, role, marketplaces, stale)) = found else {
        return Ok(None);
    };
    if stale {
        sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
    }
    // The table's CHECK admits only the three roles.
    Ok(role.parse().ok().map(|role| Caller {
        name,
        role,
        scope: marketplaces.map_or_else(Scope::all, Scope::only),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn only_the_digest_is_kept_and_it_differs_per_token() {
        assert_eq!(digest("sft_a").len(), 32);
        assert_ne!(digest("sft_a"), digest("sft_b"));
    }
}
