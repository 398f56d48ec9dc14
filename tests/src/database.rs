//! Reads of a test's own database: a SKU's stock levels, an item's lock,
//! any count, the outbox, the validate report.

use crate::TestEnv;
use sqlx::Row;
use std::time::Duration;

impl TestEnv {
    pub async fn levels(&self, sku: &str) -> (i32, i32, i32) {
        let row = sqlx::query(
            "SELECT listed_stock, locked_stock, available_stock FROM marketplace_stock s
             JOIN variations v ON v.id = s.variation_id WHERE v.sku = $1",
        )
        .bind(sku)
        .fetch_one(&self.db)
        .await
        .expect("stock row");
        (row.get(0), row.get(1), row.get(2))
    }

    pub async fn lock_state(&self, order: &str, item: &str) -> Option<String> {
        sqlx::query_scalar(
            "SELECT lock_status FROM marketplace_stock_locks
             WHERE order_external_id = $1 AND order_item_external_id = $2",
        )
        .bind(order)
        .bind(item)
        .fetch_optional(&self.db)
        .await
        .expect("lock query")
    }

    /// One number from this test's database (`SELECT count(*) …`).
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn outbox_len(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.db)
            .await
            .expect("outbox count")
    }

    pub async fn validate(&self) -> stockfleet::admin::validate::Report {
        stockfleet::admin::validate::validate(&self.db, Duration::from_secs(3600))
            .await
            .expect("validate")
    }
}
