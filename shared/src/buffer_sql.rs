//! The buffer rule in force for a stock row (its overrides, else its
//! marketplace's defaults), read in SQL: one definition for every reader
//! (`stockfleet stock show`, the publisher, reconciliation).

use crate::domain::{BufferRule, Rounding};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// The SELECT columns [`buffer_rule`] reads; the query must name the stock row
/// `s` and its marketplace `m`. A macro so that queries stay static strings.
macro_rules! buffer_rule_columns {
    () => {
        "(COALESCE(s.buffer_percentage, m.default_buffer_percentage) * 100)::int AS basis_points,
         COALESCE(s.buffer_min_units, m.default_buffer_min_units) AS min_units,
         COALESCE(s.max_shown, m.default_max_shown) AS max_shown,
         COALESCE(s.buffer_rounding, m.default_buffer_rounding) AS rounding"
    };
}
pub(crate) use buffer_rule_columns;

/// The rule from a row selected with [`buffer_rule_columns!`].
pub(crate) fn buffer_rule(row: &PgRow) -> BufferRule {
    BufferRule {
        basis_points: row.get::<i32, _>("basis_points").clamp(0, 10_000) as u32,
        min_units: row.get::<i32, _>("min_units").max(0) as u32,
        max_shown: row
            .get::<Option<i32>, _>("max_shown")
            .map(|cap| cap.max(0) as u32),
        rounding: row
            .get::<String, _>("rounding")
            .parse()
            .unwrap_or(Rounding::Up),
    }
}
