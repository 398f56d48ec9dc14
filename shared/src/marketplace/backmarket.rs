//! Back Market seller API (`/ws/…`): token auth, `next`-URL pagination,
//! statuses per orderline, listings resolved by SKU.

mod parse;
mod status;

use super::budget::EndpointClass;
use super::http::{HttpClient, Reply};
use super::wire::{decode, format_time};
use super::{
    CarePage, Marketplace, MarketplaceConfig, MarketplaceError, MarketplaceOrder, OrderItemRef,
    OrderPage, OrderQuery, OrderStatusUpdate, PageToken, select_items,
};
use crate::domain::OrderStatus;
use chrono::{DateTime, Utc};
use parse::{Listing, parse_care_folder, parse_order, parse_page};
use reqwest::Method;
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, AUTHORIZATION, HeaderMap, USER_AGENT};
use serde_json::{Value, json};
use status::new_line_state;
use std::collections::HashMap;
use std::sync::Mutex;

/// The documented maximum of `page-size`.
const PAGE_SIZE: &str = "50";
const DEFAULT_USER_AGENT: &str = "BM-stockfleet-stockfleet;stockfleet@localhost";

/// `order_id` as Back Market sends it: a number when it is one.
fn order_id_json(order_id: &str) -> Value {
    order_id
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(order_id))
}

pub(crate) struct BackMarket {
    code: String,
    http: HttpClient,
    /// SKU → listing id: stock writes go by id, and the listing endpoints have
    /// a tight rate limit (20 per 10 s), so resolve each SKU once.
    listing_ids: Mutex<HashMap<String, String>>,
}

/// Back Market's listing endpoints have their own limit (20 per 10 s); every
/// other call counts against the general one.
fn endpoint_class(path: &str) -> EndpointClass {
    if path.contains("/ws/listings") {
        EndpointClass::Listings
    } else {
        EndpointClass::Orders
    }
}

impl BackMarket {
    pub(crate) fn new(config: MarketplaceConfig) -> Result<Self, MarketplaceError> {
        let token = config.credential.expose();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HttpClient::header_value(&format!("Basic {token}"))?,
        );
        headers.insert(ACCEPT, HttpClient::header_value("application/json")?);
        // The language selects a country; quantities are global across countries.
        headers.insert(ACCEPT_LANGUAGE, HttpClient::header_value("fr-fr")?);
        headers.insert(
            USER_AGENT,
            HttpClient::header_value(config.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT))?,
        );
        let http = HttpClient::new(&config, headers, vec![token.to_owned()], endpoint_class)?;
        Ok(BackMarket {
            code: config.code,
            http,
            listing_ids: Mutex::new(HashMap::new()),
        })
    }

    async fn get_page(
        &self,
        path: &[&str],
        first: &[(&str, String)],
        page: Option<PageToken>,
    ) -> Result<Reply, MarketplaceError> {
        let mut url = self.http.url(path);
        match page {
            Some(token) => url.set_query(Some(&token.0)),
            None => {
                url.query_pairs_mut().extend_pairs(first);
            }
        }
        self.http.send(self.http.request(Method::GET, url)).await
    }

    /// Without `state`, Back Market leaves out orders in states 0 and 8, so an
    /// order cancelled (or never paid) since the last sync would never be seen
    /// again: the modified sync walks the default listing, then states 0 and 8.
    /// The page token is `<walk>;<query of the next page>`.
    async fn list_modified(
        &self,
        since: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError> {
        const WALKS: [Option<&str>; 3] = [None, Some("0"), Some("8")];
        let (walk, inner) = match &page {
            Some(token) => {
                let (walk, query) = token.0.split_once(';').unwrap_or(("0", &token.0));
                let walk: usize = walk.parse().unwrap_or(0).min(WALKS.len() - 1);
                (
                    walk,
                    (!query.is_empty()).then(|| PageToken(query.to_owned())),
                )
            }
            None => (0, None),
        };
        let mut first = vec![
            ("date_modification", format_time(since)),
            ("page-size", PAGE_SIZE.to_owned()),
        ];
        if let Some(state) = WALKS[walk] {
            first.push(("state", state.to_owned()));
        }
        let reply = self.get_page(&["ws", "orders"], &first, inner).await?;
        let (orders, next) = parse_page(&reply.body, parse_order)?;
        let next = match next {
            Some(next) => Some(PageToken(format!("{walk};{}", next.0))),
            None if walk + 1 < WALKS.len() => Some(PageToken(format!("{};", walk + 1))),
            None => None,
        };
        Ok(OrderPage { orders, next })
    }

    async fn post_order(&self, order_id: &str, body: Value) -> Result<(), MarketplaceError> {
        let url = self.http.url(&["ws", "orders", order_id]);
        self.http
            .send(self.http.request(Method::POST, url).json(&body))
            .await
            .map(drop)
    }

    async fn listing_id(&self, sku: &str) -> Result<String, MarketplaceError> {
        if let Some(id) = self.cached_listing_id(sku) {
            return Ok(id);
        }
        Ok(self.listing_by_sku(sku).await?.id.0)
    }

    fn cached_listing_id(&self, sku: &str) -> Option<String> {
        self.listing_ids.lock().expect("poisoned").get(sku).cloned()
    }

    async fn listing_by_sku(&self, sku: &str) -> Result<Listing, MarketplaceError> {
        let mut url = self.http.url(&["ws", "listings", "detail"]);
        url.query_pairs_mut().append_pair("sku", sku);
        let reply = self.http.send(self.http.request(Method::GET, url)).await?;
        let listing: Listing = decode(&reply.body)?;
        self.listing_ids
            .lock()
            .expect("poisoned")
            .insert(sku.to_owned(), listing.id.0.clone());
        Ok(listing)
    }
}

