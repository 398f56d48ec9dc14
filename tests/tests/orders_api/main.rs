//! The orders API against real PostgreSQL and RabbitMQ (and the simulator
//! for status changes): pagination past the first 500 orders, sorting and
//! filters, statistics against a known set of orders, status changes that
//! reach the marketplace (or are refused with 409 before anything is sent,
//! or end failed), and tokens scoped to marketplaces on every endpoint.

mod listing;
mod pages;
mod scoped_tokens;
mod stats;
mod status_changes;

use serde_json::Value;
use stockfleet_tests::TestEnv;

const WOO: &str = "woocommerce";
const BM: &str = "backmarket";

/// `count` orders on `marketplace`, ids `<prefix>-1`…, one item each (SKU
/// `<prefix>-SKU-<n mod 3>`), order n placed n minutes ago with total n.00 EUR
/// (Back Market's `price`, WooCommerce's `total`).
async fn orders(env: &TestEnv, marketplace: &str, prefix: &str, count: i32, status: &str) {
    sqlx::query(
        "WITH placed AS (
             INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw, placed_at)
             SELECT m.id, $2 || '-' || g, $4, $4,
                    jsonb_build_object('price', g || '.00', 'total', g || '.00', 'currency', 'EUR'),
                    now() - g * interval '1 minute'
             FROM marketplaces m, generate_series(1, $3) g WHERE m.code = $1
             RETURNING id, external_id)
         INSERT INTO order_items (order_id, external_id, sku, quantity, status, raw_status)
         SELECT id, '1', $2 || '-SKU-' || (split_part(external_id, '-', 2)::int % 3), 1, $4, $4
         FROM placed",
    )
    .bind(marketplace)
    .bind(prefix)
    .bind(count)
    .bind(status)
    .execute(&env.db)
    .await
    .expect("insert orders");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|order| order["order_id"].as_str().unwrap().to_owned())
        .collect()
}
