//! What the locker and reducer plan for a batch before writing it: the
//! items to apply, the stock rows they touch, the locks to insert and the
//! history rows to write.

use crate::domain::ledger::{ItemOp, LevelChange, LockState, StockLevels};

/// One order item to apply, after validation.
pub(super) struct Planned {
    pub(super) message: usize,
    pub(super) marketplace_id: i32,
    pub(super) sku: String,
    pub(super) order_id: String,
    pub(super) item_id: String,
    pub(super) op: ItemOp,
    pub(super) quantity: i32,
}

pub(super) type LockKey = (i32, String, String);

pub(super) struct StockRow {
    pub(super) id: i64,
    pub(super) variation_id: i64,
    pub(super) sku: String,
    pub(super) levels: StockLevels,
    pub(super) changed: bool,
}

pub(super) struct LockInsert {
    pub(super) stock_id: i64,
    pub(super) quantity: i32,
    pub(super) state: LockState,
    pub(super) was_locked: bool,
}

pub(super) struct HistoryRow {
    pub(super) stock_id: i64,
    pub(super) variation_id: i64,
    pub(super) marketplace_id: i32,
    pub(super) change: LevelChange,
    pub(super) order_id: String,
    pub(super) item_id: String,
    pub(super) reference: String,
}
