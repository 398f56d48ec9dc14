//! Stores fetched orders and, in the same transaction, puts the events and
//! commands they cause into the outbox: `order.created` on first sight,
//! `order.status_changed` on every normalised status change (order or item),
//! one `accept_orderline` command per line that needs acceptance.
//!
//! Concurrent syncs of one marketplace (new and modified run side by side)
//! meet on the order row: the first insert wins, later ones compare statuses
//! under `FOR UPDATE`, so each change is announced exactly once.

use crate::bus::Envelope;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::OrderStatus;
use crate::events::{
    ACCEPT_ORDERLINE, AcceptOrderline, ORDER_CREATED, ORDER_STATUS_CHANGED, OrderEvent,
    OrderEventItem, marketplace_command_key,
};
use crate::marketplace::directory::MarketplaceRow;
use crate::marketplace::{CareCase, MarketplaceOrder, MarketplaceOrderItem};
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{BTreeSet, HashMap};

/// What one page changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageCounts {
    pub created: u32,
    pub updated: u32,
    pub events: u32,
}

/// An item as stored before this page.
struct StoredItem {
    status: Option<OrderStatus>,
    variation_id: Option<i64>,
    accept_requested: bool,
}

pub async fn store_orders(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    orders: &[MarketplaceOrder],
) -> sqlx::Result<PageCounts> {
    let mut tx = pool.begin().await?;
    let pairs: BTreeSet<(i32, &str)> = orders
        .iter()
        .flat_map(|order| &order.items)
        .filter(|item| !item.sku.is_empty())
        .map(|item| (marketplace.id, item.sku.as_str()))
        .collect();
    let variations = crate::ledger::resolve_skus(&mut *tx, &pairs).await?;
    let variation_of =
        |item: &MarketplaceOrderItem| variations.get(&(marketplace.id, item.sku.clone())).copied();
    // One order row lock at a time, in id order, so concurrent runs never deadlock.
    let mut sorted: Vec<&MarketplaceOrder> = orders.iter().collect();
    sorted.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    sorted.dedup_by(|a, b| a.external_id == b.external_id);

    let mut counts = PageCounts::default();
    let mut messages = Vec::new();
    for order in sorted {
        store_order(
            &mut tx,
            marketplace,
            order,
            &variation_of,
            &mut counts,
            &mut messages,
        )
        .await?;
    }
    counts.events = messages.len() as u32;
    outbox::enqueue(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok(counts)
}

async fn store_order(
    conn: &mut PgConnection,
    marketplace: &MarketplaceRow,
    order: &MarketplaceOrder,
    variation_of: &impl Fn(&MarketplaceOrderItem) -> Option<i64>,
    counts: &mut PageCounts,
    messages: &mut Vec<OutboxMessage>,
) -> sqlx::Result<()> {
    let items: Vec<&MarketplaceOrderItem> = order
        .items
        .iter()
        .filter(|item| {
            let usable = item.quantity > 0;
            if !usable {
                tracing::warn!(marketplace = %marketplace.code, order = %order.external_id,
                    item = %item.external_id, "order item with quantity 0 ignored");
            }
            usable
        })
        .collect();
    let has_unknown_sku = items.iter().any(|item| variation_of(item).is_none());
    let status = order.status.map(OrderStatus::as_str);
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO orders (marketplace_id, external_id, status, raw_status, raw, delivery_note_url,
                             label_url, has_unknown_sku, placed_at, marketplace_modified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (marketplace_id, external_id) DO NOTHING
         RETURNING id",
    )
    .bind(marketplace.id)
    .bind(&order.external_id)
    .bind(status)
    .bind(&order.raw_status)
    .bind(&order.raw)
    .bind(&order.delivery_note_url)
    .bind(&order.label_url)
    .bind(has_unknown_sku)
    .bind(order.created_at)
    .bind(order.modified_at)
    .fetch_optional(&mut *conn)
    .await?;

    let (order_id, previous_status, stored) = match inserted {
        Some(id) => {
            counts.created += 1;
            (id, None, HashMap::new())
        }
        None => {
            let row = sqlx::query(
                "SELECT id, status, delivery_note_url, label_url FROM orders
                 WHERE marketplace_id = $1 AND external_id = $2 FOR UPDATE",
            )
            .bind(marketplace.id)
            .bind(&order.external_id)
            .fetch_one(&mut *conn)
            .await?;
            let id: i64 = row.get("id");
            let previous = parse_status(row.get("status"));
            let documents_changed = row.get::<Option<String>, _>("delivery_note_url")
                != order.delivery_note_url
                || row.get::<Option<String>, _>("label_url") != order.label_url;
            sqlx::query(
                "UPDATE orders SET status = $2, raw_status = $3, raw = $4, delivery_note_url = $5,
                        label_url = $6, has_unknown_sku = $7, marketplace_modified_at = $8, updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(&order.raw_status)
            .bind(&order.raw)
            .bind(&order.delivery_note_url)
            .bind(&order.label_url)
            .bind(has_unknown_sku)
            .bind(order.modified_at)
            .execute(&mut *conn)
            .await?;
            let stored = stored_items(&mut *conn, id).await?;
            let status_changed = order.status.is_some() && order.status != previous;
            if status_changed || documents_changed || items_changed(&items, &stored) {
                counts.updated += 1;
            }
            (id, previous, stored)
        }
    };
    upsert_items(&mut *conn, order_id, &items, variation_of).await?;

    let known: Vec<&MarketplaceOrderItem> = items
        .iter()
        .copied()
        .filter(|item| variation_of(item).is_some())
        .collect();
    let order_changed =
        inserted.is_none() && order.status.is_some() && order.status != previous_status;
    let item_changed = |item: &&MarketplaceOrderItem| match stored.get(&item.external_id) {
        Some(before) => item.status.is_some() && item.status != before.status,
        None => true,
    };
    let newly_known = |item: &&MarketplaceOrderItem| {
        stored
            .get(&item.external_id)
            .is_some_and(|before| before.variation_id.is_none())
    };
    let event = if inserted.is_some() {
        Some((ORDER_CREATED, known.clone()))
    } else if order_changed || known.iter().any(item_changed) {
        Some((ORDER_STATUS_CHANGED, known.clone()))
    } else {
        // An item whose SKU became known since: announce it as first seen.
        let resolved: Vec<_> = known.iter().copied().filter(newly_known).collect();
        (!resolved.is_empty()).then_some((ORDER_CREATED, resolved))
    };
    if let Some((kind, event_items)) = event.filter(|(_, items)| !items.is_empty()) {
        let payload = OrderEvent {
            order_id: order.external_id.clone(),
            status: order.status,
            previous_status: if kind == ORDER_STATUS_CHANGED {
                previous_status
            } else {
                None
            },
            raw_status: order.raw_status.clone(),
            items: event_items
                .iter()
                .map(|item| OrderEventItem {
                    item_id: item.external_id.clone(),
                    sku: item.sku.clone(),
                    quantity: i64::from(item.quantity),
                    status: item.status,
                })
                .collect(),
        };
        messages.push(OutboxMessage::event(
            Envelope::new(kind, &marketplace.code, &payload),
            None,
        ));
    }

    let to_accept: Vec<&MarketplaceOrderItem> = known
        .iter()
        .copied()
        .filter(|item| item.needs_acceptance)
        .filter(|item| {
            !stored
                .get(&item.external_id)
                .is_some_and(|s| s.accept_requested)
        })
        .collect();
    if !to_accept.is_empty() {
        let ids: Vec<&str> = to_accept
            .iter()
            .map(|item| item.external_id.as_str())
            .collect();
        sqlx::query(
            "UPDATE order_items SET accept_requested_at = now()
             WHERE order_id = $1 AND external_id = ANY($2) AND accept_requested_at IS NULL",
        )
        .bind(order_id)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
        for item in to_accept {
            let command = AcceptOrderline {
                order_id: order.external_id.clone(),
                item_id: item.external_id.clone(),
                sku: item.sku.clone(),
            };
            messages.push(OutboxMessage::command(
                marketplace_command_key(&marketplace.code, ACCEPT_ORDERLINE),
                Envelope::new(ACCEPT_ORDERLINE, &marketplace.code, &command),
                None,
            ));
        }
    }
    Ok(())
}

fn parse_status(raw: Option<String>) -> Option<OrderStatus> {
    raw.and_then(|status| status.parse().ok())
}

fn items_changed(items: &[&MarketplaceOrderItem], stored: &HashMap<String, StoredItem>) -> bool {
    items
        .iter()
        .any(|item| match stored.get(&item.external_id) {
            Some(before) => item.status != before.status,
            None => true,
        })
}

async fn stored_items(
    conn: &mut PgConnection,
    order_id: i64,
) -> sqlx::Result<HashMap<String, StoredItem>> {
    let rows = sqlx::query(
        "SELECT external_id, status, variation_id, accept_requested_at IS NOT NULL AS accept_requested
         FROM order_items WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let item = StoredItem {
                status: parse_status(row.get("status")),
                variation_id: row.get("variation_id"),
                accept_requested: row.get("accept_requested"),
            };
            (row.get("external_id"), item)
        })
        .collect())
}

