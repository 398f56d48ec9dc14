//! The batch's stock rows: its (marketplace, SKU) pairs resolved to
//! variations, and the rows locked in id order (created where missing), in
//! the transaction's first statement. Resolving inside it saves the round
//! trip a separate lookup cost every batch, which a batch of one message
//! felt most (about 1 ms of 7).

use super::plan::StockRow;
use crate::domain::ledger::StockLevels;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

/// `(marketplace_id, sku, variation_id)` of the pairs `$1` (marketplaces)
/// and `$2` (SKUs) that resolve: a listing's SKU on that marketplace first,
/// else the variation's own SKU. Unknown pairs are absent.
const RESOLVED: &str =
    "SELECT k.marketplace_id, k.sku, COALESCE(l.variation_id, v.id) AS variation_id
     FROM unnest($1::int[], $2::text[]) AS k(marketplace_id, sku)
     LEFT JOIN listings l ON l.marketplace_id = k.marketplace_id AND l.sku = k.sku
     LEFT JOIN variations v ON v.sku = k.sku
     WHERE COALESCE(l.variation_id, v.id) IS NOT NULL";

/// Maps (marketplace, SKU) pairs to our variations (see [`RESOLVED`]).
pub(crate) async fn resolve_skus<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    pairs: &BTreeSet<(i32, &str)>,
) -> sqlx::Result<HashMap<(i32, String), i64>> {
    let (marketplaces, skus): (Vec<i32>, Vec<&str>) = pairs.iter().copied().unzip();
    let rows = sqlx::query(RESOLVED)
        .bind(&marketplaces)
        .bind(&skus)
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
    /// (marketplace, SKU) → variation; unknown pairs are absent.
    pub(super) variations: HashMap<(i32, String), i64>,
}

/// Resolves `pairs` and locks every row they touch in id order, creating
/// missing rows (stock unknown), in one round trip. A row another
/// transaction created after this statement's snapshot is neither seen nor
/// created here: then every row is locked again by a fresh statement, which
/// sees it.
pub(super) async fn lock_stock_rows(
    conn: &mut PgConnection,
    pairs: &BTreeSet<(i32, &str)>,
) -> sqlx::Result<LockedRows> {
    static LOCK_OR_CREATE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH resolved AS ({RESOLVED}),
             k AS (SELECT DISTINCT variation_id, marketplace_id FROM resolved),
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
             JOIN variations v ON v.id = r.variation_id"
        )
    });
    static LOCK_AGAIN: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH resolved AS ({RESOLVED})
             SELECT s.id, s.variation_id, s.marketplace_id, s.listed_stock, s.locked_stock, v.sku,
                    ARRAY(SELECT x.sku FROM resolved x WHERE x.variation_id = s.variation_id
                            AND x.marketplace_id = s.marketplace_id) AS asked
             FROM marketplace_stock s
             JOIN (SELECT DISTINCT variation_id, marketplace_id FROM resolved) k
               ON s.variation_id = k.variation_id AND s.marketplace_id = k.marketplace_id
             JOIN variations v ON v.id = s.variation_id
             ORDER BY s.id
             FOR UPDATE OF s"
        )
    });
    let (marketplaces, skus): (Vec<i32>, Vec<&str>) = pairs.iter().copied().unzip();
    let rows = sqlx::query(AssertSqlSafe(LOCK_OR_CREATE.as_str()))
        .bind(&marketplaces)
        .bind(&skus)
        .fetch_all(&mut *conn)
        .await?;
    // No row at all: every pair unknown, or every row created meanwhile.
    let complete = rows
        .first()
        .is_some_and(|row| row.get::<i64, _>("wanted") == rows.len() as i64);
    let rows = if complete {
        rows
    } else {
        sqlx::query(AssertSqlSafe(LOCK_AGAIN.as_str()))
            .bind(&marketplaces)
            .bind(&skus)
            .fetch_all(&mut *conn)
            .await?
    };
    Ok(locked_rows(rows))
}

fn locked_rows(rows: Vec<PgRow>) -> LockedRows {
    let mut locked = LockedRows {
        rows: HashMap::with_capacity(rows.len()),
        variations: HashMap::new(),
    };
    for row in rows {
        let (variation_id, marketplace_id): (i64, i32) =
            (row.get("variation_id"), row.get("marketplace_id"));
        for sku in row.get::<Vec<String>, _>("asked") {
            locked
                .variations
                .insert((marketplace_id, sku), variation_id);
        }
        let stock = StockRow {
            id: row.get("id"),
            variation_id,
            sku: row.get("sku"),
            levels: StockLevels::new(row.get("listed_stock"), row.get("locked_stock")),
            changed: false,
        };
        locked.rows.insert((variation_id, marketplace_id), stock);
    }
    locked
}
