//! `stockfleet validate`: the invariants of design §7 (1–4) over every stock
//! row, plus reports (stale locks, orders with unknown SKUs, rows of unknown
//! stock); `--repair` recomputes drifted counters with a `reconciliation`
//! history row per correction, then bridges broken history chains
//! ([`history_chain`]). Pools have their own checks ([`super::pool_checks`]).

pub use super::findings::{Finding, Violation};
use super::history_chain;
use crate::bus::Envelope;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::ledger::{ChangeType, LevelChange, StockLevels};
use crate::events::{STOCK_CHANGED, StockChanged};
use crate::ledger::HistoryColumns;
use serde::Serialize;
use sqlx::{PgPool, Row};
use std::time::Duration;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub findings: Vec<Finding>,
    /// Units sold beyond what was listed, per marketplace (0 included).
    pub oversold_units: std::collections::BTreeMap<String, i64>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// A lock older than this whose order has not changed is reported as stale.
pub const DEFAULT_STALE_AFTER_HOURS: u64 = 72;

pub const INVARIANTS: [&str; 4] = [
    "locked_stock equals the sum of the row's locked locks",
    "listed_stock >= 0, locked_stock >= 0, available_stock = max(listed - locked, 0)",
    "one lock row per order item, terminal lock states never change",
    "the row's history is a chain (each before = the previous after, the last after = the row) and replaying its deltas reproduces listed and locked stock",
];

pub async fn validate(pool: &PgPool, stale_after: Duration) -> sqlx::Result<Report> {
    let mut report = Report::default();
    for row in drift(pool).await? {
        if row.current.locked != row.from_locks {
            report.violations.push(Violation {
                invariant: 1,
                stock_id: Some(row.id),
                detail: format!(
                    "{} on {}: locked_stock is {} but its locked locks hold {}",
                    row.sku, row.marketplace, row.current.locked, row.from_locks
                ),
            });
        }
        if row.current != row.from_history {
            report.violations.push(Violation {
                invariant: 4,
                stock_id: Some(row.id),
                detail: format!(
                    "{} on {}: row has listed {} locked {}, history replays to listed {} locked {}",
                    row.sku,
                    row.marketplace,
                    row.current.listed,
                    row.current.locked,
                    row.from_history.listed,
                    row.from_history.locked
                ),
            });
        }
    }
    for found in history_chain::breaks(pool).await? {
        report.violations.push(Violation {
            invariant: 4,
            stock_id: Some(found.stock_id),
            detail: found.detail(),
        });
    }
    let bad_levels = sqlx::query(
        "SELECT id, listed_stock, locked_stock, available_stock FROM marketplace_stock
         WHERE listed_stock < 0 OR locked_stock < 0
            OR available_stock <> GREATEST(listed_stock - locked_stock, 0)",
    )
    .fetch_all(pool)
    .await?;
    for row in bad_levels {
        report.violations.push(Violation {
            invariant: 2,
            stock_id: Some(row.get("id")),
            detail: format!(
                "listed {} locked {} available {}",
                row.get::<i32, _>("listed_stock"),
                row.get::<i32, _>("locked_stock"),
                row.get::<i32, _>("available_stock")
            ),
        });
    }
    let bad_locks = sqlx::query(
        "SELECT marketplace_id, order_external_id, order_item_external_id, count(*) AS n
         FROM marketplace_stock_locks GROUP BY 1, 2, 3 HAVING count(*) > 1
         UNION ALL
         SELECT marketplace_id, order_external_id, order_item_external_id, 1 FROM marketplace_stock_locks
         WHERE (lock_status = 'released' AND released_at IS NULL)
            OR (lock_status = 'consumed' AND consumed_at IS NULL)
            OR (lock_status = 'locked' AND (released_at IS NOT NULL OR consumed_at IS NOT NULL))",
    )
    .fetch_all(pool)
    .await?;
    for row in bad_locks {
        report.violations.push(Violation {
            invariant: 3,
            stock_id: None,
            detail: format!(
                "order {} item {} (marketplace {}): {} lock rows or a state without its timestamp",
                row.get::<String, _>("order_external_id"),
                row.get::<String, _>("order_item_external_id"),
                row.get::<i32, _>("marketplace_id"),
                row.get::<i64, _>("n")
            ),
        });
    }
    report
        .violations
        .extend(super::pool_checks::violations(pool).await?);
    report.findings = findings(pool, stale_after).await?;
    report
        .findings
        .extend(super::pool_checks::oversold(pool).await?);
    report.oversold_units = super::oversold::by_marketplace(pool).await?;
    super::oversold::record(pool).await?;
    Ok(report)
}