async fn upsert_items(
    conn: &mut PgConnection,
    order_id: i64,
    items: &[&MarketplaceOrderItem],
    variation_of: &impl Fn(&MarketplaceOrderItem) -> Option<i64>,
) -> sqlx::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = items.iter().map(|i| i.external_id.as_str()).collect();
    let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
    let variations: Vec<Option<i64>> = items.iter().map(|i| variation_of(i)).collect();
    let quantities: Vec<i32> = items
        .iter()
        .map(|i| i32::try_from(i.quantity).unwrap_or(i32::MAX))
        .collect();
    let statuses: Vec<Option<&str>> = items
        .iter()
        .map(|i| i.status.map(OrderStatus::as_str))
        .collect();
    let raw: Vec<&str> = items.iter().map(|i| i.raw_status.as_str()).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, external_id, sku, variation_id, quantity, status, raw_status)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::text[])
         ON CONFLICT (order_id, external_id) DO UPDATE
         SET sku = EXCLUDED.sku, variation_id = COALESCE(EXCLUDED.variation_id, order_items.variation_id),
             quantity = EXCLUDED.quantity, status = EXCLUDED.status, raw_status = EXCLUDED.raw_status",
    )
    .bind(order_id)
    .bind(&ids)
    .bind(&skus)
    .bind(&variations)
    .bind(&quantities)
    .bind(&statuses)
    .bind(&raw)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records after-sales cases on the order items they concern; returns how many items changed.
pub async fn store_care(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    cases: &[CareCase],
) -> sqlx::Result<u32> {
    let mut changed = 0;
    let mut tx = pool.begin().await?;
    for case in cases {
        let state = if case.open {
            format!("open:{}", case.raw_state)
        } else {
            format!("closed:{}", case.raw_state)
        };
        let updated = sqlx::query(
            "UPDATE order_items i SET care_folder_id = $3, care_state = $4
             FROM orders o
             WHERE o.id = i.order_id AND o.marketplace_id = $1
               AND (i.external_id = $2 OR ($2 IS NULL AND o.external_id = $5))
               AND (i.care_folder_id IS DISTINCT FROM $3 OR i.care_state IS DISTINCT FROM $4)",
        )
        .bind(marketplace.id)
        .bind(&case.item_external_id)
        .bind(&case.external_id)
        .bind(&state)
        .bind(&case.order_id)
        .execute(&mut *tx)
        .await?;
        changed += updated.rows_affected() as u32;
    }
    tx.commit().await?;
    Ok(changed)
}
