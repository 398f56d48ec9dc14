//! Pure domain rules: no I/O here, everything is unit-tested without services.

pub mod status;

pub use status::{OrderStatus, StockEffect};
