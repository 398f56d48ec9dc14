//! How long `stockfleet validate`'s history-chain check takes, against the
//! real PostgreSQL.
//!
//! `cargo bench -p stockfleet-tests --bench history_chain [-- ROWS]`
//!
//! ROWS stock rows (default 10,000) get 100 history rows each, a continuous
//! chain, written with SQL; the figure is the time of one check over all of
//! them (one pass with window functions), and of the whole `validate`.

use std::time::Instant;
use stockfleet::admin::history_chain;
use stockfleet_tests::TestEnv;

const HISTORY_PER_ROW: i32 = 100;

#[tokio::main]
async fn main() {
    let rows: i32 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let env = TestEnv::new().await;
    sqlx::query("INSERT INTO variations (sku) SELECT 'CHAIN-' || g FROM generate_series(1, $1) g")
        .bind(rows)
        .execute(&env.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO marketplace_stock (variation_id, marketplace_id, listed_stock, stock_known)
         SELECT v.id, m.id, $1, true FROM variations v, marketplaces m WHERE m.code = 'backmarket'",
    )
    .bind(HISTORY_PER_ROW)
    .execute(&env.db)
    .await
    .unwrap();
    // Each row counted up one unit at a time: before g - 1, after g.
    sqlx::query(
        "INSERT INTO marketplace_stock_history
             (stock_id, variation_id, marketplace_id, change_type, listed_before, listed_after,
              locked_before, locked_after, available_before, available_after, quantity_change)
         SELECT s.id, s.variation_id, s.marketplace_id, 'topup', g - 1, g, 0, 0, g - 1, g, 1
         FROM marketplace_stock s, generate_series(1, $1) g ORDER BY s.id, g",
    )
    .bind(HISTORY_PER_ROW)
    .execute(&env.db)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&env.db).await.unwrap();
    let history = i64::from(rows) * i64::from(HISTORY_PER_ROW);

    let started = Instant::now();
    let breaks = history_chain::breaks(&env.db).await.unwrap();
    let check = started.elapsed();
    assert!(breaks.is_empty(), "{breaks:?}");
    let started = Instant::now();
    assert!(env.validate().await.is_clean());
    let validate = started.elapsed();
    println!(
        "history chain: {history} history rows over {rows} stock rows checked in {:.2} s ({:.0} history rows/s); whole validate {:.2} s",
        check.as_secs_f64(),
        history as f64 / check.as_secs_f64(),
        validate.as_secs_f64()
    );
}
