//! Pure domain rules: no I/O here, everything is unit-tested without services.

pub mod buffer;
pub mod input;
pub mod ledger;
pub mod listing;
pub mod messages;
pub mod order_commands;
pub mod outage;
pub mod poll_pace;
pub mod pool;
pub mod push_guard;
pub mod status;
pub mod status_change;
pub mod trigger;

pub use buffer::{BufferRule, Rounding};
pub use ledger::{ChangeType, ItemOp, LevelChange, Lock, LockState, LockWrite, StockLevels};
pub use status::{OrderStatus, StockEffect};
