//! The stock ledger rules of design §4: lock, consume and release one order
//! item against one stock row. Pure functions over values; the database layer
//! loads the row and the item's lock, calls [`apply`], and writes back what it
//! returns.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Listed and locked units of one (variation, marketplace) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StockLevels {
    pub listed: i32,
    pub locked: i32,
}

impl StockLevels {
    pub fn new(listed: i32, locked: i32) -> Self {
        Self { listed, locked }
    }

    /// What can still be sold: never negative, whatever the counters say.
    pub fn available(self) -> i32 {
        (self.listed - self.locked).max(0)
    }
}

/// State of an order item's lock row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    Locked,
    Released,
    Consumed,
}

impl LockState {
    pub fn as_str(self) -> &'static str {
        match self {
            LockState::Locked => "locked",
            LockState::Released => "released",
            LockState::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [LockState::Locked, LockState::Released, LockState::Consumed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        self != LockState::Locked
    }
}

/// An order item's lock row as the ledger sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub state: LockState,
    pub quantity: i32,
}

/// What an order event asks of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOp {
    Lock,
    Consume,
    Release,
}

/// The kinds of change recorded in `marketplace_stock_history.change_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    OrderCreated,
    OrderCompleted,
    OrderCancelled,
    Topup,
    Manual,
    Reconciliation,
    ApiSync,
    Lock,
    Unlock,
    /// A row's units moved into its variation's pool.
    Pool,
    /// A pool's units given back to its rows.
    Unpool,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::OrderCreated => "order_created",
            ChangeType::OrderCompleted => "order_completed",
            ChangeType::OrderCancelled => "order_cancelled",
            ChangeType::Topup => "topup",
            ChangeType::Manual => "manual",
            ChangeType::Reconciliation => "reconciliation",
            ChangeType::ApiSync => "api_sync",
            ChangeType::Lock => "lock",
            ChangeType::Unlock => "unlock",
            ChangeType::Pool => "pool",
            ChangeType::Unpool => "unpool",
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One history entry: the row's levels before and after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelChange {
    pub change_type: ChangeType,
    pub before: StockLevels,
    pub after: StockLevels,
    /// The units the change was about (the item quantity, the top-up…).
    pub quantity: i32,
    pub note: Option<String>,
}

/// What the lock row of the item becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWrite {
    Unchanged,
    Insert(Lock),
    /// The lock moves from `locked` to a terminal state.
    Finish(LockState),
}

/// The outcome of applying one op to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub levels: StockLevels,
    pub lock: LockWrite,
    /// `None` when the stock row did not change (duplicates, tombstones).
    pub change: Option<LevelChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("quantity must be a positive number of units, got {0}")]
    NonPositiveQuantity(i64),
    #[error("quantity {0} is too large for one order item")]
    QuantityTooLarge(i64),
    #[error("listed stock cannot become negative ({listed} + {delta})")]
    NegativeListed { listed: i32, delta: i32 },
    #[error("listed stock {listed} + {delta} is beyond the largest count a row holds")]
    ListedOverflow { listed: i32, delta: i32 },
}

/// The largest quantity one order item may carry; anything above is bad input.
pub const MAX_ITEM_QUANTITY: i64 = 100_000;

/// Validates an item quantity from the outside world.
pub fn item_quantity(raw: i64) -> Result<i32, LedgerError> {
    match raw {
        q if q <= 0 => Err(LedgerError::NonPositiveQuantity(q)),
        q if q > MAX_ITEM_QUANTITY => Err(LedgerError::QuantityTooLarge(q)),
        q => Ok(q as i32),
    }
}

