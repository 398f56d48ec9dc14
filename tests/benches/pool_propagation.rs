//! The cross-marketplace race of a shared pool, measured: from an order seen
//! on one marketplace to the lowered quantity accepted by every other
//! marketplace of its pool, with the worker binaries against the simulator
//! at its default rate limits.
//!
//! `cargo bench -p stockfleet-tests --bench pool_propagation [-- ORDERS]`
//!
//! ORDERS (default 60) orders are placed one at a time, round the three
//! marketplaces, over 10 pooled variations; after each, the two other
//! marketplaces' rows record the window (`pool_propagation_ms`, the same
//! figure as `stockfleet_pool_propagation_seconds`). Prints p50, p99 and max.

use stockfleet_tests::{TestEnv, eventually};

const MARKETPLACES: [&str; 3] = ["backmarket", "refurbed", "woocommerce"];

#[tokio::main]
async fn main() {
    let orders: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(60);
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    // Polls every second so the bench runs quickly; the window starts when
    // the order is seen, so the poll interval is not part of the figure.
    env.poll_every(1).await;
    sqlx::query("UPDATE marketplaces SET default_buffer_percentage = 0")
        .execute(&env.db)
        .await
        .unwrap();
    let skus: Vec<String> = (0..10).map(|n| format!("PROP-{n}")).collect();
    for sku in &skus {
        for marketplace in MARKETPLACES {
            sim.listing(marketplace, sku, 0).await;
        }
    }
    let _workers: Vec<_> = env.spawn_fleet();
    for sku in &skus {
        env.set_stock_on("backmarket", sku, 1000).await;
        for marketplace in &MARKETPLACES[1..] {
            env.set_stock_on(marketplace, sku, 0).await;
        }
        stockfleet::admin::pools::pool(&env.db, sku, None, "bench")
            .await
            .unwrap();
    }
    eventually("every pool shown", || async {
        for sku in &skus {
            for marketplace in MARKETPLACES {
                if sim.quantity(marketplace, sku).await != Some(1000) {
                    return false;
                }
            }
        }
        true
    })
    .await;

    let mut windows = Vec::new();
    for n in 0..orders {
        let (marketplace, sku) = (MARKETPLACES[n % 3], &skus[n % skus.len()]);
        let shown = 1000 - (n / skus.len()) as i32 - 1;
        sim.place(marketplace, sku, 1).await;
        for other in MARKETPLACES.iter().filter(|other| **other != marketplace) {
            let measured = || async {
                sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT s.pool_propagation_ms FROM marketplace_stock s
                     JOIN variations v ON v.id = s.variation_id
                     JOIN marketplaces m ON m.id = s.marketplace_id
                     WHERE v.sku = $1 AND m.code = $2 AND s.pool_propagation_from = $3
                       AND s.last_api_quantity = $4",
                )
                .bind(sku)
                .bind(other)
                .bind(marketplace)
                .bind(shown)
                .fetch_optional(&env.db)
                .await
                .unwrap()
                .flatten()
            };
            eventually(&format!("{other} shows {shown} of {sku}"), || async {
                measured().await.is_some()
            })
            .await;
            windows.push(measured().await.unwrap());
        }
    }
    windows.sort_unstable();
    let at =
        |q: f64| windows[((windows.len() as f64 * q).ceil() as usize).clamp(1, windows.len()) - 1];
    println!(
        "{} windows ({orders} orders, 2 other marketplaces each): p50 {} ms, p99 {} ms, max {} ms",
        windows.len(),
        at(0.50),
        at(0.99),
        windows[windows.len() - 1]
    );
}
