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
use crate::domain::input;
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
    /// Orders left out because the marketplace sent what cannot be stored
    /// (a NUL byte, an id or SKU beyond the bounds): logged with the field.
    pub refused: u32,
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
    let mut counts = PageCounts::default();
    // One unstorable order (PostgreSQL refuses a NUL in text and jsonb)
    // must not fail its page, and with it every later sync of the marketplace.
    let orders: Vec<&MarketplaceOrder> = orders
        .iter()
        .filter(|order| match storable(order) {
            Ok(()) => true,
            Err(invalid) => {
                tracing::warn!(marketplace = %marketplace.code, order = %order.external_id.escape_debug(),
                    field = %invalid.field, reason = %invalid.reason,
                    "order from the marketplace cannot be stored; left out");
                counts.refused += 1;
                false
            }
        })
        .collect();
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
    // Order rows are locked in external-id order, so concurrent runs never deadlock.
    let mut sorted = orders;
    sorted.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    sorted.dedup_by(|a, b| a.external_id == b.external_id);

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

/// Whether an order as the marketplace sent it can be stored: the fields we
/// keep as text (identifiers, SKUs, statuses, document URLs) within
/// [`input::text`], and no NUL anywhere in its raw JSON, whose free texts
/// (notes, addresses, names) are kept as they came, however long.
pub(crate) fn storable(order: &MarketplaceOrder) -> Result<(), input::Invalid> {
    input::text("order.id", &order.external_id)?;
    input::text("order.status", &order.raw_status)?;
    for url in [&order.delivery_note_url, &order.label_url]
        .into_iter()
        .flatten()
    {
        input::text("order.url", url)?;
    }
    for item in &order.items {
        input::text("item.id", &item.external_id)?;
        input::text("item.sku", &item.sku)?;
        input::text("item.status", &item.raw_status)?;
    }
    input::no_nul_in_json("order", &order.raw)
}

/// The order as stored before this page saw it.
struct Before {
    order_id: i64,
    inserted: bool,
    /// The stored order is newer than this copy (a late webhook, or a page
    /// fetched before a concurrent sync stored a later state): keep it.
    stale: bool,
    status: Option<OrderStatus>,
    items: HashMap<String, StoredItem>,
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
    let before = upsert_order(&mut *conn, marketplace, order, has_unknown_sku).await?;
    if before.stale {
        tracing::info!(marketplace = %marketplace.code, order = %order.external_id,
            "older copy of an order ignored");
        return Ok(());
    }
    upsert_items(&mut *conn, before.order_id, &items, variation_of).await?;

    let moved = |item: &&MarketplaceOrderItem| match before.items.get(&item.external_id) {
        Some(stored) => item.status.is_some() && item.status != stored.status,
        None => true,
    };
    let order_moved = order.status.is_some() && order.status != before.status;
    if before.inserted {
        counts.created += 1;
    } else if order_moved || items.iter().any(moved) {
        counts.updated += 1;
    }

