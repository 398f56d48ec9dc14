//! Orders and care cases: placing orders, moving them or their items along
//! each marketplace's legal transitions, and the order state derived from items.

use super::{Inner, Listing, Marketplace};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

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

/// Back Market: the parcel a shipped order carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipment {
    pub tracking_number: String,
    pub shipper: Option<String>,
    pub tracking_url: Option<String>,
}

impl Shipment {
    /// A parcel for an order shipped outside the seller API (the control
    /// API, or placed shipped): a UPS-like number unique to the order.
    fn simulated(order_id: u64) -> Self {
        let tracking_number = format!("1ZSIM{order_id:013}");
        Shipment {
            tracking_url: Some(format!(
                "https://www.ups.com/track?tracknum={tracking_number}"
            )),
            shipper: Some("UPS".to_owned()),
            tracking_number,
        }
    }
}

impl Order {
    /// Records the parcel and when it left.
    pub fn ship(&mut self, shipment: Shipment, at: DateTime<Utc>) {
        self.tracking_number = Some(shipment.tracking_number);
        self.shipper = shipment.shipper;
        self.tracking_url = shipment.tracking_url;
        self.shipped_at = Some(at);
    }

    /// Back Market: a line has left (shipped, 3, or refunded after
    /// shipping, 6) and the order carries no parcel yet, as a real
    /// shipped order always does.
    fn record_parcel_once_shipped(&mut self, at: DateTime<Utc>) {
        let shipped = self
            .items
            .iter()
            .any(|i| matches!(i.state.as_str(), "3" | "6"));
        if self.marketplace == Marketplace::BackMarket && shipped && self.shipped_at.is_none() {
            self.ship(Shipment::simulated(self.id), at);
        }
    }
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
impl Inner {
    /// Places an order. A listing that shows fewer units than the order
    /// asks for refuses it, as marketplaces do (a SKU the simulator does not
    /// list at all is taken as unmanaged and sells). Every marketplace
    /// takes the units off the listing itself, as real ones do (design.md:
    /// a push of an increase can undo that decrement for an order the
    /// fleet has not fetched yet).
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
            if let Some(listing) = self.mp(mp).listings.get_mut(sku) {
                listing.quantity = (listing.quantity - i64::from(*quantity)).max(0);
            }
        }
        let mut order = Order {
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
        order.record_parcel_once_shipped(now);
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
            order.record_parcel_once_shipped(now);
        }
        order.modified_at = now;
        Ok(order.clone())
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
    fn every_marketplace_takes_an_order_s_units_off_its_listing() {
        let mut inner = Inner::new(1);
        for mp in Marketplace::ALL {
            inner.upsert_listing(mp, "A", 3, None, None);
            let order = inner
                .create_order(mp, &[("A".into(), 2)], None, None)
                .unwrap();
            assert_eq!(inner.mp(mp).listings["A"].quantity, 1, "{mp}");
            let units: u32 = order.items.iter().map(|item| item.quantity).sum();
            assert_eq!(units, 2, "{mp}");
        }
        let refurbed = inner
            .mp(Marketplace::Refurbed)
            .orders
            .values()
            .next()
            .unwrap();
        assert!(refurbed.items.len() == 2 && refurbed.items.iter().all(|i| i.quantity == 1));
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
