//! The three simulated marketplaces: their codes, statuses, legal moves,
//! which paths count against which limit, and their default limits.

use super::limits::{Limits, RateLimit};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Marketplace {
    #[serde(rename = "backmarket")]
    BackMarket,
    #[serde(rename = "refurbed")]
    Refurbed,
    #[serde(rename = "woocommerce")]
    WooCommerce,
}

impl Marketplace {
    pub const ALL: [Marketplace; 3] = [
        Marketplace::BackMarket,
        Marketplace::Refurbed,
        Marketplace::WooCommerce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Marketplace::BackMarket => "backmarket",
            Marketplace::Refurbed => "refurbed",
            Marketplace::WooCommerce => "woocommerce",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mp| mp.as_str() == code)
    }

    /// The status an order or item starts in when nobody says otherwise.
    pub fn initial_state(self) -> &'static str {
        match self {
            Marketplace::BackMarket => "1",
            Marketplace::Refurbed => "NEW",
            Marketplace::WooCommerce => "processing",
        }
    }

    /// Whether a raw state exists on this marketplace.
    pub fn knows_state(self, state: &str) -> bool {
        match self {
            Marketplace::BackMarket => matches!(state.parse::<u8>(), Ok(0..=9)),
            Marketplace::Refurbed => REFURBED_ITEM_STATES.contains(&state),
            Marketplace::WooCommerce => WOO_STATUSES.contains(&state),
        }
    }

    /// The marketplace's legal moves (marketplace-apis.md). WooCommerce lets a
    /// shop set any status.
    pub fn legal_move(self, from: &str, to: &str) -> bool {
        match self {
            Marketplace::BackMarket => matches!(
                (from, to),
                ("0", "8" | "9" | "1" | "7")
                    | ("8" | "9", "1" | "7")
                    | ("1", "2" | "4")
                    | ("2", "3" | "5")
                    | ("3", "6")
            ),
            Marketplace::Refurbed => matches!(
                (from, to),
                ("NEW", "ACCEPTED" | "REJECTED" | "CANCELLED")
                    | ("ACCEPTED", "SHIPPED" | "CANCELLED")
                    | ("SHIPPED", "RETURNED")
            ),
            Marketplace::WooCommerce => WOO_STATUSES.contains(&to),
        }
    }

    /// The paths whose requests count against the listing rate limit.
    pub fn is_listing_path(self, path: &str) -> bool {
        match self {
            Marketplace::BackMarket => path.starts_with("/ws/listings"),
            Marketplace::Refurbed => path.starts_with("/refb.merchant.v1.OfferService"),
            Marketplace::WooCommerce => path.starts_with("/wp-json/wc/v3/products"),
        }
    }

    /// The requests that update a listing's quantity (one SKU line each).
    pub fn is_quantity_write(self, method: &str, path: &str) -> bool {
        match self {
            Marketplace::BackMarket => method == "POST" && path.starts_with("/ws/listings/"),
            Marketplace::Refurbed => {
                path.ends_with("OfferService/UpdateOffer")
                    || path.ends_with("OfferService/BatchUpdateOffers")
            }
            Marketplace::WooCommerce => {
                matches!(method, "POST" | "PUT" | "PATCH")
                    && path.starts_with("/wp-json/wc/v3/products")
            }
        }
    }

    /// Defaults from marketplace-apis.md: Back Market 200 per 10 s, 20 per
    /// 10 s on listings and about 2,000 listing updates an hour; Refurbed's
    /// numbers are not published (100 per 10 s here); WooCommerce core has none.
    pub fn default_limits(self) -> Limits {
        let per_10s = |requests| {
            Some(RateLimit {
                requests,
                window_ms: 10_000,
            })
        };
        match self {
            Marketplace::BackMarket => Limits {
                general: per_10s(200),
                listings: per_10s(20),
                quantity_updates: Some(RateLimit {
                    requests: 2000,
                    window_ms: 3_600_000,
                }),
            },
            Marketplace::Refurbed => Limits {
                general: per_10s(100),
                ..Limits::default()
            },
            Marketplace::WooCommerce => Limits::default(),
        }
    }
}

impl fmt::Display for Marketplace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const REFURBED_ITEM_STATES: &[&str] = &[
    "NEW",
    "ACCEPTED",
    "REJECTED",
    "CANCELLED",
    "SHIPPED",
    "RETURNED",
];
pub const WOO_STATUSES: &[&str] = &[
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
    "checkout-draft",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_moves() {
        let bm = Marketplace::BackMarket;
        assert!(bm.legal_move("1", "2"));
        assert!(!bm.legal_move("1", "3"));
        assert!(!bm.legal_move("3", "2"));
        let rf = Marketplace::Refurbed;
        assert!(rf.legal_move("NEW", "REJECTED"));
        assert!(!rf.legal_move("SHIPPED", "CANCELLED"));
        assert!(Marketplace::WooCommerce.legal_move("completed", "processing"));
        assert!(!Marketplace::WooCommerce.legal_move("completed", "lost"));
    }
}
