//! The simulator's whole state behind one mutex: listings, orders and care
//! cases per marketplace, the request and push logs, faults and rate limits.
//! Handlers lock, change, unlock; nothing awaits while holding the lock.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

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

/// Why an order was not placed.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderRefused {
    Invalid(String),
    /// The listing shows fewer units than the order asks for.
    NotEnoughShown {
        listing: Listing,
        requested: i64,
    },
}

impl fmt::Display for OrderRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderRefused::Invalid(message) => f.write_str(message),
            OrderRefused::NotEnoughShown { listing, requested } => write!(
                f,
                "listing {} shows {} units, the order asks for {requested}",
                listing.sku, listing.quantity
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    /// Back Market listing_id, Refurbed offer id, WooCommerce product id.
    pub id: u64,
    pub sku: String,
    pub title: String,
    pub quantity: i64,
    pub price: String,
    /// WooCommerce: the variable product this listing is a variation of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<u64>,
}

impl Listing {
    /// Back Market's UUID listing id, derived from the numeric one.
    pub fn uuid(&self) -> String {
        format!("00000000-0000-4000-8000-{:012x}", self.id)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: u64,
    pub marketplace: Marketplace,
    /// WooCommerce's order status; Back Market and Refurbed derive theirs from the items.
    pub status: String,
    pub items: Vec<Item>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    /// WooCommerce: when the order was last completed (refund after it = return).
    pub completed_at: Option<DateTime<Utc>>,
    /// Back Market delivery note / Refurbed label.
    pub document_url: Option<String>,
    pub tracking_number: Option<String>,
    /// Back Market: what the merchant sent when shipping.
    pub tracking_url: Option<String>,
    pub shipper: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: u64,
    pub sku: String,
    /// Always 1 on Refurbed.
    pub quantity: u32,
    /// Back Market line state ("0".."9"), Refurbed item state; WooCommerce copies the order's.
    pub state: String,
    pub tracking_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CareCase {
    pub id: u64,
    pub marketplace: Marketplace,
    pub order_id: u64,
    pub item_id: u64,
    pub open: bool,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub id: u64,
    pub marketplace: Marketplace,
    pub method: String,
    pub path: String,
    /// 0 while no response was sent (a hung request whose client gave up).
    pub status: u16,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub marketplace: Marketplace,
    pub sku: String,
    pub quantity: i64,
    pub at: DateTime<Utc>,
}

/// Faults injected into one marketplace's API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every answer.
    pub latency_ms: u64,
    /// The request is carried out, then its answer held back this long: a
    /// client that dies meanwhile never learns that its write was applied.
    pub answer_delay_ms: u64,
    /// Share of requests answered 500, 0..1.
    pub error_rate: f64,
    /// Every request answered 429 with this Retry-After (seconds).
    pub rate_limit_storm_secs: Option<u64>,
    /// Requests hang this long (beyond the client's timeout), then 504.
    pub timeout_ms: Option<u64>,
    /// 2xx bodies replaced by truncated JSON.
    pub malformed: bool,
    /// Every request answered 503.
    pub down: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub requests: u32,
    pub window_ms: u64,
}

/// Fixed windows: `general` counts every request, `listings` the stock
/// endpoints, `quantity_updates` the requests that change a quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub general: Option<RateLimit>,
    pub listings: Option<RateLimit>,
    pub quantity_updates: Option<RateLimit>,
}

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    count: u32,
}

impl Window {
    /// Counts a request; Err(wait) when the window is full.
    fn admit(&mut self, limit: RateLimit, now: Instant) -> Result<u32, Duration> {
        let length = Duration::from_millis(limit.window_ms);
        let started = *self.started.get_or_insert(now);
        if now.duration_since(started) >= length {
            self.started = Some(now);
            self.count = 0;
        }
        let left = length.saturating_sub(now.duration_since(self.started.unwrap_or(now)));
        if self.count >= limit.requests {
            return Err(left);
        }
        self.count += 1;
        Ok(limit.requests - self.count)
    }
}

