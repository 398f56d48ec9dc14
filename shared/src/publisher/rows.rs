//! A stock row as the publisher reads it at send time (push.rs pushes it).

use super::PublisherHandler;
use super::estimate::{decrements_on_order_column, taken_since_push_column};
use crate::buffer_sql::{buffer_rule, buffer_rule_columns};
use crate::domain::ledger::StockLevels;
use crate::domain::pool;
use crate::domain::push_guard::{PollCover, estimate_shown};
use crate::events::PoolOrigin;
use crate::pools::last_units;
use sqlx::Row;
use std::collections::HashMap;

/// A stock row as the publisher reads it at send time.
pub(super) struct RowState {
    pub(super) variation_id: i64,
    pub(super) sku: String,
    pub(super) known: bool,
    pub(super) target: u32,
    pub(super) last_api_quantity: Option<i32>,
    /// Units of the row's orders placed after the last push landed (estimate.rs).
    taken_since_push: i32,
    /// An order of the row is dated too close to the last push to tell
    /// whether the push overwrote it (estimate.rs): read before deciding.
    pub(super) uncertain: bool,
    decrements_on_order: bool,
    pub(super) cover: PollCover,
}

impl RowState {
    /// Whether the push lowers what the marketplace shows (as far as we know).
    pub(super) fn is_decrease(&self) -> bool {
        self.shown_estimate()
            .is_some_and(|shown| (self.target as i32) < shown)
    }

    /// What the marketplace shows now, as far as we know (push_guard).
    pub(super) fn shown_estimate(&self) -> Option<i32> {
        estimate_shown(
            self.last_api_quantity,
            self.taken_since_push,
            self.decrements_on_order,
        )
    }
}

/// One row's messages in a batch: which one carries the outcome, and whether
/// a reconciliation asked for the marketplace's quantity.
pub(super) struct Group {
    pub(super) carrier: usize,
    pub(super) reconcile: bool,
    /// The earliest order of another marketplace of the row's pool behind
    /// these messages: the push that follows ends its race window.
    pub(super) origin: Option<PoolOrigin>,
}

impl Group {
    pub(super) fn note_origin(&mut self, origin: Option<PoolOrigin>, own: &str) {
        let Some(origin) = origin.filter(|origin| origin.marketplace != own) else {
            return;
        };
        if self
            .origin
            .as_ref()
            .is_none_or(|seen| origin.seen_at < seen.seen_at)
        {
            self.origin = Some(origin);
        }
    }
}

impl PublisherHandler {
    pub(super) async fn load_rows(&self, ids: &[i64]) -> sqlx::Result<HashMap<i64, RowState>> {
        let rows = sqlx::query(concat!(
            "SELECT s.id, s.variation_id, COALESCE(l.sku, v.sku) AS sku,
                    s.available_stock, s.stock_known, s.last_api_quantity,
                    p.on_hand AS pool_on_hand, p.last_units, p.last_units_marketplace_id,
                    (SELECT COALESCE(sum(o.locked_stock), 0)::int FROM marketplace_stock o
                     WHERE o.variation_id = s.variation_id) AS pool_locked,
                    s.last_synced_at, now() AS db_now,
                    m.increase_freshness_seconds, ",
            decrements_on_order_column!(),
            ", ",
            taken_since_push_column!(),
            ",
                    (SELECT max(k.created_at) FROM marketplace_stock_locks k
                     WHERE k.stock_id = s.id) AS order_learned_at,
                    (SELECT max(r.started_at) FROM sync_runs r
                     WHERE r.marketplace_id = m.id AND r.sync_type = 'new' AND r.status = 'succeeded')
                        AS poll_started_at,
                    EXISTS (SELECT 1 FROM order_items i JOIN orders o ON o.id = i.order_id
                            WHERE i.variation_id = s.variation_id AND o.marketplace_id = m.id
                              AND NOT i.lock_applied
                              AND i.status IN ('unpaid', 'pending', 'accepted', 'shipped')
                              AND (i.status <> 'unpaid' OR m.lock_unpaid_orders))
                        AS orders_unapplied, ",
            buffer_rule_columns!(),
            " FROM marketplace_stock s
             JOIN variations v ON v.id = s.variation_id
             JOIN marketplaces m ON m.id = s.marketplace_id
             LEFT JOIN stock_pools p ON p.variation_id = s.variation_id
             LEFT JOIN listings l ON l.variation_id = s.variation_id AND l.marketplace_id = s.marketplace_id
             WHERE s.id = ANY($1) AND s.marketplace_id = $2"
        ))
        .bind(ids)
        .bind(self.marketplace.id)
        // Planned for its own ids every time. In a 20 orders/s run this
        // statement ran for minutes on CPU, while planned for the same 300 ids
        // it takes a quarter of a second; the suspect is the generic plan
        // PostgreSQL switches a prepared statement to after five runs.
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let decrements_on_order = row.get("decrements_on_order");
                let rule = buffer_rule(&row);
                // A pooled row shows its rule over the pool (and the last-units hold).
                let pool = row
                    .get::<Option<i32>, _>("pool_on_hand")
                    .map(|on_hand| StockLevels::new(on_hand, row.get("pool_locked")));
                let target = match pool {
                    Some(levels) => {
                        pool::shown(levels, last_units(&row), self.marketplace.id, &rule)
                    }
                    None => rule.buffered(row.get("available_stock")),
                };
                let state = RowState {
                    variation_id: row.get("variation_id"),
                    sku: row.get("sku"),
                    known: pool.is_some() || row.get::<bool, _>("stock_known"),
                    target,
                    last_api_quantity: row.get("last_api_quantity"),
                    taken_since_push: row.get("taken_since_push"),
                    uncertain: decrements_on_order && row.get::<bool, _>("uncertain_since_push"),
                    decrements_on_order,
                    cover: PollCover {
                        poll_started_at: row.get("poll_started_at"),
                        last_push_at: row.get("last_synced_at"),
                        order_learned_at: row.get("order_learned_at"),
                        orders_unapplied: row.get("orders_unapplied"),
                        decrements_on_order,
                        now: row.get("db_now"),
                        freshness: chrono::Duration::seconds(i64::from(
                            row.get::<i32, _>("increase_freshness_seconds"),
                        )),
                    },
                };
                (row.get("id"), state)
            })
            .collect())
    }
}
