//! What a check reports: a broken invariant ([`Violation`]) or something an
//! operator should look at ([`Finding`]). Shared by `validate` and the pool
//! checks, which both fill one report.

use serde::Serialize;

/// One broken invariant on one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    pub invariant: u8,
    pub stock_id: Option<i64>,
    pub detail: String,
}

/// Something an operator should look at, which breaks no invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    pub kind: &'static str,
    pub detail: String,
}
