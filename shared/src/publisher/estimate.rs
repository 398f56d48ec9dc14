//! What a decrementing marketplace shows now, as far as we know: the
//! quantity last pushed minus the units of the orders placed on it after
//! that push landed (push_guard.rs has the rule; this is its SQL).
//!
//! Placement, not learning, decides. A push sets an absolute quantity, so an
//! order placed before the push landed was overwritten by it, even when the
//! poller brings it only later; counting it as taken would make us believe
//! the marketplace shows less than it does and skip the decrease it needs.
//! An order we learned before the push landed was placed before it. Of
//! the others, the marketplace's date decides, but dates have whole
//! seconds: an order dated within the second before the landing may have
//! come either side of it. Guessing oversells either way (counted while
//! overwritten: the marketplace shows more than we think and a decrease is
//! skipped; taken as overwritten while decremented: the estimate is high,
//! and the "decrease" pushed to it gives back every order not yet learned at
//! once, 8 to 15 units in the sell-out of tests/tests/oversell.rs). So such
//! a row is *uncertain*: it is counted as taken off, and the publisher reads
//! what the marketplace shows before it decides (push.rs).

use sqlx::{PgPool, Row};
use std::collections::HashMap;

/// The `taken_since_push` column: units of the row's orders (lock rows, any
/// status) placed after its last push landed, and `uncertain_since_push`:
/// one of them may have come just before it. The query names the stock row
/// `s`. A macro so that queries stay static strings.
macro_rules! taken_since_push_column {
    () => {
        "(SELECT COALESCE(sum(k.quantity_locked), 0)::int FROM marketplace_stock_locks k
          LEFT JOIN orders o ON o.marketplace_id = k.marketplace_id
                            AND o.external_id = k.order_external_id
          WHERE k.stock_id = s.id AND k.created_at > s.last_synced_at
            AND COALESCE(o.placed_at, k.created_at) > s.last_synced_at - make_interval(secs => 1))
         AS taken_since_push,
         EXISTS (SELECT 1 FROM marketplace_stock_locks k
          JOIN orders o ON o.marketplace_id = k.marketplace_id AND o.external_id = k.order_external_id
          WHERE k.stock_id = s.id AND k.created_at > s.last_synced_at
            AND o.placed_at > s.last_synced_at - make_interval(secs => 1)
            AND o.placed_at <= s.last_synced_at)
         AS uncertain_since_push"
    };
}
pub(super) use taken_since_push_column;

/// Whether the marketplace takes ordered units off its listing itself
/// (NULL: yes, as every marketplace we serve does). The query names the marketplace `m`.
macro_rules! decrements_on_order_column {
    () => {
        "COALESCE(m.decrements_on_order, true) AS decrements_on_order"
    };
}
pub(super) use decrements_on_order_column;

/// The estimate of every stock row (`None`: nothing pushed yet), for
/// checks that compare it with what the marketplace really shows.
pub async fn shown_estimates(db: &PgPool) -> sqlx::Result<HashMap<i64, Option<i32>>> {
    let rows = sqlx::query(concat!(
        "SELECT s.id, s.last_api_quantity, ",
        decrements_on_order_column!(),
        ", ",
        taken_since_push_column!(),
        " FROM marketplace_stock s JOIN marketplaces m ON m.id = s.marketplace_id"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let estimate = crate::domain::push_guard::estimate_shown(
                row.get("last_api_quantity"),
                row.get("taken_since_push"),
                row.get("decrements_on_order"),
            );
            (row.get("id"), estimate)
        })
        .collect())
}
