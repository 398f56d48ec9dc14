//! The simulator's whole state behind one mutex: listings, orders and care
//! cases per marketplace, the request and push logs, faults and rate limits.
//! Handlers lock, change, unlock; nothing awaits while holding the lock.
//! Each concern is one file; `Inner` is extended by each.

mod faults;
mod limits;
mod listings;
mod marketplace;
mod orders;

pub use faults::{Faults, Outage};
pub use limits::{Admission, Limits, RateLimit};
pub use listings::{Listing, Push};
pub use marketplace::{Marketplace, REFURBED_ITEM_STATES, WOO_STATUSES};
pub use orders::{
    CareCase, Item, ItemSelector, MoveError, Order, OrderRefused, Shipment, backmarket_order_state,
    refurbed_order_state,
};

use chrono::{DateTime, Utc};
use limits::Window;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub id: u64,
    pub marketplace: Marketplace,
    pub method: String,
    pub path: String,
    /// The endpoint class the fleet's budget counts it against: `listings`
    /// (the marketplace's listing paths) or `orders` (everything else).
    pub class: &'static str,
    /// Who sent it, from the `x-stockfleet-caller` header (`poller`,
    /// `publisher`, `cli`); None when absent.
    pub caller: Option<String>,
    /// 0 while no response was sent (a hung request whose client gave up).
    pub status: u16,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct MarketplaceState {
    pub listings: BTreeMap<String, Listing>,
    /// Listing id → SKU, so a lookup by id stays O(1) with 100,000 listings.
    listing_skus: HashMap<u64, String>,
    pub orders: BTreeMap<u64, Order>,
    pub care: BTreeMap<u64, CareCase>,
    pub faults: Faults,
    pub limits: Limits,
    general_window: Window,
    listings_window: Window,
    quantity_window: Window,
    /// Requests that came over the rate limit.
    pub violations: u64,
}
pub struct Inner {
    pub marketplaces: HashMap<Marketplace, MarketplaceState>,
    next_id: u64,
    pub requests: Vec<RequestRecord>,
    pub pushes: Vec<Push>,
    rng: StdRng,
}

impl Inner {
    pub fn new(seed: u64) -> Self {
        let marketplaces = Marketplace::ALL
            .into_iter()
            .map(|mp| {
                let state = MarketplaceState {
                    limits: mp.default_limits(),
                    ..MarketplaceState::default()
                };
                (mp, state)
            })
            .collect();
        Inner {
            marketplaces,
            next_id: 1000,
            requests: Vec::new(),
            pushes: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn mp(&mut self, mp: Marketplace) -> &mut MarketplaceState {
        self.marketplaces.entry(mp).or_default()
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn begin_request(
        &mut self,
        mp: Marketplace,
        method: &str,
        path: &str,
        listing_path: bool,
        caller: Option<String>,
    ) -> u64 {
        let id = self.next_id();
        self.requests.push(RequestRecord {
            id,
            marketplace: mp,
            method: method.to_owned(),
            path: path.to_owned(),
            class: if listing_path { "listings" } else { "orders" },
            caller,
            status: 0,
            at: Utc::now(),
        });
        id
    }

    pub fn finish_request(&mut self, id: u64, status: u16) {
        // Recent requests are at the end; a reset in between drops the record.
        if let Some(record) = self.requests.iter_mut().rev().find(|r| r.id == id) {
            record.status = status;
        }
    }
}

/// Timestamps as the control API and query strings give them: RFC3339 or
/// zone-less (UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d-%H-%M"]
        .into_iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}
