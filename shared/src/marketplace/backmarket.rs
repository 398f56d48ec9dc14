//! Back Market seller API (`/ws/…`): token auth, `next`-URL pagination,
//! statuses per orderline, listings resolved by SKU.

use super::budget::EndpointClass;
use super::http::{HttpClient, Reply};
use super::wire::{Id, decode, format_time, from_value, parse_time};
use super::{
    CareCase, CarePage, Marketplace, MarketplaceConfig, MarketplaceError, MarketplaceOrder,
    MarketplaceOrderItem, OrderItemRef, OrderPage, OrderQuery, OrderStatusUpdate, PageToken,
    select_items,
};
use crate::domain::OrderStatus;
use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, AUTHORIZATION, HeaderMap, USER_AGENT};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

/// The documented maximum of `page-size`.
const PAGE_SIZE: &str = "50";
const DEFAULT_USER_AGENT: &str = "BM-stockfleet-stockfleet;stockfleet@localhost";

/// Orderline state → normalised status (docs/marketplaces.md).
pub(crate) fn line_status(state: i64) -> Option<OrderStatus> {
    match state {
        0 | 8 | 9 => Some(OrderStatus::Unpaid),
        1 => Some(OrderStatus::Pending),
        2 => Some(OrderStatus::Accepted),
        3 => Some(OrderStatus::Shipped),
        4 | 5 | 7 => Some(OrderStatus::Cancelled),
        6 => Some(OrderStatus::Returned),
        _ => None,
    }
}

/// Order state (derived by Back Market from its lines) → normalised status.
pub(crate) fn order_status(state: i64) -> Option<OrderStatus> {
    match state {
        0 | 10 => Some(OrderStatus::Unpaid),
        1 => Some(OrderStatus::Pending),
        3 => Some(OrderStatus::Accepted),
        8 => Some(OrderStatus::Cancelled),
        9 => Some(OrderStatus::Shipped),
        _ => None,
    }
}

/// The line state a merchant sends to move a line to `target`, given its
/// current state; None when Back Market has no such move.
fn new_line_state(target: OrderStatus, current: Option<OrderStatus>) -> Option<i64> {
    match (target, current) {
        (OrderStatus::Accepted, _) => Some(2),
        (OrderStatus::Cancelled, Some(OrderStatus::Accepted)) => Some(5),
        (OrderStatus::Cancelled, _) => Some(4),
        (OrderStatus::Shipped, _) => Some(3),
        (OrderStatus::Returned, _) => Some(6),
        (OrderStatus::Unpaid | OrderStatus::Pending, _) => None,
    }
}

#[derive(Deserialize)]
struct Page {
    next: Option<String>,
    results: Vec<Value>,
}

#[derive(Deserialize)]
struct Order {
    order_id: Id,
    state: i64,
    date_creation: Option<String>,
    date_modification: Option<String>,
    delivery_note: Option<String>,
    #[serde(default)]
    orderlines: Vec<Line>,
}

#[derive(Deserialize)]
struct Line {
    id: Id,
    state: i64,
    /// The seller SKU.
    listing: Option<String>,
    quantity: u32,
}

#[derive(Deserialize)]
struct CareFolder {
    id: Id,
    orderline: Option<Id>,
    state: i64,
    date_creation: Option<String>,
    date_modification: Option<String>,
}

#[derive(Deserialize)]
struct Listing {
    id: Id,
    quantity: i64,
}

pub(crate) fn parse_order(raw: Value) -> Result<MarketplaceOrder, MarketplaceError> {
    let order: Order = from_value(&raw)?;
    Ok(MarketplaceOrder {
        external_id: order.order_id.0,
        status: order_status(order.state),
        raw_status: order.state.to_string(),
        created_at: parse_time(order.date_creation.as_deref()),
        modified_at: parse_time(order.date_modification.as_deref()),
        delivery_note_url: order.delivery_note.filter(|url| !url.is_empty()),
        // Only sellers shipping with Back Market get labels, from another endpoint.
        label_url: None,
        items: order
            .orderlines
            .into_iter()
            .map(|line| MarketplaceOrderItem {
                external_id: line.id.0,
                sku: line.listing.unwrap_or_default(),
                quantity: line.quantity,
                status: line_status(line.state),
                raw_status: line.state.to_string(),
                needs_acceptance: line.state == 1,
            })
            .collect(),
        raw,
    })
}

pub(crate) fn parse_care_folder(raw: Value) -> Result<CareCase, MarketplaceError> {
    let folder: CareFolder = from_value(&raw)?;
    Ok(CareCase {
        external_id: folder.id.0,
        order_id: None,
        item_external_id: folder.orderline.map(|id| id.0),
        raw_state: folder.state.to_string(),
        open: folder.state == 0,
        created_at: parse_time(folder.date_creation.as_deref()),
        modified_at: parse_time(folder.date_modification.as_deref()),
        raw,
    })
}

/// A page of results and the token of the next one.
pub(crate) fn parse_page<T>(
    body: &[u8],
    parse: fn(Value) -> Result<T, MarketplaceError>,
) -> Result<(Vec<T>, Option<PageToken>), MarketplaceError> {
    let page: Page = decode(body)?;
    let items = page
        .results
        .into_iter()
        .map(parse)
        .collect::<Result<_, _>>()?;
    Ok((items, page.next.as_deref().and_then(next_token)))
}

