//! Normalised order statuses (design §4) and the stock effect each one has.
//!
//! Every marketplace adapter maps its raw statuses onto [`OrderStatus`] in one
//! table; the ledger only ever sees the normalised value.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A marketplace order (or order line) status, normalised across marketplaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, payment not yet confirmed (Back Market 0/8/9). Locks stock
    /// unless the marketplace is configured not to lock unpaid orders.
    Unpaid,
    /// Paid, waiting for the merchant to accept (Back Market 1, Refurbed NEW, Woo pending/on-hold).
    Pending,
    /// Accepted / processing: the merchant must ship.
    Accepted,
    /// Shipped or completed: the unit has left stock.
    Shipped,
    /// Cancelled, rejected, failed, or refunded before shipping.
    Cancelled,
    /// Returned or refunded after shipping (after-sales). Stock is not restored
    /// automatically: a returned refurbished device must be inspected first.
    Returned,
}

/// What a status does to the stock of an order item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockEffect {
    Lock,
    Consume,
    Release,
    None,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Unpaid,
        OrderStatus::Pending,
        OrderStatus::Accepted,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
        OrderStatus::Returned,
    ];

    /// The stock effect of an item reaching this status. `lock_unpaid` is the
    /// marketplace's setting for orders whose payment is not yet confirmed.
    pub fn stock_effect(self, lock_unpaid: bool) -> StockEffect {
        match self {
            OrderStatus::Unpaid if lock_unpaid => StockEffect::Lock,
            OrderStatus::Unpaid => StockEffect::None,
            OrderStatus::Pending | OrderStatus::Accepted => StockEffect::Lock,
            OrderStatus::Shipped => StockEffect::Consume,
            OrderStatus::Cancelled => StockEffect::Release,
            OrderStatus::Returned => StockEffect::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Unpaid => "unpaid",
            OrderStatus::Pending => "pending",
            OrderStatus::Accepted => "accepted",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Returned => "returned",
        }
    }

    /// Whether the order is still open (not shipped, cancelled or returned).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Unpaid | OrderStatus::Pending | OrderStatus::Accepted
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown order status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("shipping".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn effects_follow_design_section_4() {
        use OrderStatus::*;
        assert_eq!(Unpaid.stock_effect(true), StockEffect::Lock);
        assert_eq!(Unpaid.stock_effect(false), StockEffect::None);
        assert_eq!(Pending.stock_effect(false), StockEffect::Lock);
        assert_eq!(Accepted.stock_effect(true), StockEffect::Lock);
        assert_eq!(Shipped.stock_effect(true), StockEffect::Consume);
        assert_eq!(Cancelled.stock_effect(true), StockEffect::Release);
        assert_eq!(Returned.stock_effect(true), StockEffect::None);
    }
}
