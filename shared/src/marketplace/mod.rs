//! Marketplace adapters: one trait the poller and publisher speak, one module
//! per marketplace that translates it to that marketplace's HTTP API
//! (the marketplace HTTP contracts, summarised in `docs/marketplaces.md`).
//!
//! Every adapter owns one long-lived HTTP client with a per-call timeout,
//! maps raw statuses onto [`OrderStatus`] in a single table, and reports
//! failures as a [`MarketplaceError`] whose kind tells the caller whether to
//! retry. Credentials live in a [`Secret`] and are scrubbed from every error.

mod backmarket;
pub mod budget;
pub mod directory;
mod gate;
mod http;
mod oauth1;
mod refurbed;
mod wire;
#[cfg(test)]
pub(crate) use wire::tests as wire_tests;
mod woocommerce;

use crate::domain::OrderStatus;
pub use budget::Budget;
use chrono::{DateTime, Utc};
pub use gate::RateGate;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
pub use woocommerce::parse_webhook_order;

/// The operations stockfleet needs from a marketplace.
#[async_trait::async_trait]
pub trait Marketplace: Send + Sync {
    /// The marketplace's code in stockfleet's `marketplaces` table, e.g. "backmarket".
    fn code(&self) -> &str;
    /// Whether [`OrderQuery::ModifiedSince`] really filters on modification
    /// time. When it does not (Refurbed), the modified sync also looks for
    /// the orders it holds as open that the walk did not bring: they left
    /// the open states ([`Self::list_orders_closed`], `get_order`).
    fn filters_modified_since(&self) -> bool {
        true
    }
    /// One page of orders for a sync kind; `page` = None for the first page;
    /// returns the next page token.
    async fn list_orders(
        &self,
        query: &OrderQuery,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError>;
    /// One page of the orders released in `[released_from, released_before)`
    /// that are no longer open: where the orders the poller holds as open
    /// went, when the modified walk did not bring them (see
    /// [`Self::filters_modified_since`]). A marketplace that filters on
    /// modification time finds them among the orders modified since then.
    async fn list_orders_closed(
        &self,
        released_from: DateTime<Utc>,
        released_before: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError> {
        let mut page = self
            .list_orders(&OrderQuery::ModifiedSince(released_from), page)
            .await?;
        page.orders.retain(|order| {
            order.status.is_some_and(|status| !status.is_open())
                && order
                    .created_at
                    .is_none_or(|at| (released_from..released_before).contains(&at))
        });
        Ok(page)
    }
    async fn get_order(&self, order_id: &str) -> Result<MarketplaceOrder, MarketplaceError>;
    /// One page of after-sales cases (Back Market care folders, Refurbed
    /// returns, WooCommerce refunded orders) changed since `since` where the
    /// marketplace can filter on it.
    async fn list_care(
        &self,
        since: Option<DateTime<Utc>>,
        page: Option<PageToken>,
    ) -> Result<CarePage, MarketplaceError>;
    /// Accepts one order item that `needs_acceptance`. A no-op on marketplaces
    /// without acceptance (WooCommerce).
    async fn accept_orderline(
        &self,
        order_id: &str,
        item: &OrderItemRef,
    ) -> Result<(), MarketplaceError>;
    /// Accepts several order items in as few calls as the marketplace allows;
    /// one result per line, in order. Default: one `accept_orderline` each,
    /// a few at once.
    /// Each line is (order id, item).
    async fn accept_orderlines(
        &self,
        lines: &[(String, OrderItemRef)],
    ) -> Vec<Result<(), MarketplaceError>> {
        use futures::StreamExt;
        // By index: a closure over borrowed lines is not Send-general enough.
        futures::stream::iter(0..lines.len())
            .map(|n| self.accept_orderline(&lines[n].0, &lines[n].1))
            .buffered(SINGLE_ACCEPTS_IN_FLIGHT)
            .collect()
            .await
    }
    async fn update_order_status(
        &self,
        order_id: &str,
        update: &OrderStatusUpdate,
    ) -> Result<(), MarketplaceError>;
    async fn listing_quantity(&self, sku: &str) -> Result<u32, MarketplaceError>;
    async fn set_listing_quantity(&self, sku: &str, quantity: u32) -> Result<(), MarketplaceError>;
}

/// Single accepts under way at once where a marketplace has no batch call
/// (the fleet's budget paces them).
const SINGLE_ACCEPTS_IN_FLIGHT: usize = 8;

/// Which orders a sync run wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderQuery {
    /// Orders waiting for the merchant (Back Market state 1, Refurbed NEW,
    /// WooCommerce pending/processing/on-hold).
    New,
    /// Orders modified at or after the given time. Refurbed has no such
    /// filter: its adapter walks the orders released since then and every
    /// open (NEW or ACCEPTED) order released before.
    ModifiedSince(DateTime<Utc>),
    /// Open orders still missing their delivery note or label.
    Incomplete,
}

/// An opaque cursor to the next page, only meaningful to the adapter that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PageToken(pub String);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderPage {
    pub orders: Vec<MarketplaceOrder>,
    pub next: Option<PageToken>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketplaceOrder {
    pub external_id: String,
    /// None = the raw status is unknown to the mapping table.
    pub status: Option<OrderStatus>,
    pub raw_status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    pub delivery_note_url: Option<String>,
    pub label_url: Option<String>,
    pub items: Vec<MarketplaceOrderItem>,
    /// The order exactly as the marketplace sent it.
    pub raw: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketplaceOrderItem {
    pub external_id: String,
    /// The seller SKU (may be empty on Refurbed and WooCommerce).
    pub sku: String,
    /// Always 1 on Refurbed, whose items are one unit each.
    pub quantity: u32,
    pub status: Option<OrderStatus>,
    pub raw_status: String,
    /// Back Market line state 1, Refurbed NEW: the merchant must accept or refuse it.
    pub needs_acceptance: bool,
}

/// Names one order item in a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderItemRef {
    pub external_id: String,
    pub sku: String,
}

impl From<&MarketplaceOrderItem> for OrderItemRef {
    fn from(item: &MarketplaceOrderItem) -> Self {
        OrderItemRef {
            external_id: item.external_id.clone(),
            sku: item.sku.clone(),
        }
    }
}

/// Moves an order (WooCommerce) or some of its items (Back Market, Refurbed)
/// to a status. Only Accepted, Shipped, Cancelled and Returned can be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderStatusUpdate {
    pub status: OrderStatus,
    /// The items to move; empty = every item of the order. Ignored by
    /// WooCommerce, whose status belongs to the whole order.
    pub items: Vec<OrderItemRef>,
    /// Required to ship on Back Market (number) and Refurbed (url).
    pub tracking: Option<Tracking>,
}

