//! Message payloads (the `payload` of an [`Envelope`](crate::bus::Envelope)).

use crate::domain::OrderStatus;
use serde::{Deserialize, Serialize};

pub const ORDER_CREATED: &str = "order.created";
pub const ORDER_STATUS_CHANGED: &str = "order.status_changed";
pub const STOCK_CHANGED: &str = "stock.changed";

/// `order.created` (first sight of an order) and `order.status_changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// The marketplace's order id.
    pub order_id: String,
    /// The order's normalised status; `None` when its raw status is unknown.
    pub status: Option<OrderStatus>,
    /// For `order.status_changed`: the status before the change.
    #[serde(default)]
    pub previous_status: Option<OrderStatus>,
    #[serde(default)]
    pub raw_status: String,
    pub items: Vec<OrderEventItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEventItem {
    /// The marketplace's order item (order line) id.
    pub item_id: String,
    pub sku: String,
    /// Units; validated by the ledger (a wider type, so bad input is reported, not truncated).
    pub quantity: i64,
    /// The item's own status where the marketplace has one; else the order's.
    #[serde(default)]
    pub status: Option<OrderStatus>,
}

impl OrderEvent {
    pub fn item_status(&self, item: &OrderEventItem) -> Option<OrderStatus> {
        item.status.or(self.status)
    }
}

/// `stock.changed.<marketplace>`: a row's levels after a change. The publisher
/// reads the row again at send time; these values are for observers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockChanged {
    pub stock_id: i64,
    pub variation_id: i64,
    pub sku: String,
    pub listed: i32,
    pub locked: i32,
    pub available: i32,
    pub change_type: String,
}