#[async_trait::async_trait]
impl Marketplace for BackMarket {
    fn code(&self) -> &str {
        &self.code
    }

    async fn list_orders(
        &self,
        query: &OrderQuery,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError> {
        if let OrderQuery::ModifiedSince(since) = query {
            return self.list_modified(*since, page).await;
        }
        let state = if *query == OrderQuery::New { "1" } else { "3" };
        let first = [
            ("state", state.to_owned()),
            ("page-size", PAGE_SIZE.to_owned()),
        ];
        let reply = self.get_page(&["ws", "orders"], &first, page).await?;
        let (mut orders, next) = parse_page(&reply.body, parse_order)?;
        if *query == OrderQuery::Incomplete {
            orders.retain(|order| order.delivery_note_url.is_none());
        }
        Ok(OrderPage { orders, next })
    }

    async fn get_order(&self, order_id: &str) -> Result<MarketplaceOrder, MarketplaceError> {
        let url = self.http.url(&["ws", "orders", order_id]);
        let reply = self.http.send(self.http.request(Method::GET, url)).await?;
        parse_order(decode(&reply.body)?)
    }

    async fn list_care(
        &self,
        since: Option<DateTime<Utc>>,
        page: Option<PageToken>,
    ) -> Result<CarePage, MarketplaceError> {
        let first: Vec<_> = since
            .map(|at| {
                (
                    "last_modification_date",
                    at.format("%Y-%m-%d-%H-%M").to_string(),
                )
            })
            .into_iter()
            .collect();
        let reply = self.get_page(&["ws", "sav"], &first, page).await?;
        let (cases, next) = parse_page(&reply.body, parse_care_folder)?;
        Ok(CarePage { cases, next })
    }

    async fn accept_orderline(
        &self,
        order_id: &str,
        item: &OrderItemRef,
    ) -> Result<(), MarketplaceError> {
        let body = json!({"order_id": order_id_json(order_id), "new_state": 2, "sku": item.sku});
        self.post_order(order_id, body).await
    }

    async fn update_order_status(
        &self,
        order_id: &str,
        update: &OrderStatusUpdate,
    ) -> Result<(), MarketplaceError> {
        if update.status == OrderStatus::Shipped {
            // Shipping moves every line at once and needs a tracking number.
            let tracking = update.tracking.as_ref();
            let number = tracking.and_then(|t| t.number.clone()).ok_or_else(|| {
                MarketplaceError::invalid("Back Market needs a tracking number to ship")
            })?;
            let mut body = json!({"order_id": order_id_json(order_id), "new_state": 3, "tracking_number": number});
            if let Some(carrier) = tracking.and_then(|t| t.carrier.as_deref()) {
                body["shipper"] = carrier.into();
            }
            if let Some(url) = tracking.and_then(|t| t.url.as_deref()) {
                body["tracking_url"] = url.into();
            }
            return self.post_order(order_id, body).await;
        }
        let order = self.get_order(order_id).await?;
        for line in select_items(&order, update)? {
            let new_state = new_line_state(update.status, line.status).ok_or_else(|| {
                MarketplaceError::invalid(format!(
                    "Back Market lines cannot be set to {}",
                    update.status
                ))
            })?;
            let body = json!({"order_id": order_id_json(order_id), "new_state": new_state, "sku": line.sku});
            self.post_order(order_id, body).await?;
        }
        Ok(())
    }

    async fn listing_quantity(&self, sku: &str) -> Result<u32, MarketplaceError> {
        let listing = self.listing_by_sku(sku).await?;
        u32::try_from(listing.quantity.max(0)).map_err(|_| {
            MarketplaceError::invalid(format!(
                "listing quantity out of range: {}",
                listing.quantity
            ))
        })
    }

    async fn set_listing_quantity(&self, sku: &str, quantity: u32) -> Result<(), MarketplaceError> {
        let id = self.listing_id(sku).await?;
        let url = self.http.url(&["ws", "listings", &id]);
        let result = self
            .http
            .send(
                self.http
                    .request(Method::POST, url)
                    .json(&json!({"quantity": quantity})),
            )
            .await;
        if let Err(MarketplaceError::Permanent {
            status: Some(404), ..
        }) = result
        {
            // The listing was replaced: resolve the SKU again next time.
            self.listing_ids.lock().expect("poisoned").remove(sku);
        }
        result.map(drop)
    }
}
