//! Upgrading a database that already holds history: a migration that derives
//! a column from existing rows must derive it right, or the fleet misreads
//! the seller's past after the upgrade.

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgPool;
use stockfleet::db::MIGRATOR;

/// A database of its own, dropped at the end (it is not a `TestEnv`'s: it
/// starts at an older schema).
struct OwnDatabase {
    url: String,
    name: String,
}

impl OwnDatabase {
    async fn create() -> Self {
        let name = format!(
            "sft_upgrade_{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        sqlx::Postgres::create_database(&url).await.unwrap();
        Self { url, name }
    }

    /// Applies the migrations older than `version`.
    async fn migrate_before(&self, version: i64) -> PgPool {
        let older = Migrator::with_migrations(
            MIGRATOR
                .iter()
                .filter(|migration| migration.version < version)
                .cloned()
                .collect(),
        );
        let db = PgPool::connect(&self.url).await.unwrap();
        older.run(&db).await.unwrap();
        db
    }

    async fn drop(self, db: PgPool) {
        db.close().await;
        stockfleet_tests::drop_database(&self.name).await.unwrap();
    }
}

#[tokio::test]
async fn the_upgrade_marks_the_items_already_locked_so_the_guard_waits_only_for_new_ones() {
    let database = OwnDatabase::create().await;
    let db = database.migrate_before(141).await;
    // History: O-1's item was locked (then consumed); O-2's item was stored
    // but the locker had not applied it when the fleet was stopped.
    sqlx::raw_sql(
        "INSERT INTO variations (sku) VALUES ('UPG-1');
         INSERT INTO marketplace_stock (variation_id, marketplace_id, listed_stock)
         SELECT v.id, m.id, 5 FROM variations v, marketplaces m WHERE m.code = 'backmarket';
         INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw)
         SELECT m.id, o, s, '', '{}' FROM marketplaces m,
                (VALUES ('O-1', 'shipped'), ('O-2', 'pending')) AS x(o, s)
         WHERE m.code = 'backmarket';
         INSERT INTO order_items (order_id, external_id, sku, variation_id, quantity, status, raw_status)
         SELECT o.id, '1', 'UPG-1', v.id, 1, o.status, '' FROM orders o, variations v;
         INSERT INTO marketplace_stock_locks (stock_id, marketplace_id, order_external_id,
             order_item_external_id, quantity_locked, lock_status, consumed_at)
         SELECT s.id, s.marketplace_id, 'O-1', '1', 1, 'consumed', now() FROM marketplace_stock s;",
    )
    .execute(&db)
    .await
    .unwrap();

    stockfleet::db::migrate(&database.url).await.unwrap();

    let marked: Vec<(String, bool)> = sqlx::query_as(
        "SELECT o.external_id, i.lock_applied FROM order_items i
         JOIN orders o ON o.id = i.order_id ORDER BY o.external_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        marked,
        vec![("O-1".to_owned(), true), ("O-2".to_owned(), false)]
    );
    database.drop(db).await;
}