/// Applies `op` for an item of `quantity` units whose lock row is `lock`
/// (None when the item was never seen) to a stock row at `levels`.
///
/// Idempotent: an op that finds the item already in the state it would
/// produce, or in a terminal state, changes nothing.
pub fn apply(levels: StockLevels, lock: Option<Lock>, op: ItemOp, quantity: i32) -> Transition {
    let unchanged = Transition {
        levels,
        lock: LockWrite::Unchanged,
        change: None,
    };
    match (op, lock) {
        (ItemOp::Lock, None) => {
            let after = StockLevels::new(levels.listed, levels.locked + quantity);
            Transition {
                levels: after,
                lock: LockWrite::Insert(Lock {
                    state: LockState::Locked,
                    quantity,
                }),
                change: Some(LevelChange {
                    change_type: ChangeType::Lock,
                    before: levels,
                    after,
                    quantity,
                    note: None,
                }),
            }
        }
        (
            ItemOp::Consume,
            Some(Lock {
                state: LockState::Locked,
                quantity: held,
            }),
        ) => {
            let (after, note) = reduce(unlock(levels, held), held);
            Transition {
                levels: after,
                lock: LockWrite::Finish(LockState::Consumed),
                change: Some(LevelChange {
                    change_type: ChangeType::OrderCompleted,
                    before: levels,
                    after,
                    quantity: held,
                    note,
                }),
            }
        }
        (ItemOp::Consume, None) => {
            let (after, clamp_note) = reduce(levels, quantity);
            let note = match clamp_note {
                Some(clamp) => format!("no lock existed; {clamp}"),
                None => "no lock existed".to_owned(),
            };
            Transition {
                levels: after,
                lock: LockWrite::Insert(Lock {
                    state: LockState::Consumed,
                    quantity,
                }),
                change: Some(LevelChange {
                    change_type: ChangeType::OrderCompleted,
                    before: levels,
                    after,
                    quantity,
                    note: Some(note),
                }),
            }
        }
        (
            ItemOp::Release,
            Some(Lock {
                state: LockState::Locked,
                quantity: held,
            }),
        ) => {
            let after = unlock(levels, held);
            Transition {
                levels: after,
                lock: LockWrite::Finish(LockState::Released),
                change: Some(LevelChange {
                    change_type: ChangeType::OrderCancelled,
                    before: levels,
                    after,
                    quantity: held,
                    note: None,
                }),
            }
        }
        // A tombstone, so that a late `order.created` does not lock.
        (ItemOp::Release, None) => Transition {
            levels,
            lock: LockWrite::Insert(Lock {
                state: LockState::Released,
                quantity,
            }),
            change: None,
        },
        // Already locked, or in a terminal state: nothing to do.
        (ItemOp::Lock, Some(_)) | (ItemOp::Consume | ItemOp::Release, Some(_)) => unchanged,
    }
}

/// Returns `held` units of the locked counter; never below zero.
fn unlock(levels: StockLevels, held: i32) -> StockLevels {
    StockLevels::new(levels.listed, (levels.locked - held).max(0))
}

/// Takes `quantity` units off listed stock, clamping at zero and saying so.
fn reduce(levels: StockLevels, quantity: i32) -> (StockLevels, Option<String>) {
    if quantity > levels.listed {
        let note = format!(
            "listed stock clamped at 0: reduction of {quantity} exceeded listed {}",
            levels.listed
        );
        (StockLevels::new(0, levels.locked), Some(note))
    } else {
        (
            StockLevels::new(levels.listed - quantity, levels.locked),
            None,
        )
    }
}

/// A manual correction or top-up of listed stock by an operator.
pub fn adjust_listed(
    levels: StockLevels,
    delta: i32,
    change_type: ChangeType,
) -> Result<LevelChange, LedgerError> {
    let (listed, delta_) = (levels.listed, delta);
    let listed = match listed.checked_add(delta) {
        None => {
            return Err(LedgerError::ListedOverflow {
                listed,
                delta: delta_,
            });
        }
        Some(after) if after < 0 => return Err(LedgerError::NegativeListed { listed, delta }),
        Some(after) => after,
    };
    Ok(LevelChange {
        change_type,
        before: levels,
        after: StockLevels::new(listed, levels.locked),
        quantity: delta,
        note: None,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