async fn findings(pool: &PgPool, stale_after: Duration) -> sqlx::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let stale = sqlx::query(
        "SELECT l.order_external_id, l.order_item_external_id, l.quantity_locked, m.code, l.locked_at::text AS locked_at
         FROM marketplace_stock_locks l
         JOIN marketplaces m ON m.id = l.marketplace_id
         LEFT JOIN orders o ON o.marketplace_id = l.marketplace_id AND o.external_id = l.order_external_id
         WHERE l.lock_status = 'locked'
           AND l.locked_at < now() - make_interval(secs => $1)
           AND (o.id IS NULL OR o.updated_at < now() - make_interval(secs => $1))
         ORDER BY l.locked_at",
    )
    .bind(stale_after.as_secs_f64())
    .fetch_all(pool)
    .await?;
    findings.extend(stale.into_iter().map(|row| Finding {
        kind: "stale_lock",
        detail: format!(
            "{} order {} item {}: {} unit(s) locked since {} and the order has not changed",
            row.get::<String, _>("code"),
            row.get::<String, _>("order_external_id"),
            row.get::<String, _>("order_item_external_id"),
            row.get::<i32, _>("quantity_locked"),
            row.get::<String, _>("locked_at"),
        ),
    }));
    let unknown_skus = sqlx::query(
        "SELECT m.code, o.external_id,
                string_agg(DISTINCT i.sku, ', ') FILTER (WHERE i.variation_id IS NULL) AS skus
         FROM orders o JOIN marketplaces m ON m.id = o.marketplace_id
         LEFT JOIN order_items i ON i.order_id = o.id
         WHERE o.has_unknown_sku GROUP BY m.code, o.external_id ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    findings.extend(unknown_skus.into_iter().map(|row| Finding {
        kind: "unknown_sku",
        detail: format!(
            "{} order {} has unknown SKU(s): {}",
            row.get::<String, _>("code"),
            row.get::<String, _>("external_id"),
            row.get::<Option<String>, _>("skus").unwrap_or_default()
        ),
    }));
    let unknown_stock = sqlx::query(
        "SELECT v.sku, m.code, s.locked_stock FROM marketplace_stock s
         JOIN variations v ON v.id = s.variation_id JOIN marketplaces m ON m.id = s.marketplace_id
         WHERE NOT s.stock_known
           AND NOT EXISTS (SELECT 1 FROM stock_pools p WHERE p.variation_id = s.variation_id)
         ORDER BY v.sku, m.code",
    )
    .fetch_all(pool)
    .await?;
    findings.extend(unknown_stock.into_iter().map(|row| Finding {
        kind: "unknown_stock",
        detail: format!(
            "{} on {}: stock never counted ({} unit(s) locked by orders); set it with `stockfleet stock set`",
            row.get::<String, _>("sku"),
            row.get::<String, _>("code"),
            row.get::<i32, _>("locked_stock"),
        ),
    }));
    let oversold = super::oversold::rows(pool).await?;
    findings.extend(oversold.into_iter().map(|row| Finding {
        kind: "oversold",
        detail: format!(
            "{} on {}: {} unit(s) oversold ({} locked by orders, {} listed)",
            row.sku, row.marketplace, row.units, row.locked, row.listed
        ),
    }));
    Ok(findings)
}

struct Drift {
    id: i64,
    variation_id: i64,
    marketplace_id: i32,
    sku: String,
    marketplace: String,
    current: StockLevels,
    from_locks: i32,
    from_history: StockLevels,
}

/// Rows whose counters disagree with their locks or their history.
async fn drift(pool: &PgPool) -> sqlx::Result<Vec<Drift>> {
    let rows = sqlx::query(
        "WITH locks AS (
             SELECT stock_id, sum(quantity_locked)::int AS locked
             FROM marketplace_stock_locks WHERE lock_status = 'locked' GROUP BY stock_id),
         replay AS (
             SELECT stock_id, sum(listed_after - listed_before)::int AS listed,
                    sum(locked_after - locked_before)::int AS locked
             FROM marketplace_stock_history GROUP BY stock_id)
         SELECT s.id, s.variation_id, s.marketplace_id, v.sku, m.code, s.listed_stock, s.locked_stock,
                COALESCE(l.locked, 0) AS from_locks,
                COALESCE(r.listed, 0) AS history_listed, COALESCE(r.locked, 0) AS history_locked
         FROM marketplace_stock s
         JOIN variations v ON v.id = s.variation_id
         JOIN marketplaces m ON m.id = s.marketplace_id
         LEFT JOIN locks l ON l.stock_id = s.id
         LEFT JOIN replay r ON r.stock_id = s.id
         WHERE s.locked_stock <> COALESCE(l.locked, 0)
            OR s.listed_stock <> COALESCE(r.listed, 0)
            OR s.locked_stock <> COALESCE(r.locked, 0)
         ORDER BY s.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Drift {
            id: row.get("id"),
            variation_id: row.get("variation_id"),
            marketplace_id: row.get("marketplace_id"),
            sku: row.get("sku"),
            marketplace: row.get("code"),
            current: StockLevels::new(row.get("listed_stock"), row.get("locked_stock")),
            from_locks: row.get("from_locks"),
            from_history: StockLevels::new(row.get("history_listed"), row.get("history_locked")),
        })
        .collect())
}