impl OrderStatusUpdate {
    pub fn whole_order(status: OrderStatus) -> Self {
        OrderStatusUpdate {
            status,
            items: Vec::new(),
            tracking: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tracking {
    pub number: Option<String>,
    pub url: Option<String>,
    pub carrier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarePage {
    pub cases: Vec<CareCase>,
    pub next: Option<PageToken>,
}

/// An after-sales case, linked to an order and/or an order item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CareCase {
    pub external_id: String,
    /// Back Market care folders only name the orderline.
    pub order_id: Option<String>,
    /// WooCommerce refunds belong to the whole order.
    pub item_external_id: Option<String>,
    pub raw_state: String,
    pub open: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    pub raw: serde_json::Value,
}

/// The items an update moves. Named items must exist in the order; items
/// already in the target status are skipped so that a retried command is a
/// no-op. An update naming no item moves every item that can make that move.
pub(crate) fn select_items<'a>(
    order: &'a MarketplaceOrder,
    update: &OrderStatusUpdate,
) -> Result<Vec<&'a MarketplaceOrderItem>, MarketplaceError> {
    if update.items.is_empty() {
        return Ok(order
            .items
            .iter()
            .filter(|item| can_move(item.status, update.status))
            .collect());
    }
    let mut selected = Vec::new();
    for wanted in &update.items {
        let item = order
            .items
            .iter()
            .find(|item| item.external_id == wanted.external_id)
            .ok_or_else(|| {
                MarketplaceError::invalid(format!(
                    "order {} has no item {}",
                    order.external_id, wanted.external_id
                ))
            })?;
        if item.status != Some(update.status) {
            selected.push(item);
        }
    }
    Ok(selected)
}

/// Whether a merchant can move an item from `from` to `to`.
fn can_move(from: Option<OrderStatus>, to: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, to),
        (Some(Pending), Accepted)
            | (Some(Pending | Accepted), Cancelled)
            | (Some(Accepted), Shipped)
            | (Some(Shipped), Returned)
    )
}

