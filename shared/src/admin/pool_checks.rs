//! The invariants of design §7 for pools, checked and repaired by
//! `stockfleet validate [--repair]`:
//!
//! - a pooled row holds no units of its own (listed_stock 0: they are the pool's);
//! - a pool's locked is its rows' locked, i.e. its active locks across
//!   marketplaces (each row's locked = its locks is invariant 1, per row);
//! - replaying a variation's pool history reproduces its pool (on hand and
//!   locked; 0 and 0 once unpooled).
//!
//! An oversold pool (more locked than on hand) breaks no invariant: it is
//! reported, per pool, and in `stockfleet_pool_oversold_units`.

use super::findings::{Finding, Violation};
use crate::domain::ledger::{ChangeType, LevelChange, StockLevels};
use crate::pools::{self, PoolHistory};
use sqlx::{PgPool, Row};

/// A variation whose pool and pool history disagree.
struct PoolDrift {
    variation_id: i64,
    sku: String,
    current: StockLevels,
    replayed: StockLevels,
}

pub async fn violations(db: &PgPool) -> sqlx::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let holding = sqlx::query(
        "SELECT s.id, v.sku, m.code, s.listed_stock FROM marketplace_stock s
         JOIN stock_pools p ON p.variation_id = s.variation_id
         JOIN variations v ON v.id = s.variation_id JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE s.listed_stock <> 0 ORDER BY s.id",
    )
    .fetch_all(db)
    .await?;
    violations.extend(holding.into_iter().map(|row| Violation {
        invariant: 2,
        stock_id: Some(row.get("id")),
        detail: format!(
            "{} on {} is pooled but holds listed {} of its own (the pool holds the units)",
            row.get::<String, _>("sku"),
            row.get::<String, _>("code"),
            row.get::<i32, _>("listed_stock")
        ),
    }));
    violations.extend(drift(db).await?.into_iter().map(|d| Violation {
        invariant: 4,
        stock_id: None,
        detail: format!(
            "pool of {}: on hand {} locked {}, its history replays to on hand {} locked {}",
            d.sku, d.current.listed, d.current.locked, d.replayed.listed, d.replayed.locked
        ),
    }));
    Ok(violations)
}

/// Pools with more units locked than on hand, as findings; sets the gauge.
pub async fn oversold(db: &PgPool) -> sqlx::Result<Vec<Finding>> {
    let rows = sqlx::query(
        "SELECT v.sku, p.on_hand, sum(s.locked_stock)::int AS locked,
                string_agg(m.code || ' ' || s.locked_stock, ', ' ORDER BY m.code)
                    FILTER (WHERE s.locked_stock > 0) AS by_marketplace
         FROM stock_pools p JOIN variations v ON v.id = p.variation_id
         JOIN marketplace_stock s ON s.variation_id = p.variation_id
         JOIN marketplaces m ON m.id = s.marketplace_id
         GROUP BY v.sku, p.on_hand HAVING sum(s.locked_stock) > p.on_hand ORDER BY v.sku",
    )
    .fetch_all(db)
    .await?;
    let mut total = 0i64;
    let findings = rows
        .into_iter()
        .map(|row| {
            let (on_hand, locked): (i32, i32) = (row.get("on_hand"), row.get("locked"));
            total += i64::from(locked - on_hand);
            Finding {
                kind: "oversold_pool",
                detail: format!(
                    "pool of {}: {} unit(s) oversold ({} locked by orders: {}; {} on hand)",
                    row.get::<String, _>("sku"),
                    locked - on_hand,
                    locked,
                    row.get::<Option<String>, _>("by_marketplace")
                        .unwrap_or_default(),
                    on_hand
                ),
            }
        })
        .collect();
    metrics::gauge!("stockfleet_pool_oversold_units").set(total as f64);
    Ok(findings)
}

/// Bridges each drifted pool's history with a `reconciliation` row from what
/// history said to the pool as it is (on hand as counted, locked from its
/// rows' locks); returns the variations repaired.
pub async fn repair(db: &PgPool, actor: &str) -> sqlx::Result<Vec<i64>> {
    let mut repaired = Vec::new();
    for candidate in drift(db).await? {
        let mut tx = db.begin().await?;
        let variation = [candidate.variation_id].into();
        // Re-read under the pool's lock: the fleet may be running.
        sqlx::query(
            "SELECT id FROM marketplace_stock WHERE variation_id = $1 ORDER BY id FOR UPDATE",
        )
        .bind(candidate.variation_id)
        .execute(&mut *tx)
        .await?;
        let current = pools::lock_pools(&mut tx, &variation)
            .await?
            .get(&candidate.variation_id)
            .map_or(StockLevels::default(), |pool| pool.levels);
        let replayed = replay(&mut tx, candidate.variation_id).await?;
        if current == replayed {
            continue;
        }
        let change = LevelChange {
            change_type: ChangeType::Reconciliation,
            before: replayed,
            after: current,
            quantity: current.listed - replayed.listed,
            note: Some(format!(
                "validate --repair: pool history said on hand {} locked {}",
                replayed.listed, replayed.locked
            )),
        };
        let row = PoolHistory {
            variation_id: candidate.variation_id,
            cause: None,
            change,
            order_item: (None, None),
            reference: None,
            actor: actor.to_owned(),
        };
        pools::insert_history(&mut tx, std::slice::from_ref(&row)).await?;
        tx.commit().await?;
        repaired.push(candidate.variation_id);
    }
    Ok(repaired)
}

async fn drift(db: &PgPool) -> sqlx::Result<Vec<PoolDrift>> {
    let rows = sqlx::query(
        "WITH replay AS (
             SELECT variation_id, sum(on_hand_after - on_hand_before)::int AS on_hand,
                    sum(locked_after - locked_before)::int AS locked
             FROM stock_pool_history GROUP BY variation_id),
         current AS (
             SELECT p.variation_id, p.on_hand,
                    (SELECT COALESCE(sum(s.locked_stock), 0)::int FROM marketplace_stock s
                     WHERE s.variation_id = p.variation_id) AS locked
             FROM stock_pools p)
         SELECT COALESCE(c.variation_id, r.variation_id) AS variation_id, v.sku,
                COALESCE(c.on_hand, 0) AS on_hand, COALESCE(c.locked, 0) AS locked,
                COALESCE(r.on_hand, 0) AS replayed_on_hand, COALESCE(r.locked, 0) AS replayed_locked
         FROM current c FULL JOIN replay r ON r.variation_id = c.variation_id
         JOIN variations v ON v.id = COALESCE(c.variation_id, r.variation_id)
         WHERE COALESCE(c.on_hand, 0) <> COALESCE(r.on_hand, 0)
            OR COALESCE(c.locked, 0) <> COALESCE(r.locked, 0)
         ORDER BY 1",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| PoolDrift {
            variation_id: row.get("variation_id"),
            sku: row.get("sku"),
            current: StockLevels::new(row.get("on_hand"), row.get("locked")),
            replayed: StockLevels::new(row.get("replayed_on_hand"), row.get("replayed_locked")),
        })
        .collect())
}

async fn replay(conn: &mut sqlx::PgConnection, variation_id: i64) -> sqlx::Result<StockLevels> {
    let row = sqlx::query(
        "SELECT COALESCE(sum(on_hand_after - on_hand_before), 0)::int AS on_hand,
                COALESCE(sum(locked_after - locked_before), 0)::int AS locked
         FROM stock_pool_history WHERE variation_id = $1",
    )
    .bind(variation_id)
    .fetch_one(conn)
    .await?;
    Ok(StockLevels::new(row.get("on_hand"), row.get("locked")))
}