/// Recomputes drifted rows: locked from the locks (the per-item truth),
/// listed from the history (every legitimate change is recorded there). The
/// `reconciliation` row goes from what history said to the corrected levels,
/// so replaying history reproduces the row again. Then broken history chains
/// get their bridge. Returns the rows corrected or bridged.
pub async fn repair(pool: &PgPool, actor: &str) -> sqlx::Result<Vec<i64>> {
    let mut repaired = recompute(pool, actor).await?;
    for variation in super::pool_checks::repair(pool, actor).await? {
        tracing::info!(variation, "validate --repair: pool history bridged");
    }
    for bridged in history_chain::bridge(pool, actor).await? {
        if !repaired.contains(&bridged) {
            repaired.push(bridged);
        }
    }
    Ok(repaired)
}

async fn recompute(pool: &PgPool, actor: &str) -> sqlx::Result<Vec<i64>> {
    let mut repaired = Vec::new();
    for candidate in drift(pool).await? {
        let mut tx = pool.begin().await?;
        // Re-read under the row lock: the fleet may be running.
        let row = sqlx::query(
            "SELECT listed_stock, locked_stock FROM marketplace_stock WHERE id = $1 FOR UPDATE",
        )
        .bind(candidate.id)
        .fetch_one(&mut *tx)
        .await?;
        let current = StockLevels::new(row.get("listed_stock"), row.get("locked_stock"));
        let fresh = drift_of(&mut tx, candidate.id).await?;
        let corrected = StockLevels::new(fresh.1.listed.max(0), fresh.0);
        if corrected == current && fresh.1 == current {
            continue;
        }
        sqlx::query(
            "UPDATE marketplace_stock SET listed_stock = $2, locked_stock = $3, updated_at = now() WHERE id = $1",
        )
        .bind(candidate.id)
        .bind(corrected.listed)
        .bind(corrected.locked)
        .execute(&mut *tx)
        .await?;
        let change = LevelChange {
            change_type: ChangeType::Reconciliation,
            before: fresh.1,
            after: corrected,
            quantity: corrected.locked - current.locked,
            note: Some(format!(
                "validate --repair: row had listed {} locked {}; locks hold {}; history said listed {} locked {}",
                current.listed, current.locked, fresh.0, fresh.1.listed, fresh.1.locked
            )),
        };
        let mut history = HistoryColumns::default();
        history.add(
            (
                candidate.id,
                candidate.variation_id,
                candidate.marketplace_id,
            ),
            &change,
            (None, None),
            None,
            actor,
        );
        history.insert(&mut tx).await?;
        let payload = StockChanged {
            stock_id: candidate.id,
            variation_id: candidate.variation_id,
            sku: candidate.sku.clone(),
            listed: corrected.listed,
            locked: corrected.locked,
            available: corrected.available(),
            change_type: ChangeType::Reconciliation.as_str().to_owned(),
            origin: None,
        };
        let envelope = Envelope::new(STOCK_CHANGED, &candidate.marketplace, &payload);
        outbox::enqueue(&mut tx, &[OutboxMessage::event(envelope, None)]).await?;
        tx.commit().await?;
        repaired.push(candidate.id);
    }
    Ok(repaired)
}

/// (locked from locks, levels from history) of one row, inside a transaction.
async fn drift_of(
    conn: &mut sqlx::PgConnection,
    stock_id: i64,
) -> sqlx::Result<(i32, StockLevels)> {
    let row = sqlx::query(
        "SELECT
             (SELECT COALESCE(sum(quantity_locked), 0)::int FROM marketplace_stock_locks
              WHERE stock_id = $1 AND lock_status = 'locked') AS from_locks,
             (SELECT COALESCE(sum(listed_after - listed_before), 0)::int FROM marketplace_stock_history
              WHERE stock_id = $1) AS listed,
             (SELECT COALESCE(sum(locked_after - locked_before), 0)::int FROM marketplace_stock_history
              WHERE stock_id = $1) AS locked",
    )
    .bind(stock_id)
    .fetch_one(conn)
    .await?;
    Ok((
        row.get("from_locks"),
        StockLevels::new(row.get("listed"), row.get("locked")),
    ))
}
