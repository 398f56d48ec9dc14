//! The batch's stock rows: its (marketplace, SKU) pairs resolved to
//! variations, and the rows locked in id order (created where missing), in
//! the transaction's first statement. Resolving inside it saves the round
//! trip a separate lookup cost every batch, which a batch of one message
//! felt most (about 1 ms of 7). A message with an unknown SKU touches no
//! row: its known SKUs are left out before any row is locked or created.

use super::plan::{Planned, StockRow};
use crate::domain::ledger::StockLevels;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

/// Each asked pair, `$1` (marketplaces) and `$2` (SKUs), with `$3` the
/// message asking and `variation_id`: a listing's SKU on that marketplace
/// first, else the variation's own SKU; NULL when unknown.
const ASKED: &str = "SELECT k.marketplace_id, k.sku, k.message,
            COALESCE(l.variation_id, v.id) AS variation_id
     FROM unnest($1::int[], $2::text[], $3::int[]) AS k(marketplace_id, sku, message)
     LEFT JOIN listings l ON l.marketplace_id = k.marketplace_id AND l.sku = k.sku
     LEFT JOIN variations v ON v.sku = k.sku";

/// The lock statements' first CTEs: `pairs` (every asked pair), `resolved`
/// (the pairs of messages whose every pair is known) and `k` (the stock
/// rows those touch).
static RESOLVED_CTES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "pairs AS ({ASKED}),
         resolved AS (
             SELECT * FROM pairs p WHERE NOT EXISTS (
                 SELECT 1 FROM pairs u WHERE u.message = p.message AND u.variation_id IS NULL)),
         k AS (SELECT DISTINCT variation_id, marketplace_id FROM resolved)"
    )
});

/// The unknown pairs, as rows without a stock id after the locked rows.
const UNKNOWN: &str = "SELECT NULL, NULL, marketplace_id, NULL, NULL, sku,
            (SELECT count(*) FROM k), NULL
     FROM pairs WHERE variation_id IS NULL";

/// Maps (marketplace, SKU) pairs to our variations; unknown pairs are absent.
pub(crate) async fn resolve_skus<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    pairs: &BTreeSet<(i32, &str)>,
) -> sqlx::Result<HashMap<(i32, String), i64>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT marketplace_id, sku, variation_id FROM ({ASKED}) a WHERE variation_id IS NOT NULL"
        )
    });
    let (marketplaces, skus): (Vec<i32>, Vec<&str>) = pairs.iter().copied().unzip();
    // One asker: pairs are resolved each on its own here.
    let askers = vec![0; skus.len()];
    let rows = sqlx::query(AssertSqlSafe(SQL.as_str()))
        .bind(&marketplaces)
        .bind(&skus)
        .bind(&askers)
        .fetch_all(executor)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                (row.get("marketplace_id"), row.get("sku")),
                row.get("variation_id"),
            )
        })
        .collect())
}

/// The rows a batch touches, locked, and how its pairs resolved.
pub(super) struct LockedRows {
    /// By (variation, marketplace).
    pub(super) rows: HashMap<(i64, i32), StockRow>,
    /// (marketplace, SKU) → variation, for the pairs of messages whose
    /// every SKU is known.
    pub(super) variations: HashMap<(i32, String), i64>,
    /// The (marketplace, SKU) pairs no variation has.
    pub(super) unknown: HashSet<(i32, String)>,
}