/// The token is the query string of `next` only: the next request goes to our
/// configured host, never to whatever host the body names (our token goes
/// with every request).
fn next_token(next: &str) -> Option<PageToken> {
    let query = next.split_once('?').map(|(_, query)| query)?;
    let query = query.split('#').next().unwrap_or_default();
    (!query.is_empty()).then(|| PageToken(query.to_owned()))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_table() {
        use OrderStatus::*;
        let expected = [
            (0, Some(Unpaid)),
            (1, Some(Pending)),
            (2, Some(Accepted)),
            (3, Some(Shipped)),
            (4, Some(Cancelled)),
            (5, Some(Cancelled)),
            (6, Some(Returned)),
            (7, Some(Cancelled)),
            (8, Some(Unpaid)),
            (9, Some(Unpaid)),
            (10, None),
            (-1, None),
        ];
        for (state, status) in expected {
            assert_eq!(line_status(state), status, "line state {state}");
        }
        assert_eq!(order_status(0), Some(Unpaid));
        assert_eq!(order_status(10), Some(Unpaid));
        assert_eq!(order_status(1), Some(Pending));
        assert_eq!(order_status(3), Some(Accepted));
        assert_eq!(order_status(8), Some(Cancelled));
        assert_eq!(order_status(9), Some(Shipped));
        assert_eq!(order_status(2), None);
    }

    #[test]
    fn golden_orders_page() {
        let body = include_bytes!("../../tests/fixtures/backmarket/orders_page.json");
        let (orders, next) = parse_page(body, parse_order).unwrap();
        assert_eq!(next, Some(PageToken("page=2&page-size=50".into())));
        assert_eq!(orders.len(), 2);
        let order = &orders[0];
        assert_eq!(order.external_id, "40021");
        assert_eq!(order.status, Some(OrderStatus::Pending));
        assert_eq!(order.raw_status, "1");
        assert_eq!(order.delivery_note_url, None);
        assert_eq!(
            order.created_at.map(format_time).as_deref(),
            Some("2026-03-01T09:15:00Z")
        );
        assert_eq!(order.items.len(), 2);
        assert_eq!(order.items[0].sku, "IPH12-128-BLK-A");
        assert_eq!(order.items[0].quantity, 1);
        assert!(order.items[0].needs_acceptance);
        assert_eq!(order.items[1].status, Some(OrderStatus::Cancelled));
        assert_eq!(order.raw["price"], "299.25");
        let shipped = &orders[1];
        assert_eq!(shipped.status, Some(OrderStatus::Shipped));
        assert_eq!(
            shipped.delivery_note_url.as_deref(),
            Some("https://www.backmarket.fr/invoice/40022.pdf")
        );
        assert_eq!(shipped.items[0].quantity, 2);
    }

    #[test]
    fn golden_care_page_and_listing() {
        let body = include_bytes!("../../tests/fixtures/backmarket/care_page.json");
        let (cases, next) = parse_page(body, parse_care_folder).unwrap();
        assert_eq!(next, None);
        assert_eq!(cases[0].item_external_id.as_deref(), Some("90001"));
        assert!(cases[0].open);
        assert!(!cases[1].open);
        let listing: Listing = decode(include_bytes!(
            "../../tests/fixtures/backmarket/listing.json"
        ))
        .unwrap();
        assert_eq!(listing.quantity, 15);
    }

    #[test]
    fn unknown_fields_and_missing_optionals_parse() {
        let order = parse_order(json!({
            "order_id": 1, "state": 42, "surprise": {"x": 1},
            "orderlines": [{"id": "7", "state": 99, "quantity": 1, "listing": null}]
        }))
        .unwrap();
        assert_eq!(order.status, None);
        assert_eq!(order.raw_status, "42");
        assert_eq!(order.items[0].status, None);
        assert_eq!(order.items[0].sku, "");
        let error = parse_order(json!({"order_id": 1})).unwrap_err();
        assert!(error.message().contains("missing field `state`"), "{error}");
    }

    #[test]
    fn next_tokens_keep_only_the_query() {
        assert_eq!(
            next_token("https://evil.example/ws/orders?page=3&page-size=50#x"),
            Some(PageToken("page=3&page-size=50".into()))
        );
        assert_eq!(next_token("https://www.backmarket.fr/ws/orders"), None);
    }

    proptest! {
        #[test]
        fn parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_page(&body, parse_order);
            let _ = parse_page(&body, parse_care_folder);
        }

        #[test]
        fn mutated_golden_orders_never_panic(
            cut in 0usize..2000, byte in any::<u8>(), at in 0usize..2000
        ) {
            let mut body = include_bytes!("../../tests/fixtures/backmarket/orders_page.json").to_vec();
            let at = at % body.len();
            body[at] = byte;
            body.truncate(cut.max(1));
            let _ = parse_page(&body, parse_order);
        }

        #[test]
        fn arbitrary_json_orders_never_panic(value in super::super::wire::tests::arbitrary_json()) {
            let _ = parse_order(value);
        }
    }
}
