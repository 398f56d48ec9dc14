//! What a row's push writes back once its calls are done, in one transaction.

use super::{POLL_REQUEST_INTERVAL, PublisherHandler};
use crate::bus::outbox::{self, OutboxMessage};
use crate::bus::{Envelope, HandlerError};
use crate::domain::ledger::{ChangeType, LevelChange, StockLevels};
use crate::events::{self, PoolOrigin, SYNC_REQUEST, SyncRequest};
use crate::ledger::HistoryColumns;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;
use std::time::Instant;

/// What a row's push writes back once its calls are done.
#[derive(Default)]
pub(super) struct Effects {
    /// Rows pushed (or confirmed by a read): id, quantity shown, when the
    /// marketplace answered, and whether it was a push (a pushed 0 is read
    /// back later: a sold-out confirmed).
    pub(super) synced: Vec<(i64, i32, DateTime<Utc>, bool)>,
    pub(super) notes: Vec<SyncNote>,
    pub(super) request_poll: bool,
    /// Pooled rows now showing another marketplace's order: row id, that order.
    pub(super) propagated: Vec<(i64, PoolOrigin)>,
}

impl Effects {
    /// Records what a row shows now (pushed, or found by a read), replacing
    /// an earlier record of the same row: the last one is the truth.
    pub(super) fn record_shown(&mut self, stock_id: i64, quantity: i32, at: DateTime<Utc>) {
        self.record(stock_id, quantity, at, false);
    }

    /// Records a push that landed: what the row shows now, and whether it
    /// is read back later (push_guard::read_back_after_push).
    pub(super) fn record_pushed(
        &mut self,
        stock_id: i64,
        quantity: i32,
        at: DateTime<Utc>,
        read_back: bool,
    ) {
        self.record(stock_id, quantity, at, read_back);
    }

    fn record(&mut self, stock_id: i64, quantity: i32, at: DateTime<Utc>, read_back: bool) {
        self.synced.retain(|(id, ..)| *id != stock_id);
        self.synced.push((stock_id, quantity, at, read_back));
    }

    /// Nothing to write back.
    pub(super) fn is_empty(&self) -> bool {
        self.synced.is_empty()
            && self.notes.is_empty()
            && !self.request_poll
            && self.propagated.is_empty()
    }
}

/// A history row recording what the marketplace was shown (`api_sync`,
/// `reconciliation`): the stock levels do not move, and the row records them
/// as of the commit, read under the row lock, not as they were before the
/// HTTP call (other transactions may have changed them meanwhile).
pub(super) struct SyncNote {
    /// (stock id, variation id, marketplace id)
    pub(super) key: (i64, i64, i32),
    pub(super) change_type: ChangeType,
    pub(super) quantity: i32,
    pub(super) note: String,
    pub(super) reference: String,
}

