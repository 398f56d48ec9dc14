//! Pushing one stock row: decide (push_guard), take the permit, then, under
//! the row's lock, decide again on the row as it is then (an increase on a
//! decrementing marketplace reading what it shows first), send, and commit
//! what the marketplace was shown.
//!
//! The quantity is computed once the permit is in hand, not before the wait.
//! Pushes are absolute: a push overwrites the marketplace's own decrements
//! for every order placed between the moment its quantity was computed and
//! the moment it lands. Behind a tight listing limit the wait for a permit
//! lasts seconds, and a sell-out's orders placed meanwhile would be given
//! back; computed after the wait, only the request's own round trip is
//! exposed, and the buffer covers that.
//!
//! Batches overlap (the stock queue works several at once), so a row's work
//! holds its lock ([`super::row_lock`]) and commits on its own. High-priority
//! work (a decrease) takes the lock first: a second batch's decrease of the
//! row waits for the first, then finds it pushed and costs no permit.
//! Low-priority work (an increase, a reconciliation read) takes its permits
//! first and the lock only then: waiting for a full bucket, it holds up no
//! decrease of the row.

use super::PublisherHandler;
use super::commit::{Effects, SyncNote};
use super::handler::handler_error;
use super::rows::{Group, RowState};
use crate::bus::HandlerError;
use crate::domain::ledger::ChangeType;
use crate::domain::push_guard::{PushDecision, decide, read_back_after_push};
use crate::marketplace::budget::{self, EndpointClass, Priority};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How long an increase waits for its permits (the push's and its read's)
/// before it is deferred (back through the shortest retry queue, no attempt
/// counted). Other batches go on meanwhile, but it must fit two
/// low-priority permits: those wait for a full bucket, and Back Market's
/// listings bucket (2 permits, 1.5 a second) takes 2.7 s for two. At 1 s a
/// chaos run's Back Market increases never went, and each try spent a permit.
const INCREASE_PATIENCE: Duration = Duration::from_secs(5);

/// Listing permits taken before the row's lock, spent by its next calls.
/// Those left when the row's work ends (the row, read again under its lock,
/// needed fewer calls) are counted: budget taken from the marketplace's
/// other callers for nothing.
struct Held<'a> {
    permits: u32,
    marketplace: &'a str,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.permits > 0 {
            metrics::counter!("stockfleet_push_permits_unused_total", "marketplace" => self.marketplace.to_owned())
                .increment(u64::from(self.permits));
        }
    }
}

/// A row waiting for its low-priority listing permits, counted while it
/// waits: the increases and reads queued behind the marketplace's budget.
struct Waiting(metrics::Gauge);

impl Waiting {
    fn start(marketplace: &str) -> Self {
        let gauge = metrics::gauge!("stockfleet_push_rows_waiting_for_permits", "marketplace" => marketplace.to_owned());
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl Held<'_> {
    /// Runs `call` on a held permit, if one is left (else it takes its own).
    async fn spend<F: Future>(&mut self, call: F) -> F::Output {
        if self.permits == 0 {
            return call.await;
        }
        self.permits -= 1;
        budget::prepaid(EndpointClass::Listings, call).await
    }
}

impl PublisherHandler {
    /// Pushes (or skips, or defers) one row and commits what it did.
    pub(super) async fn sync_row(
        &self,
        stock_id: i64,
        (row, version): (&RowState, u64),
        group: &Group,
        reference: &str,
    ) -> Result<(), HandlerError> {
        let mut effects = Effects::default();
        let mut locked = None;
        let view = (row, version, group);
        let result = self
            .work_row(stock_id, view, reference, &mut effects, &mut locked)
            .await;
        if let (Ok(()), Some(origin)) = (&result, &group.origin) {
            effects.propagated.push((stock_id, origin.clone()));
        }
        // Under the row's lock still: the next push of the row decides from it.
        let committed = match effects.is_empty() {
            true => Ok(()),
            // The calls went out but are not recorded: retry them (pushes are absolute).
            false => self.commit(effects).await,
        };
        drop(locked);
        result.and(committed)
    }

