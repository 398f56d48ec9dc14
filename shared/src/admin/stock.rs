//! Manual stock corrections and top-ups (`stockfleet stock set|adjust|show`).
//! Every change is written to the history with its actor and reason, and
//! announced with `stock.changed` through the outbox.

use crate::buffer_sql::{buffer_rule, buffer_rule_columns};
use crate::bus::Envelope;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::input;
use crate::domain::ledger::{self as rules, ChangeType, StockLevels};
use crate::domain::pool::{self, StockMode};
use crate::events::{STOCK_CHANGED, StockChanged};
use crate::ledger::HistoryColumns;
use serde::Serialize;
use sqlx::{PgPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("unknown marketplace {0:?}")]
    UnknownMarketplace(String),
    #[error("unknown SKU {0:?}")]
    UnknownSku(String),
    #[error(
        "unknown SKU {0:?}: check it, or create it with this count (\"create\": true, --create)"
    )]
    NotCreated(String),
    #[error(transparent)]
    Invalid(#[from] crate::domain::input::Invalid),
    #[error(
        "{0} is pooled: its units are the pool's; count them with `stockfleet stock pool {0} --on-hand N` (or unpool it first)"
    )]
    Pooled(String),
    #[error("a reason is required for every manual change")]
    MissingReason,
    #[error(transparent)]
    Ledger(#[from] rules::LedgerError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How to change listed stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// Set listed stock to a counted number (history `manual`) of a known SKU.
    Set(i32),
    /// Set it, creating the SKU when it is new (a mistyped SKU is refused
    /// unless the caller says so).
    Create(i32),
    /// Add or remove units (history `topup` when adding, `manual` when removing).
    Adjust(i32),
}

#[derive(Debug, Clone, Serialize)]
pub struct StockRowView {
    pub stock_id: i64,
    pub sku: String,
    pub marketplace: String,
    pub listed: i32,
    pub locked: i32,
    pub available: i32,
    pub buffered: u32,
    pub stock_known: bool,
    pub last_api_quantity: Option<i32>,
    pub last_synced_at: Option<String>,
    /// `allocated` (the row's own listed stock) or `pooled` (`available` and
    /// `buffered` are then the pool's, `locked` this marketplace's locks on it).
    pub mode: &'static str,
    /// A pooled row's pool: units on hand, every marketplace's locks.
    pub pool_on_hand: Option<i32>,
    pub pool_locked: Option<i32>,
}

/// Applies a correction to (sku, marketplace); creates the variation when
/// asked ([`Correction::Create`]). The result lies within 0 and
/// [`max_stock_level`](crate::config::max_stock_level).
pub async fn correct(
    pool: &PgPool,
    sku: &str,
    marketplace: &str,
    correction: Correction,
    actor: &str,
    reason: &str,
) -> Result<StockRowView, StockError> {
    input::text("sku", sku)?;
    input::text("reason", reason)?;
    if reason.trim().is_empty() {
        return Err(StockError::MissingReason);
    }
    let mut tx = pool.begin().await?;
    let marketplace_id: i32 = sqlx::query_scalar("SELECT id FROM marketplaces WHERE code = $1")
        .bind(marketplace)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StockError::UnknownMarketplace(marketplace.to_owned()))?;
    if let Correction::Create(_) = correction {
        sqlx::query("INSERT INTO variations (sku) VALUES ($1) ON CONFLICT (sku) DO NOTHING")
            .bind(sku)
            .execute(&mut *tx)
            .await?;
    }
    let variation_id: i64 = sqlx::query_scalar("SELECT id FROM variations WHERE sku = $1")
        .bind(sku)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| match correction {
            Correction::Set(_) => StockError::NotCreated(sku.to_owned()),
            _ => StockError::UnknownSku(sku.to_owned()),
        })?;
    sqlx::query(
        "INSERT INTO marketplace_stock (variation_id, marketplace_id) VALUES ($1, $2)
         ON CONFLICT (variation_id, marketplace_id) DO NOTHING",
    )
    .bind(variation_id)
    .bind(marketplace_id)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT id, listed_stock, locked_stock FROM marketplace_stock
         WHERE variation_id = $1 AND marketplace_id = $2 FOR UPDATE",
    )
    .bind(variation_id)
    .bind(marketplace_id)
    .fetch_one(&mut *tx)
    .await?;
    let stock_id: i64 = row.get("id");
    let pooled: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM stock_pools WHERE variation_id = $1)")
            .bind(variation_id)
            .fetch_one(&mut *tx)
            .await?;
    if pooled {
        return Err(StockError::Pooled(sku.to_owned()));
    }
    let levels = StockLevels::new(row.get("listed_stock"), row.get("locked_stock"));
    let max = crate::config::max_stock_level();
    let (delta, change_type) = match correction {
        Correction::Set(listed) | Correction::Create(listed) => {
            let listed = input::stock_level("set", listed.into(), max)?;
            (listed - levels.listed, ChangeType::Manual)
        }
        Correction::Adjust(delta) => {
            let after = i64::from(levels.listed) + i64::from(delta);
            input::stock_level("adjust", after, max)?;
            let change_type = if delta > 0 {
                ChangeType::Topup
            } else {
                ChangeType::Manual
            };
            (delta, change_type)
        }
    };
    let mut change = rules::adjust_listed(levels, delta, change_type)?;
    change.note = Some(reason.to_owned());
    sqlx::query(
        "UPDATE marketplace_stock SET listed_stock = $2, stock_known = true, updated_at = now() WHERE id = $1",
    )
    .bind(stock_id)
    .bind(change.after.listed)
    .execute(&mut *tx)
    .await?;
    let mut history = HistoryColumns::default();
    history.add(
        (stock_id, variation_id, marketplace_id),
        &change,
        (None, None),
        None,
        actor,
    );
    history.insert(&mut tx).await?;
    let payload = StockChanged {
        stock_id,
        variation_id,
        sku: sku.to_owned(),
        listed: change.after.listed,
        locked: change.after.locked,
        available: change.after.available(),
        change_type: change_type.as_str().to_owned(),
        origin: None,
    };
    let envelope = Envelope::new(STOCK_CHANGED, marketplace, &payload);
    outbox::enqueue(&mut tx, &[OutboxMessage::event(envelope, None)]).await?;
    tx.commit().await?;
    let mut rows = show(pool, sku).await?;
    rows.retain(|row| row.marketplace == marketplace);
    Ok(rows.remove(0))
}