#[derive(Debug, Default)]
pub struct MarketplaceState {
    pub listings: BTreeMap<String, Listing>,
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

/// What the guard does with one request, decided under the lock.
pub enum Admission {
    Down,
    TooMany {
        retry_after_secs: u64,
    },
    Pass {
        latency: Duration,
        answer_delay: Duration,
        hang: Option<Duration>,
        server_error: bool,
        malformed: bool,
        /// Refurbed's X-RateLimit-* headers: limit, remaining, reset (unix).
        rate_headers: Option<(u32, u32, i64)>,
    },
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

    pub fn admit(
        &mut self,
        mp: Marketplace,
        listing_path: bool,
        quantity_write: bool,
    ) -> Admission {
        let roll: f64 = self.rng.random();
        let state = self.mp(mp);
        let faults = state.faults.clone();
        if faults.down {
            return Admission::Down;
        }
        if let Some(retry_after_secs) = faults.rate_limit_storm_secs {
            return Admission::TooMany { retry_after_secs };
        }
        let now = Instant::now();
        let mut rate_headers = None;
        let buckets = [
            (state.limits.general, &mut state.general_window),
            (
                state.limits.listings.filter(|_| listing_path),
                &mut state.listings_window,
            ),
            (
                state.limits.quantity_updates.filter(|_| quantity_write),
                &mut state.quantity_window,
            ),
        ];
        for (limit, window) in buckets {
            let Some(limit) = limit else { continue };
            match window.admit(limit, now) {
                Ok(remaining) => {
                    let reset = Utc::now().timestamp() + (limit.window_ms / 1000) as i64;
                    rate_headers.get_or_insert((limit.requests, remaining, reset));
                }
                Err(wait) => {
                    state.violations += 1;
                    return Admission::TooMany {
                        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                    };
                }
            }
        }
        Admission::Pass {
            latency: Duration::from_millis(faults.latency_ms),
            answer_delay: Duration::from_millis(faults.answer_delay_ms),
            hang: faults.timeout_ms.map(Duration::from_millis),
            server_error: roll < faults.error_rate,
            malformed: faults.malformed,
            rate_headers: rate_headers.filter(|_| mp == Marketplace::Refurbed),
        }
    }

    /// Creates or replaces a listing; returns it.
    pub fn upsert_listing(
        &mut self,
        mp: Marketplace,
        sku: &str,
        quantity: i64,
        title: Option<String>,
        price: Option<String>,
    ) -> Listing {
        let (id, parent_id) = match self.mp(mp).listings.get(sku) {
            Some(listing) => (listing.id, listing.parent_id),
            None => (self.next_id(), None),
        };
        let listing = Listing {
            id,
            sku: sku.to_owned(),
            title: title.unwrap_or_else(|| format!("Refurbished {sku}")),
            quantity,
            price: price.unwrap_or_else(|| "199.00".to_owned()),
            parent_id,
        };
        self.mp(mp).listings.insert(sku.to_owned(), listing.clone());
        listing
    }

    /// Makes an existing listing a variation of the product `parent_id`.
    pub fn make_variation(&mut self, mp: Marketplace, sku: &str, parent_id: u64) -> Listing {
        let listing = self
            .mp(mp)
            .listings
            .get_mut(sku)
            .expect("the listing was just upserted");
        listing.parent_id = Some(parent_id);
        listing.clone()
    }

    /// A merchant's stock write through a marketplace API: recorded as a push.
    pub fn push_quantity(&mut self, mp: Marketplace, sku: &str, quantity: i64) -> Option<Listing> {
        let listing = self.mp(mp).listings.get_mut(sku)?;
        listing.quantity = quantity;
        let listing = listing.clone();
        self.pushes.push(Push {
            marketplace: mp,
            sku: sku.to_owned(),
            quantity,
            at: Utc::now(),
        });
        Some(listing)
    }

