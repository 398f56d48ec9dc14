//! Operator actions behind the CLI (and later the API): invariant checks and
//! repairs, manual stock corrections.

pub mod dlq;
pub mod marketplaces;
pub mod queues;
pub mod stock;
pub mod validate;