impl PublisherHandler {
    /// Writes pushes, history and a poll request in one transaction. The
    /// rows are locked first (in id order, as the ledger locks them), so the
    /// history records their levels as this transaction sees them.
    pub(super) async fn commit(&self, effects: Effects) -> Result<(), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let mut touched: Vec<i64> = effects.synced.iter().map(|(id, ..)| *id).collect();
        touched.extend(effects.notes.iter().map(|note| note.key.0));
        let current = lock_levels(&mut tx, touched).await?;
        if !effects.synced.is_empty() {
            let mut ids = Vec::new();
            let (mut quantities, mut landed, mut read_back) = (Vec::new(), Vec::new(), Vec::new());
            for (id, quantity, at, read) in effects.synced {
                ids.push(id);
                quantities.push(quantity);
                landed.push(at);
                read_back.push(read);
            }
            // A push across zero is read back after the marketplace's
            // zero_confirm_seconds (crate::sold_out); anything else seen or
            // pushed settles the question.
            sqlx::query(
                "UPDATE marketplace_stock s SET last_api_quantity = k.q, last_synced_at = k.at,
                        zero_confirm_due_at = CASE WHEN k.read_back
                            THEN k.at + make_interval(secs => m.zero_confirm_seconds) END
                 FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::bool[]) AS k(id, q, at, read_back),
                      marketplaces m
                 WHERE s.id = k.id AND m.id = s.marketplace_id",
            )
            .bind(&ids)
            .bind(&quantities)
            .bind(&landed)
            .bind(&read_back)
            .execute(&mut *tx)
            .await?;
        }
        let mut history = HistoryColumns::default();
        for note in effects.notes {
            // A row deleted meanwhile has no levels left to record.
            let Some(levels) = current.get(&note.key.0) else {
                continue;
            };
            history.add(
                note.key,
                &unchanged(*levels, note.change_type, note.quantity, note.note),
                (None, None),
                Some(note.reference),
                "publisher",
            );
        }
        history.insert(&mut tx).await?;
        if effects.request_poll && self.poll_request_due() {
            let code = &self.marketplace.code;
            let request = SyncRequest {
                sync_type: "new".to_owned(),
                force: false,
                days_back: None,
                requested_by: "publisher: a stock increase waits for a fresh new-orders poll"
                    .to_owned(),
            };
            let envelope = Envelope::new(SYNC_REQUEST, code, &request);
            let message =
                OutboxMessage::command(events::sync_command_key(code, "new"), envelope, None);
            outbox::enqueue(&mut tx, &[message]).await?;
        }
        let propagated = self
            .record_propagation(&mut tx, &effects.propagated)
            .await?;
        tx.commit().await?;
        let to = self.marketplace.code.clone();
        for (from, elapsed) in propagated {
            metrics::histogram!("stockfleet_pool_propagation_seconds", "from" => from, "to" => to.clone())
                .record(elapsed.as_secs_f64());
        }
        Ok(())
    }

    /// The race window of each pooled row told of another marketplace's
    /// order: from the order seen there to this marketplace accepting the
    /// quantity, kept on the row for the listing page.
    async fn record_propagation(
        &self,
        tx: &mut sqlx::PgConnection,
        propagated: &[(i64, PoolOrigin)],
    ) -> sqlx::Result<Vec<(String, std::time::Duration)>> {
        if propagated.is_empty() {
            return Ok(Vec::new());
        }
        let now = chrono::Utc::now();
        let mut measured = Vec::new();
        let (mut ids, mut millis, mut from) = (Vec::new(), Vec::new(), Vec::new());
        for (stock_id, origin) in propagated {
            let elapsed = (now - origin.seen_at).to_std().unwrap_or_default();
            ids.push(*stock_id);
            millis.push(elapsed.as_millis() as i64);
            from.push(origin.marketplace.clone());
            measured.push((origin.marketplace.clone(), elapsed));
        }
        sqlx::query(
            "UPDATE marketplace_stock s SET pool_propagation_ms = k.ms, pool_propagation_from = k.f
             FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS k(id, ms, f) WHERE s.id = k.id",
        )
        .bind(&ids)
        .bind(&millis)
        .bind(&from)
        .execute(tx)
        .await?;
        Ok(measured)
    }

    fn poll_request_due(&self) -> bool {
        let mut last = self.last_poll_request.lock().expect("poisoned");
        let due = last.is_none_or(|at| at.elapsed() >= POLL_REQUEST_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

/// Locks stock rows in id order and reads their levels.
async fn lock_levels(
    conn: &mut sqlx::PgConnection,
    mut ids: Vec<i64>,
) -> sqlx::Result<HashMap<i64, StockLevels>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query(
        "SELECT id, listed_stock, locked_stock FROM marketplace_stock
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let levels = StockLevels::new(row.get("listed_stock"), row.get("locked_stock"));
            (row.get("id"), levels)
        })
        .collect())
}

/// A row's levels unchanged, with a note: api_sync and reconciliation rows
/// record what the marketplace was shown, not a stock movement.
fn unchanged(
    levels: StockLevels,
    change_type: ChangeType,
    quantity: i32,
    note: String,
) -> LevelChange {
    LevelChange {
        change_type,
        before: levels,
        after: levels,
        quantity,
        note: Some(note),
    }
}