    pub fn listing_by_id(&mut self, mp: Marketplace, id: &str) -> Option<Listing> {
        self.mp(mp)
            .listings
            .values()
            .find(|l| l.id.to_string() == id || l.uuid() == id)
            .cloned()
    }

    /// Places an order. A listing that shows fewer units than the order
    /// asks for refuses it, as marketplaces do (a SKU the simulator does not
    /// list at all is taken as unmanaged and sells). Back Market decrements
    /// each listing's quantity itself.
    pub fn create_order(
        &mut self,
        mp: Marketplace,
        items: &[(String, u32)],
        state: Option<&str>,
        document_url: Option<String>,
    ) -> Result<Order, OrderRefused> {
        let state = state.unwrap_or(mp.initial_state());
        if !mp.knows_state(state) {
            return Err(OrderRefused::Invalid(format!(
                "{mp} has no status {state:?}"
            )));
        }
        if items.is_empty() {
            return Err(OrderRefused::Invalid(
                "an order needs at least one item".into(),
            ));
        }
        let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
        for (sku, quantity) in items {
            *wanted.entry(sku.as_str()).or_default() += i64::from(*quantity);
        }
        for (sku, requested) in wanted {
            if let Some(listing) = self.mp(mp).listings.get(sku)
                && listing.quantity < requested
            {
                return Err(OrderRefused::NotEnoughShown {
                    listing: listing.clone(),
                    requested,
                });
            }
        }
        let now = Utc::now();
        let id = self.next_id();
        let mut lines = Vec::new();
        for (sku, quantity) in items {
            // Refurbed items are one unit each: a quantity becomes that many items.
            let (count, unit) = match mp {
                Marketplace::Refurbed => (*quantity, 1),
                _ => (1, *quantity),
            };
            for _ in 0..count {
                lines.push(Item {
                    id: self.next_id(),
                    sku: sku.clone(),
                    quantity: unit,
                    state: state.to_owned(),
                    tracking_url: None,
                });
            }
            if mp == Marketplace::BackMarket
                && let Some(listing) = self.mp(mp).listings.get_mut(sku)
            {
                listing.quantity = (listing.quantity - i64::from(*quantity)).max(0);
            }
        }
        let order = Order {
            id,
            marketplace: mp,
            status: state.to_owned(),
            items: lines,
            created_at: now,
            modified_at: now,
            completed_at: (state == "completed").then_some(now),
            document_url,
            tracking_number: None,
            tracking_url: None,
            shipper: None,
            shipped_at: None,
        };
        self.mp(mp).orders.insert(id, order.clone());
        Ok(order)
    }

    /// Moves an order (WooCommerce) or its items (one, or every item that can
    /// legally make the move) to `to`, enforcing the marketplace's transitions.
    pub fn move_order(
        &mut self,
        mp: Marketplace,
        order_id: u64,
        item: Option<ItemSelector<'_>>,
        to: &str,
    ) -> Result<Order, MoveError> {
        let order = self
            .mp(mp)
            .orders
            .get_mut(&order_id)
            .ok_or(MoveError::NoOrder)?;
        let now = Utc::now();
        if mp == Marketplace::WooCommerce {
            if !mp.legal_move(&order.status, to) {
                return Err(MoveError::Illegal(format!("unknown status {to:?}")));
            }
            order.status = to.to_owned();
            for line in &mut order.items {
                line.state = to.to_owned();
            }
            if to == "completed" {
                order.completed_at = Some(now);
            }
        } else {
            let targets: Vec<usize> = match item {
                Some(selector) => {
                    // Two lines may share a SKU: take the first that can move.
                    let matching: Vec<usize> = (0..order.items.len())
                        .filter(|&i| selector.matches(&order.items[i]))
                        .collect();
                    let first = *matching.first().ok_or(MoveError::NoItem)?;
                    let index = matching
                        .into_iter()
                        .find(|&i| mp.legal_move(&order.items[i].state, to))
                        .ok_or_else(|| {
                            MoveError::Illegal(format!(
                                "item {} cannot go from {} to {to}",
                                order.items[first].id, order.items[first].state
                            ))
                        })?;
                    vec![index]
                }
                None => (0..order.items.len())
                    .filter(|&i| mp.legal_move(&order.items[i].state, to))
                    .collect(),
            };
            if targets.is_empty() {
                return Err(MoveError::Illegal(format!(
                    "no item of order {order_id} can go to {to}"
                )));
            }
            for index in targets {
                order.items[index].state = to.to_owned();
            }
        }
        order.modified_at = now;
        Ok(order.clone())
    }