/// What went wrong talking to a marketplace; the kind decides retry or dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketplaceError {
    /// HTTP 429: wait `retry_after` (from Retry-After, else the marketplace's default).
    #[error("rate limited (retry after {}s): {message}", retry_after.as_secs_f64())]
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// 5xx, timeout, connection failure: retrying may succeed.
    #[error("transient: {message}")]
    Transient { message: String },
    /// Other 4xx, malformed body, unsupported request: retrying will not help.
    #[error("permanent{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Permanent {
        status: Option<u16>,
        message: String,
    },
}

impl MarketplaceError {
    /// Whether a retry may succeed (rate limits included).
    pub fn is_transient(&self) -> bool {
        !matches!(self, MarketplaceError::Permanent { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            MarketplaceError::RateLimited { .. } => "rate_limited",
            MarketplaceError::Transient { .. } => "transient",
            MarketplaceError::Permanent { .. } => "permanent",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MarketplaceError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            MarketplaceError::RateLimited { message, .. }
            | MarketplaceError::Transient { message }
            | MarketplaceError::Permanent { message, .. } => message,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        MarketplaceError::Permanent {
            status: None,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketplaceKind {
    BackMarket,
    Refurbed,
    WooCommerce,
}

impl MarketplaceKind {
    pub const ALL: [MarketplaceKind; 3] = [
        MarketplaceKind::BackMarket,
        MarketplaceKind::Refurbed,
        MarketplaceKind::WooCommerce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MarketplaceKind::BackMarket => "backmarket",
            MarketplaceKind::Refurbed => "refurbed",
            MarketplaceKind::WooCommerce => "woocommerce",
        }
    }
}

impl fmt::Display for MarketplaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MarketplaceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MarketplaceKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown marketplace kind {s:?}"))
    }
}

/// A credential: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[derive(Debug, Clone)]
pub struct MarketplaceConfig {
    pub code: String,
    pub kind: MarketplaceKind,
    /// e.g. `https://www.backmarket.fr`, `https://api.refurbed.com`,
    /// `https://shop.example` (the adapter appends `/wp-json/wc/v3`).
    pub base_url: String,
    /// Back Market and Refurbed: the token; WooCommerce: `ck_…:cs_…`.
    pub credential: Secret,
    /// Bounds every call, connection included.
    pub timeout: Duration,
    /// Back Market requires `BM-<Company>-<Integration>;<contact email>`.
    pub user_agent: Option<String>,
    /// Every request takes a permit of its endpoint class here first (the
    /// fleet's request budget); None = unthrottled.
    pub budget: Option<Arc<Budget>>,
}

impl MarketplaceConfig {
    /// A config with the kind's name as code, a 10 s timeout and the default user agent.
    pub fn new(kind: MarketplaceKind, base_url: impl Into<String>, credential: Secret) -> Self {
        MarketplaceConfig {
            code: kind.as_str().to_owned(),
            kind,
            base_url: base_url.into(),
            credential,
            timeout: Duration::from_secs(10),
            user_agent: None,
            budget: None,
        }
    }
}

/// Builds the adapter for a configured marketplace.
pub fn connect(config: MarketplaceConfig) -> Result<Arc<dyn Marketplace>, MarketplaceError> {
    Ok(match config.kind {
        MarketplaceKind::BackMarket => Arc::new(backmarket::BackMarket::new(config)?),
        MarketplaceKind::Refurbed => Arc::new(refurbed::Refurbed::new(config)?),
        MarketplaceKind::WooCommerce => Arc::new(woocommerce::WooCommerce::new(config)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let config = MarketplaceConfig::new(
            MarketplaceKind::Refurbed,
            "http://x",
            Secret::new("hunter2"),
        );
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in MarketplaceKind::ALL {
            assert_eq!(kind.as_str().parse::<MarketplaceKind>(), Ok(kind));
        }
        assert!("amazon".parse::<MarketplaceKind>().is_err());
    }

    #[test]
    fn error_kinds() {
        let limited = MarketplaceError::RateLimited {
            retry_after: Duration::from_secs(3),
            message: "slow down".into(),
        };
        assert_eq!(limited.kind(), "rate_limited");
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        let permanent = MarketplaceError::Permanent {
            status: Some(404),
            message: "gone".into(),
        };
        assert_eq!(permanent.kind(), "permanent");
        assert!(!permanent.is_transient());
        assert_eq!(permanent.to_string(), "permanent (HTTP 404): gone");
        assert_eq!(
            MarketplaceError::Transient {
                message: "x".into()
            }
            .kind(),
            "transient"
        );
    }
}
