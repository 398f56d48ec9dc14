//! Listings: what each marketplace shows, and the merchant's quantity writes.

use super::{Inner, Marketplace};
use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// What precedes the hex listing id in Back Market's UUID form.
const UUID_PREFIX: &str = "00000000-0000-4000-8000-";

impl Listing {
    /// Back Market's UUID listing id, derived from the numeric one.
    pub fn uuid(&self) -> String {
        format!("{UUID_PREFIX}{:012x}", self.id)
    }
}
/// A quantity write received through a marketplace API.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub marketplace: Marketplace,
    pub sku: String,
    pub quantity: i64,
    /// False when the ack-without-apply fault answered it without storing it.
    pub applied: bool,
    pub at: DateTime<Utc>,
}
impl Inner {
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
        let state = self.mp(mp);
        state.listing_skus.insert(id, sku.to_owned());
        state.listings.insert(sku.to_owned(), listing.clone());
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

    /// A merchant's stock write through a marketplace API, recorded as a
    /// push; returns the listing as the answer shows it. Under the
    /// ack-without-apply fault the stored quantity stays and the push is
    /// marked not applied, while the answer still shows the quantity asked
    /// for, as a backend that drops writes would.
    pub fn push_quantity(&mut self, mp: Marketplace, sku: &str, quantity: i64) -> Option<Listing> {
        // A write to an unknown listing is refused: it uses no counted fault.
        let stored = self.mp(mp).listings.get(sku)?.clone();
        let applied = !self.acks_without_applying(mp);
        if applied && let Some(listing) = self.mp(mp).listings.get_mut(sku) {
            listing.quantity = quantity;
        }
        self.pushes.push(Push {
            marketplace: mp,
            sku: sku.to_owned(),
            quantity,
            applied,
            at: Utc::now(),
        });
        Some(Listing { quantity, ..stored })
    }

    /// A merchant's price write through a marketplace API (no push: pushes are quantities).
    pub fn set_price(&mut self, mp: Marketplace, sku: &str, price: String) -> Option<Listing> {
        let listing = self.mp(mp).listings.get_mut(sku)?;
        listing.price = price;
        Some(listing.clone())
    }

    /// By numeric id or Back Market's UUID form of it.
    pub fn listing_by_id(&mut self, mp: Marketplace, id: &str) -> Option<Listing> {
        let numeric = match id.strip_prefix(UUID_PREFIX) {
            Some(hex) => u64::from_str_radix(hex, 16).ok()?,
            None => id.parse().ok()?,
        };
        let state = self.mp(mp);
        let listing = state.listings.get(state.listing_skus.get(&numeric)?)?;
        // Only the canonical spelling of either form names the listing.
        (listing.id.to_string() == id || listing.uuid() == id).then(|| listing.clone())
    }
}