    pub fn begin_request(&mut self, mp: Marketplace, method: &str, path: &str) -> u64 {
        let id = self.next_id();
        self.requests.push(RequestRecord {
            id,
            marketplace: mp,
            method: method.to_owned(),
            path: path.to_owned(),
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

/// How a command names an item: by id, or (Back Market) by SKU.
#[derive(Debug, Clone, Copy)]
pub enum ItemSelector<'a> {
    Id(u64),
    Sku(&'a str),
}

impl ItemSelector<'_> {
    fn matches(&self, item: &Item) -> bool {
        match self {
            ItemSelector::Id(id) => item.id == *id,
            ItemSelector::Sku(sku) => item.sku == *sku,
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum MoveError {
    NoOrder,
    NoItem,
    Illegal(String),
}

impl fmt::Display for MoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveError::NoOrder => f.write_str("order not found"),
            MoveError::NoItem => f.write_str("order item not found"),
            MoveError::Illegal(message) => f.write_str(message),
        }
    }
}

/// Back Market's order state, derived from its lines.
pub fn backmarket_order_state(items: &[Item]) -> u8 {
    let states: Vec<u8> = items.iter().filter_map(|i| i.state.parse().ok()).collect();
    let open: Vec<u8> = states
        .iter()
        .copied()
        .filter(|s| !matches!(s, 4 | 5 | 7))
        .collect();
    if open.is_empty() {
        // Every line cancelled, refunded or unpaid: nothing left to do.
        8
    } else if open.iter().any(|s| matches!(s, 0 | 9)) {
        0
    } else if open.contains(&8) {
        10
    } else if open.contains(&1) {
        1
    } else if open.iter().all(|s| matches!(s, 3 | 6)) {
        9
    } else {
        3
    }
}

/// Refurbed's order state, derived from its items.
pub fn refurbed_order_state(items: &[Item]) -> &'static str {
    let has = |state: &str| items.iter().any(|i| i.state == state);
    let only = |allowed: &[&str]| items.iter().all(|i| allowed.contains(&i.state.as_str()));
    if has("NEW") {
        "NEW"
    } else if has("ACCEPTED") {
        "ACCEPTED"
    } else if only(&["REJECTED"]) {
        "REJECTED"
    } else if only(&["CANCELLED"]) {
        "CANCELLED"
    } else if only(&["REJECTED", "CANCELLED"]) {
        "UNFULFILLED"
    } else if only(&["SHIPPED"]) {
        "SHIPPED"
    } else if only(&["RETURNED"]) {
        "RETURNED"
    } else if only(&["SHIPPED", "RETURNED"]) {
        "FULFILLED"
    } else {
        "PARTIALLY_FULFILLED"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn items(states: &[&str]) -> Vec<Item> {
        states
            .iter()
            .map(|state| Item {
                id: 1,
                sku: "A".into(),
                quantity: 1,
                state: (*state).into(),
                tracking_url: None,
            })
            .collect()
    }

    #[test]
    fn backmarket_order_state_follows_lines() {
        assert_eq!(backmarket_order_state(&items(&["0"])), 0);
        assert_eq!(backmarket_order_state(&items(&["8"])), 10);
        assert_eq!(backmarket_order_state(&items(&["1", "2"])), 1);
        assert_eq!(backmarket_order_state(&items(&["2", "4"])), 3);
        assert_eq!(backmarket_order_state(&items(&["3", "3"])), 9);
        assert_eq!(backmarket_order_state(&items(&["4", "7"])), 8);
    }

    #[test]
    fn refurbed_order_state_follows_items() {
        assert_eq!(refurbed_order_state(&items(&["NEW", "ACCEPTED"])), "NEW");
        assert_eq!(
            refurbed_order_state(&items(&["ACCEPTED", "SHIPPED"])),
            "ACCEPTED"
        );
        assert_eq!(
            refurbed_order_state(&items(&["REJECTED", "CANCELLED"])),
            "UNFULFILLED"
        );
        assert_eq!(
            refurbed_order_state(&items(&["SHIPPED", "RETURNED"])),
            "FULFILLED"
        );
        assert_eq!(
            refurbed_order_state(&items(&["SHIPPED", "CANCELLED"])),
            "PARTIALLY_FULFILLED"
        );
    }

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

    #[test]
    fn rate_windows_count_and_reset() {
        let limit = RateLimit {
            requests: 2,
            window_ms: 1000,
        };
        let mut window = Window::default();
        let start = Instant::now();
        assert_eq!(window.admit(limit, start), Ok(1));
        assert_eq!(window.admit(limit, start), Ok(0));
        assert!(
            window
                .admit(limit, start + Duration::from_millis(10))
                .is_err()
        );
        assert_eq!(
            window.admit(limit, start + Duration::from_millis(1000)),
            Ok(1)
        );
    }

    #[test]
    fn backmarket_orders_decrement_listings() {
        let mut inner = Inner::new(1);
        inner.upsert_listing(Marketplace::BackMarket, "A", 3, None, None);
        inner.upsert_listing(Marketplace::Refurbed, "A", 3, None, None);
        inner
            .create_order(Marketplace::BackMarket, &[("A".into(), 2)], None, None)
            .unwrap();
        let order = inner
            .create_order(Marketplace::Refurbed, &[("A".into(), 2)], None, None)
            .unwrap();
        assert_eq!(inner.mp(Marketplace::BackMarket).listings["A"].quantity, 1);
        assert_eq!(inner.mp(Marketplace::Refurbed).listings["A"].quantity, 3);
        assert_eq!(order.items.len(), 2);
        assert!(order.items.iter().all(|i| i.quantity == 1));
    }

    #[test]
    fn an_order_for_more_than_a_listing_shows_is_refused() {
        let mut inner = Inner::new(1);
        for mp in Marketplace::ALL {
            inner.upsert_listing(mp, "A", 2, None, None);
            let two_lines = [("A".to_owned(), 1), ("A".to_owned(), 2)];
            let refused = inner.create_order(mp, &two_lines, None, None);
            assert!(
                matches!(&refused, Err(OrderRefused::NotEnoughShown { listing, requested: 3 }) if listing.quantity == 2),
                "{mp}: {refused:?}"
            );
            assert!(inner.mp(mp).orders.is_empty(), "{mp}: nothing placed");
            assert_eq!(inner.mp(mp).listings["A"].quantity, 2);
            inner
                .create_order(mp, &[("A".into(), 2)], None, None)
                .unwrap();
            // A SKU the simulator does not list is unmanaged and sells.
            inner
                .create_order(mp, &[("UNLISTED".into(), 5)], None, None)
                .unwrap();
        }
        let bm = Marketplace::BackMarket;
        assert_eq!(inner.mp(bm).listings["A"].quantity, 0);
        assert!(
            inner
                .create_order(bm, &[("A".into(), 1)], None, None)
                .is_err()
        );
    }
}
