//! Storing one fetched page of orders and counting it in the run's summary.

use super::outcome::RunSummary;
use super::store;
use crate::marketplace::MarketplaceOrder;
use crate::marketplace::directory::MarketplaceRow;
use sqlx::PgPool;

pub(super) async fn store_page(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    orders: &[MarketplaceOrder],
    summary: &mut RunSummary,
) -> Result<(), String> {
    summary.fetched += orders.len() as u32;
    let counts = store::store_orders(pool, marketplace, orders)
        .await
        .map_err(|e| format!("storing orders: {e}"))?;
    summary.created += counts.created;
    summary.updated += counts.updated;
    summary.events += counts.events;
    // Left out, not lost: each is logged with its field, and counted here.
    summary.errors += counts.refused;
    Ok(())
}
