//! History rows as column arrays, written with one `INSERT … SELECT FROM
//! unnest` by the ledger, the publisher and the operators' corrections.

use super::plan::HistoryRow;
use crate::db::PgQuery;
use crate::domain::ledger::LevelChange;
use sqlx::{AssertSqlSafe, PgConnection};
use std::sync::LazyLock;

/// History rows as column arrays, for one `INSERT … SELECT FROM unnest`.
#[derive(Default)]
pub(crate) struct HistoryColumns {
    stock_ids: Vec<i64>,
    variation_ids: Vec<i64>,
    marketplace_ids: Vec<i32>,
    change_types: Vec<&'static str>,
    listed_before: Vec<i32>,
    listed_after: Vec<i32>,
    locked_before: Vec<i32>,
    locked_after: Vec<i32>,
    quantities: Vec<i32>,
    orders: Vec<Option<String>>,
    items: Vec<Option<String>>,
    references: Vec<Option<String>>,
    actors: Vec<String>,
    notes: Vec<Option<String>>,
}

impl HistoryColumns {
    pub(super) fn push(&mut self, row: &HistoryRow) {
        self.add(
            (row.stock_id, row.variation_id, row.marketplace_id),
            &row.change,
            (Some(row.order_id.clone()), Some(row.item_id.clone())),
            Some(row.reference.clone()),
            "system",
        );
    }

    /// Adds one history row: `row` is (stock id, variation id, marketplace id).
    pub(crate) fn add(
        &mut self,
        row: (i64, i64, i32),
        change: &LevelChange,
        order_item: (Option<String>, Option<String>),
        reference: Option<String>,
        actor: &str,
    ) {
        self.stock_ids.push(row.0);
        self.variation_ids.push(row.1);
        self.marketplace_ids.push(row.2);
        self.change_types.push(change.change_type.as_str());
        self.listed_before.push(change.before.listed);
        self.listed_after.push(change.after.listed);
        self.locked_before.push(change.before.locked);
        self.locked_after.push(change.after.locked);
        self.quantities.push(change.quantity);
        self.orders.push(order_item.0);
        self.items.push(order_item.1);
        self.references.push(reference);
        self.actors.push(actor.to_owned());
        self.notes.push(change.note.clone());
    }

    pub(crate) async fn insert(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        if self.stock_ids.is_empty() {
            return Ok(());
        }
        static SQL: LazyLock<String> = LazyLock::new(|| HistoryColumns::insert_sql(1));
        self.bind(sqlx::query(AssertSqlSafe(SQL.as_str())))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The insert, its 14 arrays bound from `$first` on: alone, or as one
    /// part of the ledger's write statement (`writes::write_batch`).
    pub(super) fn insert_sql(first: usize) -> String {
        let arrays = [
            "bigint", "bigint", "int", "text", "int", "int", "int", "int", "int", "text", "text",
            "text", "text", "text",
        ]
        .iter()
        .enumerate()
        .map(|(n, kind)| format!("${}::{kind}[]", first + n))
        .collect::<Vec<_>>()
        .join(", ");
        format!(
            "INSERT INTO marketplace_stock_history
                 (stock_id, variation_id, marketplace_id, change_type,
                  listed_before, listed_after, locked_before, locked_after,
                  available_before, available_after, quantity_change,
                  order_external_id, order_item_external_id, reference_id, actor, notes)
             SELECT k.stock_id, k.variation_id, k.marketplace_id, k.change_type,
                    k.lb, k.la, k.kb, k.ka, GREATEST(k.lb - k.kb, 0), GREATEST(k.la - k.ka, 0), k.q,
                    k.o, k.i, k.r, k.actor, k.notes
             FROM unnest({arrays})
                  WITH ORDINALITY
                  AS k(stock_id, variation_id, marketplace_id, change_type, lb, la, kb, ka, q,
                       o, i, r, actor, notes, n)
             ORDER BY k.n"
        )
    }

    /// Binds the 14 arrays, in [`Self::insert_sql`]'s order.
    pub(super) fn bind(self, query: PgQuery) -> PgQuery {
        query
            .bind(self.stock_ids)
            .bind(self.variation_ids)
            .bind(self.marketplace_ids)
            .bind(self.change_types)
            .bind(self.listed_before)
            .bind(self.listed_after)
            .bind(self.locked_before)
            .bind(self.locked_after)
            .bind(self.quantities)
            .bind(self.orders)
            .bind(self.items)
            .bind(self.references)
            .bind(self.actors)
            .bind(self.notes)
    }
}