    /// One row's decisions and calls; `locked` holds the row's lock once taken.
    async fn work_row<'a>(
        &'a self,
        stock_id: i64,
        (row, version, group): (&RowState, u64, &Group),
        reference: &str,
        effects: &mut Effects,
        locked: &mut Option<super::row_lock::RowGuard<'a>>,
    ) -> Result<(), HandlerError> {
        if !row.known {
            metrics::counter!("stockfleet_push_skipped_total", "marketplace" => self.marketplace.code.clone(), "reason" => "unknown_stock").increment(1);
            return Ok(());
        }
        let started = Instant::now();
        let patience = started + INCREASE_PATIENCE;
        let mut held = Held {
            permits: 0,
            marketplace: &self.marketplace.code,
        };
        let mut gated = false;
        // As the batch saw the row: what the work needs first. A view
        // another batch has overtaken decides nothing: lock, then read.
        let current = self.row_locks.untouched_since(stock_id, version);
        let first_read = why_read(row, group).filter(|_| current);
        let first = match first_read {
            _ if !current => Priority::High,
            Some(why @ (Read::Reconcile | Read::Uncertain)) => why.priority(),
            _ => match self.priority(stock_id, row, None, effects)? {
                None => return Ok(()),
                Some(priority) => priority,
            },
        };
        if first == Priority::Low {
            // Permits first, then the lock: see the module's comment. One
            // row at a time takes them: spread over a dozen increases, each
            // took its read's permit and none its push's within patience.
            let patience = (first_read != Some(Read::Reconcile)).then_some(patience);
            let _waiting = Waiting::start(&self.marketplace.code);
            let lane = self.low_lane.lock();
            let _lane = match patience {
                Some(patience) => tokio::time::timeout_at(patience, lane)
                    .await
                    .map_err(|_| self.short_of_budget(row))?,
                None => lane.await,
            };
            if first_read.is_none_or(|why| why == Read::BeforeIncrease) {
                self.gate().await;
                gated = true;
            }
            let wanted = if first_read == Some(Read::BeforeIncrease) {
                2
            } else {
                1
            };
            for _ in 0..wanted {
                self.permit(Priority::Low, patience, row).await?;
                held.permits += 1;
            }
        }
        *locked = Some(self.row_locks.lock(stock_id).await);
        let mut fresh = self.load_rows(&[stock_id]).await?;
        let Some(row) = fresh.remove(&stock_id) else {
            return Err(HandlerError::Permanent(format!(
                "stock row {stock_id} was deleted before its push"
            )));
        };
        // What the marketplace shows now: read on a reconciliation or when
        // the estimate is uncertain (estimate.rs), before deciding; before an
        // increase on a decrementing marketplace (push_guard, rule 4) just
        // before the push, below; else our estimate.
        let mut reported = match why_read(&row, group) {
            Some(why @ (Read::Reconcile | Read::Uncertain)) => Some(
                self.read_and_note(
                    stock_id,
                    &row,
                    (group, why, None),
                    reference,
                    effects,
                    &mut held,
                )
                .await?,
            ),
            _ => None,
        };
        let Some(mut priority) = self.priority(stock_id, &row, reported, effects)? else {
            return Ok(());
        };
        if held.permits == 0 {
            if !gated {
                self.gate().await;
            }
            self.permit(
                priority,
                (priority == Priority::Low).then_some(patience),
                &row,
            )
            .await?;
            held.permits += 1;
        }
        // Rule 4's read comes last, just before the push: the units it gives
        // back are only those of orders placed during the read's and the
        // push's round trips. Read before the permit, a chaos run gave back
        // the orders of a 5 s wait for it on a SKU selling 2 units a second.
        if reported.is_none() && why_read(&row, group) == Some(Read::BeforeIncrease) {
            let read = (group, Read::BeforeIncrease, Some(patience));
            reported = Some(
                self.read_and_note(stock_id, &row, read, reference, effects, &mut held)
                    .await?,
            );
            match self.priority(stock_id, &row, reported, effects)? {
                Some(again) => priority = again,
                None => return Ok(()),
            }
        }
        let shown = reported.or_else(|| row.shown_estimate());
        let push = self.call("set_listing_quantity", || {
            self.adapter.set_listing_quantity(&row.sku, row.target)
        });
        held.spend(budget::with_priority(priority, push))
            .await
            .map_err(handler_error)?;
        let target = row.target as i32;
        tracing::debug!(marketplace = %self.marketplace.code, sku = %row.sku, target, ?priority,
            read = ?why_read(&row, group), elapsed_ms = started.elapsed().as_millis() as u64, "pushed");
        // When it landed: orders placed before it were overwritten (estimate.rs).
        let read_back = read_back_after_push(shown, target);
        effects.record_pushed(stock_id, target, chrono::Utc::now(), read_back);
        let before = shown.map_or("nothing".to_owned(), |q| q.to_string());
        effects.notes.push(SyncNote {
            key: self.key(stock_id, &row),
            change_type: ChangeType::ApiSync,
            quantity: target - shown.unwrap_or(0),
            note: format!(
                "pushed {target} to {} (was {before})",
                self.marketplace.code
            ),
            reference: reference.to_owned(),
        });
        Ok(())
    }

    /// Waits for the marketplace's cap on quantity updates, if it has one.
    async fn gate(&self) {
        if let Some(gate) = &self.quantity_budget {
            gate.wait().await;
        }
    }

    /// Takes one listing permit at `priority`; by `patience` at the latest,
    /// else the row is deferred (an increase waits outside the batch).
    async fn permit(
        &self,
        priority: Priority,
        patience: Option<Instant>,
        row: &RowState,
    ) -> Result<(), HandlerError> {
        let permit = budget::with_priority(priority, self.budget.acquire(EndpointClass::Listings));
        match patience {
            Some(patience) => tokio::time::timeout_at(patience, permit)
                .await
                .map_err(|_| self.short_of_budget(row)),
            None => {
                permit.await;
                Ok(())
            }
        }
    }

