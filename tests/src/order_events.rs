//! Order events as a test publishes them: one item of some units, on the
//! harness's marketplace.

use crate::MARKETPLACE;
use stockfleet::bus::Envelope;
use stockfleet::domain::OrderStatus;
use stockfleet::events::{ORDER_CREATED, ORDER_STATUS_CHANGED, OrderEvent, OrderEventItem};

/// An order event for one item of `quantity` units.
pub fn order_event(
    kind: &str,
    order: &str,
    item: &str,
    sku: &str,
    quantity: i64,
    status: OrderStatus,
) -> Envelope {
    let event = OrderEvent {
        order_id: order.to_owned(),
        status: Some(status),
        previous_status: None,
        raw_status: status.as_str().to_owned(),
        items: vec![OrderEventItem {
            item_id: item.to_owned(),
            sku: sku.to_owned(),
            quantity,
            status: None,
        }],
    };
    Envelope::new(kind, MARKETPLACE, &event)
}

pub fn created(order: &str, sku: &str, quantity: i64) -> Envelope {
    order_event(
        ORDER_CREATED,
        order,
        &format!("{order}-1"),
        sku,
        quantity,
        OrderStatus::Pending,
    )
}

pub fn changed(order: &str, sku: &str, quantity: i64, status: OrderStatus) -> Envelope {
    order_event(
        ORDER_STATUS_CHANGED,
        order,
        &format!("{order}-1"),
        sku,
        quantity,
        status,
    )
}
