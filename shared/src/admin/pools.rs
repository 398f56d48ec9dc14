//! Moving a variation into and out of a shared pool (`stockfleet stock
//! pool|unpool`), counting a pool's on hand, and the pool's read model.
//!
//! Pooling moves every row's listed units into the pool (each row keeps its
//! locks); unpooling gives them back, each row its own locks first
//! ([`pool::split`]). Both write a history row per stock row and one for the
//! pool, and tell every marketplace in the same transaction; no lock row is
//! touched, so none is lost.

use crate::buffer_sql::{buffer_rule, buffer_rule_columns};
use crate::bus::Envelope;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::input;
use crate::domain::ledger::{ChangeType, LevelChange, StockLevels};
use crate::domain::pool::{self, Share};
use crate::events::{STOCK_CHANGED, StockChanged};
use crate::ledger::HistoryColumns;
use crate::pools::{self as store, PoolHistory};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("unknown SKU {0:?}")]
    UnknownSku(String),
    #[error("unknown marketplace {0:?} (last_units_marketplace)")]
    UnknownMarketplace(String),
    #[error("{0} is not pooled")]
    NotPooled(String),
    #[error("{0} has no marketplace rows to pool: set its stock on a marketplace first")]
    NoRows(String),
    #[error("last_units: {0} units held for one marketplace need that marketplace (--holder)")]
    HolderMissing(u32),
    #[error(transparent)]
    Invalid(#[from] input::Invalid),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The "last units on one marketplace only" hold to set on a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hold {
    pub units: u32,
    /// The marketplace code that keeps the last units.
    pub holder: Option<String>,
}

/// One marketplace row of a pool as the operator sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolMarketplace {
    pub marketplace: String,
    /// That marketplace's active locks on the pool.
    pub locked: i32,
    /// What it is shown: its buffer rule over the pool, after the hold.
    pub shown: u32,
    pub rule: crate::domain::BufferRule,
    pub last_api_quantity: Option<i32>,
    /// The last race window measured: an order on `propagation_from` until
    /// this marketplace accepted the quantity that followed.
    pub propagation_ms: Option<i64>,
    pub propagation_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolView {
    pub sku: String,
    pub on_hand: i32,
    pub locked: i32,
    pub available: i32,
    /// Units locked beyond what is on hand: orders sold that the pool could not cover.
    pub oversold: i32,
    pub last_units: u32,
    pub last_units_marketplace: Option<String>,
    pub marketplaces: Vec<PoolMarketplace>,
}

impl PoolView {
    /// Keeps the marketplace rows `scope` sees (the pool's totals stay the pool's).
    pub fn seen_by(mut self, scope: &super::scope::Scope) -> Self {
        self.marketplaces.retain(|row| scope.sees(&row.marketplace));
        self
    }
}

/// A row of the variation, locked.
struct Member {
    id: i64,
    marketplace_id: i32,
    code: String,
    levels: StockLevels,
}

/// Moves `sku` into a pool (or, already pooled, sets its hold); returns the pool.
pub async fn pool(
    db: &PgPool,
    sku: &str,
    hold: Option<Hold>,
    actor: &str,
) -> Result<PoolView, PoolError> {
    let mut tx = db.begin().await?;
    let (variation_id, members) = lock_members(&mut tx, sku).await?;
    if members.is_empty() {
        return Err(PoolError::NoRows(sku.to_owned()));
    }
    let pooled = store::lock_pools(&mut tx, &[variation_id].into()).await?;
    if pooled.is_empty() {
        let shares: Vec<Share> = members
            .iter()
            .map(|m| Share {
                listed: m.levels.listed,
                locked: m.levels.locked,
            })
            .collect();
        let levels = pool::pool_of(&shares);
        sqlx::query("INSERT INTO stock_pools (variation_id, on_hand) VALUES ($1, $2)")
            .bind(variation_id)
            .bind(levels.listed)
            .execute(&mut *tx)
            .await?;
        let moved = members
            .iter()
            .map(|m| (m, StockLevels::new(0, m.levels.locked)))
            .collect::<Vec<_>>();
        let note = format!(
            "pooled: {} on hand, {} locked",
            levels.listed, levels.locked
        );
        write_rows(
            &mut tx,
            variation_id,
            &moved,
            ChangeType::Pool,
            actor,
            &note,
        )
        .await?;
        let change = level_change(StockLevels::default(), levels, ChangeType::Pool, note);
        pool_history(&mut tx, variation_id, change, actor).await?;
        announce(
            &mut tx,
            variation_id,
            sku,
            &members,
            levels,
            ChangeType::Pool,
        )
        .await?;
    }
    if let Some(hold) = hold {
        set_hold(&mut tx, variation_id, &hold).await?;
        // Every marketplace's shown quantity may move with the hold.
        let levels =
            store::lock_pools(&mut tx, &[variation_id].into()).await?[&variation_id].levels;
        announce(
            &mut tx,
            variation_id,
            sku,
            &members,
            levels,
            ChangeType::Manual,
        )
        .await?;
    }
    tx.commit().await?;
    view(db, sku).await
}

