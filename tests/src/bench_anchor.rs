//! The raw-SQL anchor of `locker_throughput`: the five writes the locker
//! makes per order item (a dedup row, a lock row, the counter update, a
//! history row, an outbox row) as plain statements on the same schema, one
//! statement per write as pgbench runs them, so the locker's figure is read
//! against what this database allows in the same run on the same machine.
//! Each client writes its own share of the rows: the anchor is the
//! database's limit for these writes, with no client waiting on another's
//! row lock (the locker's batches, which touch every row, do wait).

use sqlx::{Connection, PgConnection, PgPool, Row};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use stockfleet::bus::Envelope;
use stockfleet::events::{STOCK_CHANGED, StockChanged};

/// One stock row the anchor's items are spread over.
#[derive(Debug, Clone, Copy)]
struct AnchorRow {
    stock_id: i64,
    variation_id: i64,
    marketplace_id: i32,
}

/// Runs `items` items over the stock rows of `skus`, `per_transaction`
/// items per transaction, `clients` connections at once (client c on the
/// rows c, c + clients, …); returns items/s.
pub async fn items_per_second(
    db: &PgPool,
    database_url: &str,
    skus: &[String],
    items: usize,
    per_transaction: usize,
    clients: usize,
) -> f64 {
    sqlx::query("CREATE TABLE IF NOT EXISTS anchor_dedup (message_id UUID PRIMARY KEY)")
        .execute(db)
        .await
        .expect("dedup table");
    let found = sqlx::query(
        "SELECT s.id, s.variation_id, s.marketplace_id FROM unnest($1::text[]) WITH ORDINALITY AS k(sku, n)
         JOIN variations v ON v.sku = k.sku JOIN marketplace_stock s ON s.variation_id = v.id
         ORDER BY k.n",
    )
    .bind(skus)
    .fetch_all(db)
    .await
    .expect("stock rows");
    let rows: Vec<AnchorRow> = found
        .iter()
        .map(|row| AnchorRow {
            stock_id: row.get("id"),
            variation_id: row.get("variation_id"),
            marketplace_id: row.get("marketplace_id"),
        })
        .collect();
    assert_eq!(rows.len(), skus.len(), "every SKU has its stock row");
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients_running = tokio::task::JoinSet::new();
    for client in 0..clients {
        let mut conn = PgConnection::connect(database_url).await.expect("connect");
        let own: Vec<AnchorRow> = rows.iter().skip(client).step_by(clients).copied().collect();
        let next = next.clone();
        clients_running.spawn(async move {
            loop {
                let first = next.fetch_add(per_transaction, Ordering::Relaxed);
                if first >= items {
                    break;
                }
                // Rows written in id order, as the locker locks them.
                let mut batch: Vec<usize> = (first..items.min(first + per_transaction)).collect();
                batch.sort_by_key(|n| own[n % own.len()].stock_id);
                let mut tx = conn.begin().await.expect("begin");
                for n in batch {
                    write_item(&mut tx, own[n % own.len()], n).await;
                }
                tx.commit().await.expect("commit");
            }
        });
    }
    while let Some(done) = clients_running.join_next().await {
        done.expect("anchor client");
    }
    items as f64 / started.elapsed().as_secs_f64()
}

/// The five writes of one item, each its own statement.
async fn write_item(conn: &mut PgConnection, row: AnchorRow, n: usize) {
    let message_id = uuid::Uuid::now_v7();
    let order = format!("A{n}");
    let item = format!("{order}-1");
    sqlx::query("INSERT INTO anchor_dedup (message_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(message_id)
        .execute(&mut *conn)
        .await
        .expect("dedup row");
    sqlx::query(
        "INSERT INTO marketplace_stock_locks
             (stock_id, marketplace_id, order_external_id, order_item_external_id,
              quantity_locked, lock_status, locked_at)
         VALUES ($1, $2, $3, $4, 1, 'locked', now())",
    )
    .bind(row.stock_id)
    .bind(row.marketplace_id)
    .bind(&order)
    .bind(&item)
    .execute(&mut *conn)
    .await
    .expect("lock row");
    let after = sqlx::query(
        "UPDATE marketplace_stock SET locked_stock = locked_stock + 1, updated_at = now()
         WHERE id = $1 RETURNING listed_stock, locked_stock",
    )
    .bind(row.stock_id)
    .fetch_one(&mut *conn)
    .await
    .expect("counter update");
    let (listed, locked): (i32, i32) = (after.get(0), after.get(1));
    sqlx::query(
        "INSERT INTO marketplace_stock_history
             (stock_id, variation_id, marketplace_id, change_type, listed_before, listed_after,
              locked_before, locked_after, available_before, available_after, quantity_change,
              order_external_id, order_item_external_id, reference_id, actor)
         VALUES ($1, $2, $3, 'lock', $4, $4, $5 - 1, $5, GREATEST($4 - $5 + 1, 0),
                 GREATEST($4 - $5, 0), 1, $6, $7, $8, 'system')",
    )
    .bind(row.stock_id)
    .bind(row.variation_id)
    .bind(row.marketplace_id)
    .bind(listed)
    .bind(locked)
    .bind(&order)
    .bind(&item)
    .bind(message_id.to_string())
    .execute(&mut *conn)
    .await
    .expect("history row");
    let payload = StockChanged {
        stock_id: row.stock_id,
        variation_id: row.variation_id,
        sku: String::new(),
        listed,
        locked,
        available: (listed - locked).max(0),
        change_type: "lock".to_owned(),
        origin: None,
    };
    let envelope = Envelope::new(STOCK_CHANGED, crate::MARKETPLACE, &payload);
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, envelope)
         VALUES ($1, 'events', $2, $3)",
    )
    .bind(envelope.id)
    .bind(envelope.event_routing_key())
    .bind(serde_json::to_value(&envelope).expect("envelope is JSON"))
    .execute(&mut *conn)
    .await
    .expect("outbox row");
}