/// Resolves the items' pairs and locks every row the messages with no
/// unknown SKU touch, in id order, creating missing rows (stock unknown),
/// in one round trip. A row another transaction created after this
/// statement's snapshot is neither seen nor created here: then every row is
/// locked again by a fresh statement, which sees it.
pub(super) async fn lock_stock_rows(
    conn: &mut PgConnection,
    planned: &[Planned],
) -> sqlx::Result<LockedRows> {
    static LOCK_OR_CREATE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {},
             locked AS (
                 SELECT s.id, s.variation_id, s.marketplace_id, s.listed_stock, s.locked_stock
                 FROM marketplace_stock s
                 JOIN k ON s.variation_id = k.variation_id AND s.marketplace_id = k.marketplace_id
                 ORDER BY s.id
                 FOR UPDATE OF s),
             created AS (
                 INSERT INTO marketplace_stock (variation_id, marketplace_id)
                 SELECT k.variation_id, k.marketplace_id FROM k
                 WHERE NOT EXISTS (SELECT 1 FROM marketplace_stock s
                                   WHERE s.variation_id = k.variation_id
                                     AND s.marketplace_id = k.marketplace_id)
                 ORDER BY 1, 2
                 ON CONFLICT (variation_id, marketplace_id) DO NOTHING
                 RETURNING id, variation_id, marketplace_id, listed_stock, locked_stock)
             SELECT r.*, v.sku, (SELECT count(*) FROM k) AS wanted,
                    ARRAY(SELECT x.sku FROM resolved x WHERE x.variation_id = r.variation_id
                            AND x.marketplace_id = r.marketplace_id) AS asked
             FROM (SELECT * FROM locked UNION ALL SELECT * FROM created) r
             JOIN variations v ON v.id = r.variation_id
             UNION ALL {UNKNOWN}",
            RESOLVED_CTES.as_str()
        )
    });
    static LOCK_AGAIN: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {},
             locked AS (
                 SELECT s.id, s.variation_id, s.marketplace_id, s.listed_stock, s.locked_stock,
                        v.sku
                 FROM marketplace_stock s
                 JOIN k ON s.variation_id = k.variation_id AND s.marketplace_id = k.marketplace_id
                 JOIN variations v ON v.id = s.variation_id
                 ORDER BY s.id
                 FOR UPDATE OF s)
             SELECT r.*, (SELECT count(*) FROM k) AS wanted,
                    ARRAY(SELECT x.sku FROM resolved x WHERE x.variation_id = r.variation_id
                            AND x.marketplace_id = r.marketplace_id) AS asked
             FROM locked r
             UNION ALL {UNKNOWN}",
            RESOLVED_CTES.as_str()
        )
    });
    let marketplaces: Vec<i32> = planned.iter().map(|p| p.marketplace_id).collect();
    let skus: Vec<&str> = planned.iter().map(|p| p.sku.as_str()).collect();
    let messages: Vec<i32> = planned
        .iter()
        .map(|p| i32::try_from(p.message).expect("a batch holds fewer than 2^31 messages"))
        .collect();
    let rows = sqlx::query(AssertSqlSafe(LOCK_OR_CREATE.as_str()))
        .bind(&marketplaces)
        .bind(&skus)
        .bind(&messages)
        .fetch_all(&mut *conn)
        .await?;
    // Every row of `k` seen or created: else some were created meanwhile.
    let stock_rows = rows
        .iter()
        .filter(|row| row.get::<Option<i64>, _>("id").is_some())
        .count();
    let complete = rows
        .first()
        .is_some_and(|row| row.get::<i64, _>("wanted") == stock_rows as i64);
    let rows = if complete {
        rows
    } else {
        sqlx::query(AssertSqlSafe(LOCK_AGAIN.as_str()))
            .bind(&marketplaces)
            .bind(&skus)
            .bind(&messages)
            .fetch_all(&mut *conn)
            .await?
    };
    Ok(locked_rows(rows))
}

fn locked_rows(rows: Vec<PgRow>) -> LockedRows {
    let mut locked = LockedRows {
        rows: HashMap::with_capacity(rows.len()),
        variations: HashMap::new(),
        unknown: HashSet::new(),
    };
    for row in rows {
        let marketplace_id: i32 = row.get("marketplace_id");
        let Some(id) = row.get::<Option<i64>, _>("id") else {
            locked.unknown.insert((marketplace_id, row.get("sku")));
            continue;
        };
        let variation_id: i64 = row.get("variation_id");
        for sku in row.get::<Vec<String>, _>("asked") {
            locked
                .variations
                .insert((marketplace_id, sku), variation_id);
        }
        let stock = StockRow {
            id,
            variation_id,
            sku: row.get("sku"),
            levels: StockLevels::new(row.get("listed_stock"), row.get("locked_stock")),
            changed: false,
        };
        locked.rows.insert((variation_id, marketplace_id), stock);
    }
    locked
}