/// Which stock rows to read; `None` filters nothing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StockQuery {
    pub sku: Option<String>,
    pub marketplace: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Every marketplace row of a SKU, with what each marketplace is shown.
pub async fn show(pool: &PgPool, sku: &str) -> Result<Vec<StockRowView>, StockError> {
    let query = StockQuery {
        sku: Some(sku.to_owned()),
        ..StockQuery::default()
    };
    let rows = rows(pool, &query).await?;
    if rows.is_empty() {
        return Err(StockError::UnknownSku(sku.to_owned()));
    }
    Ok(rows)
}

/// Stock rows by SKU then marketplace, with what each marketplace is shown
/// (at most 500 per call, 100 by default).
pub async fn rows(pool: &PgPool, query: &StockQuery) -> sqlx::Result<Vec<StockRowView>> {
    let rows = sqlx::query(concat!(
        "SELECT s.id, v.sku, m.code, s.listed_stock, s.locked_stock, s.available_stock,
                s.stock_known, s.last_api_quantity, s.last_synced_at::text AS last_synced_at,
                s.marketplace_id, p.on_hand AS pool_on_hand, p.last_units, p.last_units_marketplace_id,
                (SELECT sum(o.locked_stock)::int FROM marketplace_stock o
                 WHERE p.variation_id IS NOT NULL AND o.variation_id = s.variation_id) AS pool_locked, ",
        buffer_rule_columns!(),
        " FROM marketplace_stock s
         JOIN variations v ON v.id = s.variation_id
         JOIN marketplaces m ON m.id = s.marketplace_id
         LEFT JOIN stock_pools p ON p.variation_id = s.variation_id
         WHERE ($1::text IS NULL OR v.sku = $1) AND ($2::text IS NULL OR m.code = $2)
         ORDER BY v.sku, m.code LIMIT $3 OFFSET $4"
    ))
    .bind(&query.sku)
    .bind(&query.marketplace)
    .bind(query.limit.unwrap_or(100).clamp(1, 500))
    .bind(query.offset.unwrap_or(0).max(0))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let rule = buffer_rule(&row);
            let pool_on_hand: Option<i32> = row.get("pool_on_hand");
            let pool_locked: Option<i32> = row.get("pool_locked");
            let (mode, available, buffered) = match (pool_on_hand, pool_locked) {
                (Some(on_hand), Some(locked)) => {
                    let levels = StockLevels::new(on_hand, locked);
                    let hold = crate::pools::last_units(&row);
                    let shown = pool::shown(levels, hold, row.get("marketplace_id"), &rule);
                    (StockMode::Pooled, levels.available(), shown)
                }
                _ => {
                    let available: i32 = row.get("available_stock");
                    (StockMode::Allocated, available, rule.buffered(available))
                }
            };
            StockRowView {
                stock_id: row.get("id"),
                sku: row.get("sku"),
                marketplace: row.get("code"),
                listed: row.get("listed_stock"),
                locked: row.get("locked_stock"),
                available,
                buffered,
                stock_known: row.get("stock_known"),
                last_api_quantity: row.get("last_api_quantity"),
                last_synced_at: row.get("last_synced_at"),
                mode: mode.as_str(),
                pool_on_hand,
                pool_locked,
            }
        })
        .collect())
}
