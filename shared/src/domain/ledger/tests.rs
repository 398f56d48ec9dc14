//! The ledger rules case by case: each op against each lock state, the
//! clamps, and the checks on quantities and manual adjustments.

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
