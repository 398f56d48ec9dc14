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

impl Listing {
    /// Back Market's UUID listing id, derived from the numeric one.
    pub fn uuid(&self) -> String {
        format!("00000000-0000-4000-8000-{:012x}", self.id)
    }
}
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub marketplace: Marketplace,
    pub sku: String,
    pub quantity: i64,
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
}