/// Gives a pool's units back to its rows and ends the pool.
pub async fn unpool(db: &PgPool, sku: &str, actor: &str) -> Result<(), PoolError> {
    let mut tx = db.begin().await?;
    let (variation_id, members) = lock_members(&mut tx, sku).await?;
    let pooled = store::lock_pools(&mut tx, &[variation_id].into()).await?;
    let levels = pooled
        .get(&variation_id)
        .ok_or_else(|| PoolError::NotPooled(sku.to_owned()))?
        .levels;
    let locked: Vec<i32> = members.iter().map(|m| m.levels.locked).collect();
    let listed = pool::split(levels, &locked);
    let moved = members
        .iter()
        .zip(listed)
        .map(|(m, listed)| (m, StockLevels::new(listed, m.levels.locked)))
        .collect::<Vec<_>>();
    let note = format!(
        "unpooled: {} on hand, {} locked",
        levels.listed, levels.locked
    );
    write_rows(
        &mut tx,
        variation_id,
        &moved,
        ChangeType::Unpool,
        actor,
        &note,
    )
    .await?;
    let change = level_change(levels, StockLevels::default(), ChangeType::Unpool, note);
    pool_history(&mut tx, variation_id, change, actor).await?;
    sqlx::query("DELETE FROM stock_pools WHERE variation_id = $1")
        .bind(variation_id)
        .execute(&mut *tx)
        .await?;
    for (member, after) in &moved {
        announce_row(
            &mut tx,
            variation_id,
            sku,
            member,
            *after,
            ChangeType::Unpool,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets a pool's on hand to a counted number (history `manual`).
pub async fn set_on_hand(
    db: &PgPool,
    sku: &str,
    on_hand: i64,
    actor: &str,
    reason: &str,
) -> Result<PoolView, PoolError> {
    input::text("reason", reason)?;
    let on_hand = input::stock_level("on_hand", on_hand, crate::config::max_stock_level())?;
    let mut tx = db.begin().await?;
    let (variation_id, members) = lock_members(&mut tx, sku).await?;
    let pooled = store::lock_pools(&mut tx, &[variation_id].into()).await?;
    let before = pooled
        .get(&variation_id)
        .ok_or_else(|| PoolError::NotPooled(sku.to_owned()))?
        .levels;
    let after = StockLevels::new(on_hand, before.locked);
    sqlx::query("UPDATE stock_pools SET on_hand = $2, updated_at = now() WHERE variation_id = $1")
        .bind(variation_id)
        .bind(on_hand)
        .execute(&mut *tx)
        .await?;
    let change = level_change(before, after, ChangeType::Manual, reason.to_owned());
    pool_history(&mut tx, variation_id, change, actor).await?;
    announce(
        &mut tx,
        variation_id,
        sku,
        &members,
        after,
        ChangeType::Manual,
    )
    .await?;
    tx.commit().await?;
    view(db, sku).await
}

/// The pool of `sku` with each marketplace's locks, rule and shown quantity.
pub async fn view(db: &PgPool, sku: &str) -> Result<PoolView, PoolError> {
    input::text("sku", sku)?;
    let pool_row = sqlx::query(
        "SELECT p.on_hand, p.last_units, p.last_units_marketplace_id, h.code AS holder
         FROM stock_pools p JOIN variations v ON v.id = p.variation_id
         LEFT JOIN marketplaces h ON h.id = p.last_units_marketplace_id
         WHERE v.sku = $1",
    )
    .bind(sku)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| PoolError::NotPooled(sku.to_owned()))?;
    let rows = sqlx::query(concat!(
        "SELECT s.marketplace_id, m.code, s.locked_stock, s.last_api_quantity,
                s.pool_propagation_ms, s.pool_propagation_from, ",
        buffer_rule_columns!(),
        " FROM marketplace_stock s JOIN variations v ON v.id = s.variation_id
         JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE v.sku = $1 ORDER BY m.code"
    ))
    .bind(sku)
    .fetch_all(db)
    .await?;
    let locked = rows.iter().map(|r| r.get::<i32, _>("locked_stock")).sum();
    let levels = StockLevels::new(pool_row.get("on_hand"), locked);
    let hold = store::last_units(&pool_row);
    let marketplaces = rows
        .iter()
        .map(|row| {
            let rule = buffer_rule(row);
            PoolMarketplace {
                marketplace: row.get("code"),
                locked: row.get("locked_stock"),
                shown: pool::shown(levels, hold, row.get("marketplace_id"), &rule),
                rule,
                last_api_quantity: row.get("last_api_quantity"),
                propagation_ms: row.get("pool_propagation_ms"),
                propagation_from: row.get("pool_propagation_from"),
            }
        })
        .collect();
    Ok(PoolView {
        sku: sku.to_owned(),
        on_hand: levels.listed,
        locked: levels.locked,
        available: levels.available(),
        oversold: pool::oversold(levels),
        last_units: hold.units,
        last_units_marketplace: pool_row.get("holder"),
        marketplaces,
    })
}

/// The variation of `sku` and its rows, locked in id order (before its pool).
async fn lock_members(conn: &mut PgConnection, sku: &str) -> Result<(i64, Vec<Member>), PoolError> {
    input::text("sku", sku)?;
    let variation_id: i64 = sqlx::query_scalar("SELECT id FROM variations WHERE sku = $1")
        .bind(sku)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| PoolError::UnknownSku(sku.to_owned()))?;
    let rows = sqlx::query(
        "SELECT s.id, s.marketplace_id, m.code, s.listed_stock, s.locked_stock
         FROM marketplace_stock s JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE s.variation_id = $1 ORDER BY s.id FOR UPDATE OF s",
    )
    .bind(variation_id)
    .fetch_all(&mut *conn)
    .await?;
    let members = rows
        .into_iter()
        .map(|row| Member {
            id: row.get("id"),
            marketplace_id: row.get("marketplace_id"),
            code: row.get("code"),
            levels: StockLevels::new(row.get("listed_stock"), row.get("locked_stock")),
        })
        .collect();
    Ok((variation_id, members))
}

async fn set_hold(
    conn: &mut PgConnection,
    variation_id: i64,
    hold: &Hold,
) -> Result<(), PoolError> {
    let units = input::stock_level(
        "last_units",
        hold.units.into(),
        crate::config::max_stock_level(),
    )?;
    let holder: Option<i32> = match &hold.holder {
        None if units > 0 => return Err(PoolError::HolderMissing(hold.units)),
        None => None,
        Some(code) => {
            input::text("last_units_marketplace", code)?;
            Some(
                sqlx::query_scalar("SELECT id FROM marketplaces WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| PoolError::UnknownMarketplace(code.clone()))?,
            )
        }
    };
    sqlx::query(
        "UPDATE stock_pools SET last_units = $2, last_units_marketplace_id = $3, updated_at = now()
         WHERE variation_id = $1",
    )
    .bind(variation_id)
    .bind(units)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(())
}

fn level_change(
    before: StockLevels,
    after: StockLevels,
    change_type: ChangeType,
    note: String,
) -> LevelChange {
    LevelChange {
        change_type,
        before,
        after,
        quantity: after.listed - before.listed,
        note: Some(note),
    }
}

/// Writes each row's new listed stock with its history row.
async fn write_rows(
    conn: &mut PgConnection,
    variation_id: i64,
    moved: &[(&Member, StockLevels)],
    change_type: ChangeType,
    actor: &str,
    note: &str,
) -> sqlx::Result<()> {
    let mut history = HistoryColumns::default();
    for (member, after) in moved {
        sqlx::query(
            "UPDATE marketplace_stock SET listed_stock = $2, stock_known = true, updated_at = now()
             WHERE id = $1",
        )
        .bind(member.id)
        .bind(after.listed)
        .execute(&mut *conn)
        .await?;
        let change = level_change(member.levels, *after, change_type, note.to_owned());
        history.add(
            (member.id, variation_id, member.marketplace_id),
            &change,
            (None, None),
            None,
            actor,
        );
    }
    history.insert(conn).await
}

async fn pool_history(
    conn: &mut PgConnection,
    variation_id: i64,
    change: LevelChange,
    actor: &str,
) -> sqlx::Result<()> {
    let row = PoolHistory {
        variation_id,
        cause: None,
        change,
        order_item: (None, None),
        reference: None,
        actor: actor.to_owned(),
    };
    store::insert_history(conn, std::slice::from_ref(&row)).await
}

/// Tells every marketplace of the pool its row changed.
async fn announce(
    conn: &mut PgConnection,
    variation_id: i64,
    sku: &str,
    members: &[Member],
    levels: StockLevels,
    change_type: ChangeType,
) -> sqlx::Result<()> {
    for member in members {
        announce_row(conn, variation_id, sku, member, levels, change_type).await?;
    }
    Ok(())
}

async fn announce_row(
    conn: &mut PgConnection,
    variation_id: i64,
    sku: &str,
    member: &Member,
    levels: StockLevels,
    change_type: ChangeType,
) -> sqlx::Result<()> {
    let payload = StockChanged {
        stock_id: member.id,
        variation_id,
        sku: sku.to_owned(),
        listed: levels.listed,
        locked: levels.locked,
        available: levels.available(),
        change_type: change_type.as_str().to_owned(),
        origin: None,
    };
    let envelope = Envelope::new(STOCK_CHANGED, &member.code, &payload);
    outbox::enqueue(conn, &[OutboxMessage::event(envelope, None)]).await
}
