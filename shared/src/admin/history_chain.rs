//! The history chain: a row's history rows, in id order, each start where the
//! one before ended (listed and locked), and the last ends where the row is.
//! A break means a history row recorded levels its transaction did not see.
//!
//! History is append-only, so a break is never rewritten: `--repair` appends a
//! `reconciliation` row (the *bridge*, reference [`BRIDGE_REFERENCE`]) at the
//! row's current levels that names the breaks it covers. The chain is checked
//! from a row's last bridge on; the bridge itself starts a new chain.

use crate::domain::ledger::{ChangeType, LevelChange, StockLevels};
use crate::ledger::HistoryColumns;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

/// The `reference_id` of the history rows that bridge breaks of the chain.
pub const BRIDGE_REFERENCE: &str = "validate --repair: history chain";

/// One place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub stock_id: i64,
    pub sku: String,
    pub marketplace: String,
    /// The history row that starts elsewhere than the previous one ended,
    /// or (`at_end`) the last one, which does not end at the row's levels.
    pub history_id: i64,
    pub at_end: bool,
    pub expected: StockLevels,
    pub found: StockLevels,
}

impl Break {
    pub fn detail(&self) -> String {
        let (what, expected) = if self.at_end {
            ("ends at", "the row has")
        } else {
            ("starts at", "the row before ended at")
        };
        format!(
            "{} on {}: history row {} {what} listed {} locked {}, {expected} listed {} locked {}",
            self.sku,
            self.marketplace,
            self.history_id,
            self.found.listed,
            self.found.locked,
            self.expected.listed,
            self.expected.locked
        )
    }
}

/// Every break, in one pass over the history (window functions, no per-row
/// queries); `only` narrows it to one stock row.
async fn find(conn: &mut PgConnection, only: Option<i64>) -> sqlx::Result<Vec<Break>> {
    let rows = sqlx::query(
        "WITH h AS (
             SELECT id, stock_id, listed_before, locked_before, listed_after, locked_after,
                    change_type = 'reconciliation' AND reference_id = $1 AS bridge
             FROM marketplace_stock_history WHERE $2::bigint IS NULL OR stock_id = $2),
         chained AS (
             SELECT h.*,
                    lag(listed_after) OVER w AS prev_listed, lag(locked_after) OVER w AS prev_locked,
                    max(id) FILTER (WHERE bridge) OVER (PARTITION BY stock_id) AS last_bridge,
                    max(id) OVER (PARTITION BY stock_id) AS last_id
             FROM h WINDOW w AS (PARTITION BY stock_id ORDER BY id)),
         breaks AS (
             SELECT stock_id, id, false AS at_end, prev_listed AS expected_listed,
                    prev_locked AS expected_locked, listed_before AS found_listed,
                    locked_before AS found_locked
             FROM chained
             WHERE NOT bridge AND id > COALESCE(last_bridge, 0) AND prev_listed IS NOT NULL
               AND (listed_before, locked_before) IS DISTINCT FROM (prev_listed, prev_locked)
             UNION ALL
             SELECT c.stock_id, c.id, true, s.listed_stock, s.locked_stock, c.listed_after, c.locked_after
             FROM chained c JOIN marketplace_stock s ON s.id = c.stock_id
             WHERE c.id = c.last_id
               AND (c.listed_after, c.locked_after) <> (s.listed_stock, s.locked_stock))
         SELECT b.*, v.sku, m.code
         FROM breaks b
         JOIN marketplace_stock s ON s.id = b.stock_id
         JOIN variations v ON v.id = s.variation_id
         JOIN marketplaces m ON m.id = s.marketplace_id
         ORDER BY b.stock_id, b.id, b.at_end",
    )
    .bind(BRIDGE_REFERENCE)
    .bind(only)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Break {
            stock_id: row.get("stock_id"),
            sku: row.get("sku"),
            marketplace: row.get("code"),
            history_id: row.get("id"),
            at_end: row.get("at_end"),
            expected: StockLevels::new(row.get("expected_listed"), row.get("expected_locked")),
            found: StockLevels::new(row.get("found_listed"), row.get("found_locked")),
        })
        .collect())
}

/// Every break of every row's history chain.
pub async fn breaks(pool: &PgPool) -> sqlx::Result<Vec<Break>> {
    find(&mut *pool.acquire().await?, None).await
}

/// Bridges every broken chain with one `reconciliation` row per stock row, at
/// the row's levels (no delta: the replay of invariant 4 is unchanged). Each
/// row is re-checked under its lock, the fleet may be running. Returns the
/// stock rows bridged.
pub async fn bridge(pool: &PgPool, actor: &str) -> sqlx::Result<Vec<i64>> {
    let mut candidates: Vec<i64> = breaks(pool).await?.iter().map(|b| b.stock_id).collect();
    candidates.dedup();
    let mut bridged = Vec::new();
    for stock_id in candidates {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(
            "SELECT variation_id, marketplace_id, listed_stock, locked_stock
             FROM marketplace_stock WHERE id = $1 FOR UPDATE",
        )
        .bind(stock_id)
        .fetch_one(&mut *tx)
        .await?;
        let fresh = find(&mut tx, Some(stock_id)).await?;
        if fresh.is_empty() {
            continue;
        }
        let levels = StockLevels::new(row.get("listed_stock"), row.get("locked_stock"));
        let covered: Vec<String> = fresh.iter().map(Break::detail).collect();
        let change = LevelChange {
            change_type: ChangeType::Reconciliation,
            before: levels,
            after: levels,
            quantity: 0,
            note: Some(format!("bridges the history chain: {}", covered.join("; "))),
        };
        let mut history = HistoryColumns::default();
        history.add(
            (stock_id, row.get("variation_id"), row.get("marketplace_id")),
            &change,
            (None, None),
            Some(BRIDGE_REFERENCE.to_owned()),
            actor,
        );
        history.insert(&mut tx).await?;
        tx.commit().await?;
        bridged.push(stock_id);
    }
    Ok(bridged)
}
