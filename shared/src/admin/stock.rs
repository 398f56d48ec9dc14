//! Manual stock corrections and top-ups (`stockfleet stock set|adjust|show`).
//! Every change is written to the history with its actor and reason, and
//! announced with `stock.changed` through the outbox.

use super::page::Page;
use crate::buffer_sql::{buffer_rule, buffer_rule_columns};
use crate::bus::Envelope;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::BufferRule;
use crate::domain::input;
use crate::domain::ledger::{self as rules, ChangeType, StockLevels};
use crate::domain::listing::{self, Refused, Window, given, like_pattern};
use crate::domain::pool::{self, StockMode};
use crate::events::{STOCK_CHANGED, StockChanged};
use crate::ledger::HistoryColumns;
use serde::Serialize;
use sqlx::{PgPool, Row};
use utoipa::{IntoParams, ToSchema};

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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StockRowView {
    pub stock_id: i64,
    pub sku: String,
    pub marketplace: String,
    pub listed: i32,
    pub locked: i32,
    pub available: i32,
    /// What the marketplace is shown: `rule` over `available`.
    pub buffered: u32,
    pub rule: BufferRule,
    pub stock_known: bool,
    pub last_api_quantity: Option<i32>,
    pub last_synced_at: Option<String>,
    /// `allocated` (the row's own listed stock) or `pooled` (`available` and
    /// `buffered` are then the pool's, `locked` this marketplace's locks on it).
    #[schema(value_type = String, pattern = "^(allocated|pooled)$")]
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
    let only = [marketplace.to_owned()];
    Ok(show(pool, sku, Some(&only[..])).await?.remove(0))
}

/// Which stock rows; a filter left empty means any.
#[derive(Debug, Clone, Default, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StockQuery {
    pub marketplace: Option<String>,
    /// Part of the SKU, case-insensitive.
    pub sku: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A stock query with every value checked.
#[derive(Debug, Clone)]
pub struct StockFilter {
    /// `None`: every marketplace.
    marketplaces: Option<Vec<String>>,
    /// One SKU exactly.
    sku: Option<String>,
    /// A LIKE pattern over SKUs.
    sku_like: Option<String>,
    pub window: Window,
}

impl StockQuery {
    /// Checks every value; `visible` are the marketplaces the caller sees.
    pub fn check(&self, visible: &[String]) -> Result<StockFilter, Refused> {
        Ok(StockFilter {
            marketplaces: Some(listing::marketplaces(&self.marketplace, visible)?),
            sku: None,
            sku_like: given(&self.sku).map(like_pattern),
            window: Window::new(self.limit, self.offset)?,
        })
    }
}

impl StockFilter {
    /// One page of every row of every marketplace (audits, benchmarks).
    pub fn every(window: Window) -> Self {
        Self {
            marketplaces: None,
            sku: None,
            sku_like: None,
            window,
        }
    }
}

/// Every marketplace row of a SKU (of the `visible` marketplaces; `None`:
/// all), with what each marketplace is shown; unknown SKU when there is none.
pub async fn show(
    pool: &PgPool,
    sku: &str,
    visible: Option<&[String]>,
) -> Result<Vec<StockRowView>, StockError> {
    input::text("sku", sku)?;
    let filter = StockFilter {
        marketplaces: visible.map(<[String]>::to_vec),
        sku: Some(sku.to_owned()),
        sku_like: None,
        window: Window::new(Some(listing::MAX_LIMIT), None)?,
    };
    let rows = rows(pool, &filter).await?.items;
    if rows.is_empty() {
        return Err(StockError::UnknownSku(sku.to_owned()));
    }
    Ok(rows)
}

const STOCK_ROWS: &str = "marketplace_stock s
    JOIN variations v ON v.id = s.variation_id
    JOIN marketplaces m ON m.id = s.marketplace_id
    LEFT JOIN stock_pools p ON p.variation_id = s.variation_id
    WHERE ($1::text IS NULL OR v.sku = $1) AND ($2::text[] IS NULL OR m.code = ANY($2))
      AND ($3::text IS NULL OR v.sku ILIKE $3)";

/// One page of stock rows by SKU then marketplace, with what each
/// marketplace is shown, and the total.
pub async fn rows(pool: &PgPool, filter: &StockFilter) -> sqlx::Result<Page<StockRowView>> {
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {STOCK_ROWS}"
    )))
    .bind(&filter.sku)
    .bind(&filter.marketplaces)
    .bind(&filter.sku_like)
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.id, v.sku, m.code, s.listed_stock, s.locked_stock, s.available_stock,
                s.stock_known, s.last_api_quantity, s.last_synced_at::text AS last_synced_at,
                s.marketplace_id, p.on_hand AS pool_on_hand, p.last_units, p.last_units_marketplace_id,
                (SELECT sum(o.locked_stock)::int FROM marketplace_stock o
                 WHERE p.variation_id IS NOT NULL AND o.variation_id = s.variation_id) AS pool_locked, {}
         FROM {STOCK_ROWS} ORDER BY v.sku, m.code LIMIT $4 OFFSET $5",
        buffer_rule_columns!()
    )))
    .bind(&filter.sku)
    .bind(&filter.marketplaces)
    .bind(&filter.sku_like)
    .bind(filter.window.limit)
    .bind(filter.window.offset)
    .fetch_all(pool)
    .await?;
    let items = rows
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
                rule,
                stock_known: row.get("stock_known"),
                last_api_quantity: row.get("last_api_quantity"),
                last_synced_at: row.get("last_synced_at"),
                mode: mode.as_str(),
                pool_on_hand,
                pool_locked,
            }
        })
        .collect();
    Ok(Page::new(filter.window, total, items))
}
