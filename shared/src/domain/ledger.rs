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
mod tests {
    use super::*;

    const LOCKED_2: Lock = Lock {
        state: LockState::Locked,
        quantity: 2,
    };

    #[test]
    fn lock_of_a_new_item_raises_locked_stock() {
        let t = apply(StockLevels::new(10, 1), None, ItemOp::Lock, 2);
        assert_eq!(t.levels, StockLevels::new(10, 3));
        assert_eq!(t.lock, LockWrite::Insert(LOCKED_2));
        let change = t.change.unwrap();
        assert_eq!(change.change_type, ChangeType::Lock);
        assert_eq!(change.before.available(), 9);
        assert_eq!(change.after.available(), 7);
    }

    #[test]
    fn lock_of_a_known_item_is_a_no_op_in_every_state() {
        for state in [LockState::Locked, LockState::Released, LockState::Consumed] {
            let lock = Lock { state, quantity: 2 };
            let t = apply(StockLevels::new(10, 2), Some(lock), ItemOp::Lock, 2);
            assert_eq!(t.levels, StockLevels::new(10, 2));
            assert_eq!(t.lock, LockWrite::Unchanged);
            assert_eq!(t.change, None);
        }
    }

    #[test]
    fn consume_of_a_lock_moves_it_out_of_listed_and_locked() {
        let t = apply(StockLevels::new(10, 2), Some(LOCKED_2), ItemOp::Consume, 2);
        assert_eq!(t.levels, StockLevels::new(8, 0));
        assert_eq!(t.lock, LockWrite::Finish(LockState::Consumed));
        assert_eq!(t.change.unwrap().change_type, ChangeType::OrderCompleted);
    }

    #[test]
    fn consume_uses_the_locked_quantity_not_the_message_quantity() {
        let t = apply(StockLevels::new(10, 2), Some(LOCKED_2), ItemOp::Consume, 5);
        assert_eq!(t.levels, StockLevels::new(8, 0));
    }

    #[test]
    fn consume_without_a_lock_reduces_listed_and_leaves_a_consumed_row() {
        let t = apply(StockLevels::new(10, 0), None, ItemOp::Consume, 3);
        assert_eq!(t.levels, StockLevels::new(7, 0));
        assert_eq!(
            t.lock,
            LockWrite::Insert(Lock {
                state: LockState::Consumed,
                quantity: 3
            })
        );
        assert_eq!(t.change.unwrap().note.as_deref(), Some("no lock existed"));
    }

    #[test]
    fn consume_past_zero_clamps_and_says_so() {
        let t = apply(StockLevels::new(1, 0), None, ItemOp::Consume, 3);
        assert_eq!(t.levels, StockLevels::new(0, 0));
        let note = t.change.unwrap().note.unwrap();
        assert!(note.contains("clamped at 0"), "{note}");

        let t = apply(StockLevels::new(1, 2), Some(LOCKED_2), ItemOp::Consume, 2);
        assert_eq!(t.levels, StockLevels::new(0, 0));
        assert!(t.change.unwrap().note.unwrap().contains("clamped"));
    }

    #[test]
    fn release_of_a_lock_returns_its_units() {
        let t = apply(StockLevels::new(10, 2), Some(LOCKED_2), ItemOp::Release, 2);
        assert_eq!(t.levels, StockLevels::new(10, 0));
        assert_eq!(t.lock, LockWrite::Finish(LockState::Released));
        assert_eq!(t.change.unwrap().change_type, ChangeType::OrderCancelled);
    }

    #[test]
    fn release_without_a_lock_leaves_a_tombstone_and_no_change() {
        let t = apply(StockLevels::new(10, 0), None, ItemOp::Release, 1);
        assert_eq!(t.levels, StockLevels::new(10, 0));
        assert_eq!(
            t.lock,
            LockWrite::Insert(Lock {
                state: LockState::Released,
                quantity: 1
            })
        );
        assert_eq!(t.change, None);
    }

    #[test]
    fn terminal_states_never_change() {
        for state in [LockState::Released, LockState::Consumed] {
            for op in [ItemOp::Lock, ItemOp::Consume, ItemOp::Release] {
                let lock = Lock { state, quantity: 2 };
                let t = apply(StockLevels::new(5, 0), Some(lock), op, 2);
                assert_eq!(t.lock, LockWrite::Unchanged, "{state:?} {op:?}");
                assert_eq!(t.levels, StockLevels::new(5, 0));
            }
        }
    }

    #[test]
    fn available_is_never_negative() {
        assert_eq!(StockLevels::new(1, 3).available(), 0);
        assert_eq!(StockLevels::new(5, 3).available(), 2);
    }

