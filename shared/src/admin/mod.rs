//! Operator actions behind the CLI and the API: invariant checks and
//! repairs, manual stock corrections.

pub mod dlq;
pub mod findings;
pub mod history_chain;
pub mod locks;
pub mod marketplaces;
pub mod orders;
pub mod oversold;
pub mod overview;
pub mod page;
pub mod pool_checks;
pub mod pools;
pub mod queues;
pub mod scope;
pub mod stock;
pub mod syncs;
pub mod tokens;
pub mod validate;