    /// Reads what the marketplace shows (an increase's read by its
    /// `patience` at the latest, else it is deferred); a read that disagrees with
    /// the estimate becomes its new baseline: what it lacks are orders we
    /// will learn, placed before it (and an increase needs a poll started
    /// after it).
    async fn read_and_note(
        &self,
        stock_id: i64,
        row: &RowState,
        (group, why, patience): (&Group, Read, Option<Instant>),
        reference: &str,
        effects: &mut Effects,
        held: &mut Held<'_>,
    ) -> Result<i32, HandlerError> {
        let read =
            held.spend(self.read_shown(stock_id, row, (group, why.priority()), reference, effects));
        let reported = match patience {
            Some(patience) => tokio::time::timeout_at(patience, read)
                .await
                .map_err(|_| self.short_of_budget(row))??,
            None => read.await?,
        };
        if row
            .shown_estimate()
            .is_some_and(|estimate| estimate != reported)
        {
            effects.record_shown(stock_id, reported, chrono::Utc::now());
        }
        Ok(reported)
    }

    /// An increase that cannot have a permit soon waits outside the batch.
    fn short_of_budget(&self, row: &RowState) -> HandlerError {
        HandlerError::Deferred(format!(
            "increase of {} on {} waits for the listings budget",
            row.sku, self.marketplace.code
        ))
    }

    /// (stock id, variation id, marketplace id) of a history row.
    fn key(&self, stock_id: i64, row: &RowState) -> (i64, i64, i32) {
        (stock_id, row.variation_id, self.marketplace.id)
    }

    /// Reads what the marketplace shows. On a reconciliation a difference
    /// from what we last pushed is recorded as a `reconciliation` history
    /// row.
    async fn read_shown(
        &self,
        stock_id: i64,
        row: &RowState,
        (group, priority): (&Group, Priority),
        reference: &str,
        effects: &mut Effects,
    ) -> Result<i32, HandlerError> {
        let read = self.call("listing_quantity", || {
            self.adapter.listing_quantity(&row.sku)
        });
        let reported = budget::with_priority(priority, read)
            .await
            .map_err(handler_error)?;
        let reported = i32::try_from(reported).unwrap_or(i32::MAX);
        if group.reconcile && row.last_api_quantity != Some(reported) {
            let note = format!(
                "{} showed {reported} while we last pushed {}; our quantity is {}",
                self.marketplace.code,
                row.last_api_quantity
                    .map_or("nothing".to_owned(), |q| q.to_string()),
                row.target
            );
            effects.notes.push(SyncNote {
                key: self.key(stock_id, row),
                change_type: ChangeType::Reconciliation,
                quantity: reported - row.last_api_quantity.unwrap_or(0),
                note,
                reference: reference.to_owned(),
            });
        }
        Ok(reported)
    }

    /// The push guard's decision as the priority of the push, or `None` when
    /// no call is needed; an increase no poll covers is deferred. `reported`
    /// is what a read found the marketplace showing, if it was read.
    fn priority(
        &self,
        stock_id: i64,
        row: &RowState,
        reported: Option<i32>,
        effects: &mut Effects,
    ) -> Result<Option<Priority>, HandlerError> {
        let code = &self.marketplace.code;
        let target = row.target as i32;
        let shown = reported.or_else(|| row.shown_estimate());
        let covered = row.cover.covers_read(row.shown_estimate(), reported);
        match decide(target, shown, covered) {
            PushDecision::Unchanged => {
                // A read confirmed it: the estimate starts again from it.
                if reported.is_some() {
                    effects.record_shown(stock_id, target, chrono::Utc::now());
                }
                metrics::counter!("stockfleet_push_skipped_total", "marketplace" => code.clone(), "reason" => "unchanged").increment(1);
                Ok(None)
            }
            PushDecision::WaitForPoll => {
                effects.request_poll = true;
                Err(HandlerError::Deferred(format!(
                    "increase of {} on {code} to {target} (it shows {}) waits for a new-orders poll \
                     started after the last push and stock change",
                    row.sku,
                    shown.map_or("nothing".to_owned(), |q| q.to_string())
                )))
            }
            // A decrease protects against overselling: it goes before increases.
            PushDecision::Decrease => Ok(Some(Priority::High)),
            PushDecision::Increase => Ok(Some(Priority::Low)),
        }
    }
}

/// Why the publisher reads what the marketplace shows before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A reconciliation compares it with what we last pushed.
    Reconcile,
    /// An order dated too close to the last push (estimate.rs): the read may
    /// show a needed decrease.
    Uncertain,
    /// An increase on a decrementing marketplace (push_guard, rule 4).
    BeforeIncrease,
}

impl Read {
    fn priority(self) -> Priority {
        match self {
            Read::Uncertain => Priority::High,
            Read::Reconcile | Read::BeforeIncrease => Priority::Low,
        }
    }
}

fn why_read(row: &RowState, group: &Group) -> Option<Read> {
    let increase = || {
        row.cover.decrements_on_order
            && decide(row.target as i32, row.shown_estimate(), row.cover.covers())
                == PushDecision::Increase
    };
    if group.reconcile {
        Some(Read::Reconcile)
    } else if row.uncertain {
        Some(Read::Uncertain)
    } else if increase() {
        Some(Read::BeforeIncrease)
    } else {
        None
    }
}