    #[test]
    fn item_quantities_are_validated() {
        assert_eq!(item_quantity(0), Err(LedgerError::NonPositiveQuantity(0)));
        assert_eq!(item_quantity(-4), Err(LedgerError::NonPositiveQuantity(-4)));
        assert!(item_quantity(MAX_ITEM_QUANTITY + 1).is_err());
        assert_eq!(item_quantity(3), Ok(3));
    }

    #[test]
    fn manual_adjustments_refuse_negative_listed() {
        let change = adjust_listed(StockLevels::new(3, 1), 5, ChangeType::Topup).unwrap();
        assert_eq!(change.after, StockLevels::new(8, 1));
        assert!(adjust_listed(StockLevels::new(3, 1), -4, ChangeType::Manual).is_err());
    }
}

#[cfg(test)]
mod properties {
    //! Random event streams (duplicated, shuffled) keep the invariants of
    //! design §7 and end where one ordered delivery ends.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Default, Clone, PartialEq)]
    struct Row {
        levels: StockLevels,
        locks: BTreeMap<usize, Lock>,
        history: Vec<LevelChange>,
    }

    impl Row {
        fn with_listed(listed: i32) -> Self {
            Row {
                levels: StockLevels::new(listed, 0),
                ..Row::default()
            }
        }

        fn deliver(&mut self, (item, op, quantity): (usize, ItemOp, i32)) {
            let before = self.locks.get(&item).copied();
            let t = apply(self.levels, before, op, quantity);
            match t.lock {
                LockWrite::Unchanged => {}
                LockWrite::Insert(lock) => {
                    assert!(before.is_none(), "insert over an existing lock");
                    self.locks.insert(item, lock);
                }
                LockWrite::Finish(state) => {
                    let lock = self.locks.get_mut(&item).expect("finish without a lock");
                    assert_eq!(lock.state, LockState::Locked, "a terminal lock changed");
                    lock.state = state;
                }
            }
            if let Some(change) = &t.change {
                assert_eq!(change.before, self.levels);
                assert_eq!(change.after, t.levels);
            }
            self.history.extend(t.change);
            self.levels = t.levels;
            self.check_invariants();
        }

        fn check_invariants(&self) {
            let locked: i32 = self
                .locks
                .values()
                .filter(|lock| lock.state == LockState::Locked)
                .map(|lock| lock.quantity)
                .sum();
            assert_eq!(self.levels.locked, locked, "invariant 1");
            assert!(
                self.levels.listed >= 0 && self.levels.locked >= 0,
                "invariant 2"
            );
            let replayed = self.history.iter().fold((0, 0), |(listed, locked), c| {
                (
                    listed + c.after.listed - c.before.listed,
                    locked + c.after.locked - c.before.locked,
                )
            });
            let start = self.history.first().map_or(self.levels, |c| c.before);
            assert_eq!(
                (start.listed + replayed.0, start.locked + replayed.1),
                (self.levels.listed, self.levels.locked),
                "invariant 4"
            );
        }
    }

    /// Per item: created (lock), then shipped (consume), cancelled (release) or nothing.
    fn lifecycles() -> impl Strategy<Value = Vec<(usize, ItemOp, i32)>> {
        prop::collection::vec((1i32..5, 0u8..3), 1..8).prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .flat_map(|(item, (quantity, end))| {
                    let mut events = vec![(item, ItemOp::Lock, quantity)];
                    match end {
                        0 => events.push((item, ItemOp::Consume, quantity)),
                        1 => events.push((item, ItemOp::Release, quantity)),
                        _ => {}
                    }
                    events
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn duplicated_and_shuffled_delivery_ends_like_ordered_delivery(
            events in lifecycles(),
            listed in 0i32..30,
            duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            seed in any::<u64>(),
        ) {
            let mut ordered = Row::with_listed(listed);
            events.iter().copied().for_each(|e| ordered.deliver(e));

            let mut stream = events.clone();
            stream.extend(duplicates.iter().map(|i| events[i.index(events.len())]));
            // Fisher–Yates with a small LCG: proptest shrinks the seed.
            let mut state = seed;
            for i in (1..stream.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                stream.swap(i, (state >> 33) as usize % (i + 1));
            }
            let mut shuffled = Row::with_listed(listed);
            stream.into_iter().for_each(|e| shuffled.deliver(e));

            prop_assert_eq!(shuffled.levels, ordered.levels);
            prop_assert_eq!(&shuffled.locks, &ordered.locks);
        }

        #[test]
        fn any_op_sequence_keeps_the_invariants(
            ops in prop::collection::vec((0usize..4, 0u8..3, 1i32..5), 0..40),
            listed in 0i32..20,
        ) {
            let mut row = Row::with_listed(listed);
            for (item, op, quantity) in ops {
                let op = [ItemOp::Lock, ItemOp::Consume, ItemOp::Release][usize::from(op)];
                row.deliver((item, op, quantity));
            }
        }
    }
}