    let known: Vec<&MarketplaceOrderItem> = items
        .iter()
        .copied()
        .filter(|item| variation_of(item).is_some())
        .collect();
    let event = if before.inserted {
        Some((ORDER_CREATED, known.clone()))
    } else if order_moved || known.iter().any(moved) {
        Some((ORDER_STATUS_CHANGED, known.clone()))
    } else {
        // Items whose SKU became known since: announce them as first seen.
        let resolved: Vec<_> = known
            .iter()
            .copied()
            .filter(|item| {
                before
                    .items
                    .get(&item.external_id)
                    .is_some_and(|stored| stored.variation_id.is_none())
            })
            .collect();
        Some((ORDER_CREATED, resolved))
    };
    if let Some((kind, event_items)) = event.filter(|(_, items)| !items.is_empty()) {
        let payload = OrderEvent {
            order_id: order.external_id.clone(),
            status: order.status,
            previous_status: (kind == ORDER_STATUS_CHANGED)
                .then_some(before.status)
                .flatten(),
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
        .into_iter()
        .filter(|item| item.needs_acceptance)
        .filter(|item| {
            !before
                .items
                .get(&item.external_id)
                .is_some_and(|stored| stored.accept_requested)
        })
        .collect();
    request_acceptance(
        conn,
        marketplace,
        order,
        before.order_id,
        &to_accept,
        messages,
    )
    .await
}

/// Inserts the order, or locks and updates the existing row; returns what it was.
async fn upsert_order(
    conn: &mut PgConnection,
    marketplace: &MarketplaceRow,
    order: &MarketplaceOrder,
    has_unknown_sku: bool,
) -> sqlx::Result<Before> {
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
    if let Some(order_id) = inserted {
        return Ok(Before {
            order_id,
            inserted: true,
            stale: false,
            status: None,
            items: HashMap::new(),
        });
    }
    let row = sqlx::query(
        "SELECT id, status, marketplace_modified_at FROM orders
         WHERE marketplace_id = $1 AND external_id = $2 FOR UPDATE",
    )
    .bind(marketplace.id)
    .bind(&order.external_id)
    .fetch_one(&mut *conn)
    .await?;
    let order_id: i64 = row.get("id");
    let stored_at: Option<chrono::DateTime<chrono::Utc>> = row.get("marketplace_modified_at");
    if let (Some(stored_at), Some(incoming_at)) = (stored_at, order.modified_at)
        && stored_at > incoming_at
    {
        return Ok(Before {
            order_id,
            inserted: false,
            stale: true,
            status: None,
            items: HashMap::new(),
        });
    }
    sqlx::query(
        "UPDATE orders SET status = $2, raw_status = $3, raw = $4, delivery_note_url = $5,
                label_url = $6, has_unknown_sku = $7, marketplace_modified_at = $8, updated_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(status)
    .bind(&order.raw_status)
    .bind(&order.raw)
    .bind(&order.delivery_note_url)
    .bind(&order.label_url)
    .bind(has_unknown_sku)
    .bind(order.modified_at)
    .execute(&mut *conn)
    .await?;
    Ok(Before {
        order_id,
        inserted: false,
        stale: false,
        status: parse_status(row.get("status")),
        items: stored_items(conn, order_id).await?,
    })
}

/// One accept command per line, ever: the line is marked in the same transaction.
async fn request_acceptance(
    conn: &mut PgConnection,
    marketplace: &MarketplaceRow,
    order: &MarketplaceOrder,
    order_id: i64,
    items: &[&MarketplaceOrderItem],
    messages: &mut Vec<OutboxMessage>,
) -> sqlx::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = items.iter().map(|item| item.external_id.as_str()).collect();
    sqlx::query(
        "UPDATE order_items SET accept_requested_at = now()
         WHERE order_id = $1 AND external_id = ANY($2) AND accept_requested_at IS NULL",
    )
    .bind(order_id)
    .bind(&ids)
    .execute(conn)
    .await?;
    for item in items {
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
    Ok(())
}

fn parse_status(raw: Option<String>) -> Option<OrderStatus> {
    raw.and_then(|status| status.parse().ok())
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

/// Notes that the modified sync just read these orders on their own.
pub async fn mark_rechecked(
    pool: &PgPool,
    marketplace: &MarketplaceRow,
    external_ids: &[&str],
) -> sqlx::Result<()> {
    if external_ids.is_empty() {
        return Ok(());
    }
    // A hint for the next run's order, so it never waits: rows a concurrent
    // store holds are skipped (they go first next time) instead of taking
    // locks in another order than that store and deadlocking with it.
    sqlx::query(
        "UPDATE orders SET rechecked_at = now()
         WHERE id IN (SELECT id FROM orders WHERE marketplace_id = $1 AND external_id = ANY($2)
                      FOR UPDATE SKIP LOCKED)",
    )
    .bind(marketplace.id)
    .bind(external_ids)
    .execute(pool)
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
