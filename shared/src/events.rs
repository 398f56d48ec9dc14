//! Message payloads (the `payload` of an [`Envelope`](crate::bus::Envelope)).

use crate::domain::OrderStatus;
pub use crate::domain::messages::{
    ACCEPT_ORDERLINE, ORDER_CREATED, ORDER_STATUS_CHANGED, STOCK_CHANGED, SYNC_REQUEST,
    UPDATE_ORDER_STATUS,
};
use serde::{Deserialize, Serialize};

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
    /// For a pooled row told of another marketplace's order: that order's
    /// marketplace and when it was seen, so the publisher can measure the race.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<PoolOrigin>,
}

/// The [`StockChanged::change_type`] of a reconciliation's messages: the
/// publisher reads what the marketplace shows before it pushes.
pub const RECONCILIATION: &str = "reconciliation";

/// Where a pool's change came from (see [`StockChanged::origin`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolOrigin {
    pub marketplace: String,
    pub seen_at: chrono::DateTime<chrono::Utc>,
}

/// The routing key of a command to a marketplace's publisher:
/// `marketplace.<mp>.<command>` on the commands exchange.
pub fn marketplace_command_key(marketplace: &str, command: &str) -> String {
    format!("marketplace.{marketplace}.{command}")
}

/// `marketplace.<mp>.accept_orderline`: accept one new order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptOrderline {
    pub order_id: String,
    pub item_id: String,
    pub sku: String,
}

/// `sync.<mp>.<type>`: ask the poller (or, for `stock`, the reconciliation) for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// new, modified, care, incomplete or stock.
    pub sync_type: String,
    /// Run even when the schedule says it is not due.
    #[serde(default)]
    pub force: bool,
    /// For order syncs: look this many days back instead of from the cursor.
    #[serde(default)]
    pub days_back: Option<u32>,
    /// Who asked, for the run record and the logs.
    #[serde(default)]
    pub requested_by: String,
}

pub fn sync_command_key(marketplace: &str, sync_type: &str) -> String {
    format!("sync.{marketplace}.{sync_type}")
}

impl SyncRequest {
    /// The command asking the fleet to run this sync of `marketplace`: its
    /// routing key and envelope.
    pub fn command(&self, marketplace: &str) -> (String, crate::bus::Envelope) {
        (
            sync_command_key(marketplace, &self.sync_type),
            crate::bus::Envelope::new(SYNC_REQUEST, marketplace, self),
        )
    }
}

/// `marketplace.<mp>.update_order_status`: move an order, or some of its
/// items, to a status (Accepted, Shipped, Cancelled or Returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateOrderStatus {
    pub order_id: String,
    pub status: OrderStatus,
    /// Empty = every item that can make the move.
    #[serde(default)]
    pub items: Vec<CommandItem>,
    #[serde(default)]
    pub tracking: Option<CommandTracking>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandItem {
    pub item_id: String,
    pub sku: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandTracking {
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub carrier: Option<String>,
}
