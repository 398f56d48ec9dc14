//! Refurbed merchant API through its HTTP/JSON gateway: every call is a POST
//! to `/refb.merchant.v1.<Service>/<Method>`, cursor pagination with
//! `starting_after` + `has_more`, statuses per item, one unit per item.

use super::budget::EndpointClass;
use super::http::HttpClient;
use super::wire::{Id, decode, from_value, parse_time};
use super::{
    CareCase, CarePage, Marketplace, MarketplaceConfig, MarketplaceError, MarketplaceOrder,
    MarketplaceOrderItem, OrderItemRef, OrderPage, OrderQuery, OrderStatusUpdate, PageToken,
    select_items,
};
use crate::domain::OrderStatus;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};

/// The documented maximum of `pagination.limit`.
const PAGE_LIMIT: u32 = 100;
/// Item state → normalised status (docs/marketplaces.md).
pub(crate) fn item_status(state: &str) -> Option<OrderStatus> {
    match state {
        "NEW" => Some(OrderStatus::Pending),
        "ACCEPTED" => Some(OrderStatus::Accepted),
        "SHIPPED" => Some(OrderStatus::Shipped),
        "REJECTED" | "CANCELLED" => Some(OrderStatus::Cancelled),
        "RETURNED" => Some(OrderStatus::Returned),
        _ => None,
    }
}

/// Order state (derived by Refurbed from its items) → normalised status.
pub(crate) fn order_status(state: &str) -> Option<OrderStatus> {
    match state {
        "NEW" => Some(OrderStatus::Pending),
        "ACCEPTED" => Some(OrderStatus::Accepted),
        "SHIPPED" | "FULFILLED" | "PARTIALLY_FULFILLED" => Some(OrderStatus::Shipped),
        "REJECTED" | "CANCELLED" | "UNFULFILLED" => Some(OrderStatus::Cancelled),
        "RETURNED" => Some(OrderStatus::Returned),
        _ => None,
    }
}

/// The item state a merchant sets for a normalised target.
fn item_state(target: OrderStatus) -> Option<&'static str> {
    match target {
        OrderStatus::Accepted => Some("ACCEPTED"),
        OrderStatus::Shipped => Some("SHIPPED"),
        OrderStatus::Cancelled => Some("CANCELLED"),
        OrderStatus::Returned => Some("RETURNED"),
        OrderStatus::Unpaid | OrderStatus::Pending => None,
    }
}

#[derive(Deserialize)]
struct OrdersPage {
    /// The JSON gateway omits empty lists and false booleans.
    #[serde(default)]
    orders: Vec<Value>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct ReturnsPage {
    #[serde(default)]
    returns: Vec<Value>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct OrderEnvelope {
    order: Value,
}

#[derive(Deserialize)]
struct OfferEnvelope {
    offer: Offer,
}

#[derive(Deserialize)]
struct Offer {
    #[serde(default)]
    stock: u32,
}

#[derive(Deserialize)]
struct Order {
    id: Id,
    state: String,
    released_at: Option<String>,
    #[serde(default)]
    labels: Vec<Value>,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    id: Id,
    sku: Option<String>,
    state: String,
}

#[derive(Deserialize)]
struct Return {
    id: Id,
    order_id: Option<Id>,
    order_item_id: Option<Id>,
    state: String,
    return_initiated_at: Option<String>,
}

pub(crate) fn parse_order(raw: Value) -> Result<MarketplaceOrder, MarketplaceError> {
    let order: Order = from_value(&raw)?;
    let released_at = parse_time(order.released_at.as_deref());
    Ok(MarketplaceOrder {
        external_id: order.id.0,
        status: order_status(&order.state),
        raw_status: order.state,
        created_at: released_at,
        // Refurbed exposes no modification time.
        modified_at: None,
        delivery_note_url: None,
        // The spec leaves the label's shape open: accept a URL string or an
        // object with a `url`/`label_url` field.
        label_url: order.labels.iter().find_map(|label| {
            [label, &label["url"], &label["label_url"]]
                .into_iter()
                .find_map(Value::as_str)
                .map(str::to_owned)
        }),
        items: order
            .items
            .into_iter()
            .map(|item| MarketplaceOrderItem {
                external_id: item.id.0,
                sku: item.sku.unwrap_or_default(),
                quantity: 1,
                status: item_status(&item.state),
                needs_acceptance: item.state == "NEW",
                raw_status: item.state,
            })
            .collect(),
        raw,
    })
}

pub(crate) fn parse_return(raw: Value) -> Result<CareCase, MarketplaceError> {
    let ret: Return = from_value(&raw)?;
    let initiated = parse_time(ret.return_initiated_at.as_deref());
    Ok(CareCase {
        external_id: ret.id.0,
        order_id: ret.order_id.map(|id| id.0),
        item_external_id: ret.order_item_id.map(|id| id.0),
        open: !matches!(ret.state.as_str(), "REFUNDED" | "CONCLUDED"),
        raw_state: ret.state,
        created_at: initiated,
        modified_at: None,
        raw,
    })
}

/// A page of orders and the cursor after its last order.
pub(crate) fn parse_orders_page(
    body: &[u8],
) -> Result<(Vec<MarketplaceOrder>, Option<PageToken>), MarketplaceError> {
    let page: OrdersPage = decode(body)?;
    let orders = page
        .orders
        .into_iter()
        .map(parse_order)
        .collect::<Result<Vec<_>, _>>()?;
    let next = cursor(page.has_more, orders.last().map(|o| &o.external_id));
    Ok((orders, next))
}

pub(crate) fn parse_returns_page(
    body: &[u8],
) -> Result<(Vec<CareCase>, Option<PageToken>), MarketplaceError> {
    let page: ReturnsPage = decode(body)?;
    let cases = page
        .returns
        .into_iter()
        .map(parse_return)
        .collect::<Result<Vec<_>, _>>()?;
    let next = cursor(page.has_more, cases.last().map(|c| &c.external_id));
    Ok((cases, next))
}

fn cursor(has_more: bool, last_id: Option<&String>) -> Option<PageToken> {
    // has_more with an empty page would loop forever on the same cursor.
    last_id.filter(|_| has_more).map(|id| PageToken(id.clone()))
}

fn pagination(page: Option<PageToken>) -> Value {
    match page {
        Some(token) => json!({"limit": PAGE_LIMIT, "starting_after": token.0}),
        None => json!({"limit": PAGE_LIMIT}),
    }
}

pub(crate) struct Refurbed {
    code: String,
    http: HttpClient,
}

/// Offers (stock) are the listings class; orders and returns the orders class.
fn endpoint_class(path: &str) -> EndpointClass {
    if path.contains("OfferService") {
        EndpointClass::Listings
    } else {
        EndpointClass::Orders
    }
}

impl Refurbed {
    pub(crate) fn new(config: MarketplaceConfig) -> Result<Self, MarketplaceError> {
        let token = config.credential.expose();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HttpClient::header_value(&format!("Plain {token}"))?,
        );
        headers.insert(ACCEPT, HttpClient::header_value("application/json")?);
        let http = HttpClient::new(&config, headers, vec![token.to_owned()], endpoint_class)?;
        Ok(Refurbed {
            code: config.code,
            http,
        })
    }

    /// One gateway call, `POST /refb.merchant.v1.<service>/<method>`; returns the body.
    async fn call(
        &self,
        service: &str,
        method: &str,
        body: Value,
    ) -> Result<Vec<u8>, MarketplaceError> {
        let url = self
            .http
            .url(&[&format!("refb.merchant.v1.{service}"), method]);
        let reply = self
            .http
            .send(self.http.request(Method::POST, url).json(&body))
            .await?;
        Ok(reply.body)
    }
}

#[async_trait::async_trait]
impl Marketplace for Refurbed {
    fn code(&self) -> &str {
        &self.code
    }

    fn filters_modified_since(&self) -> bool {
        false
    }

    async fn list_orders(
        &self,
        query: &OrderQuery,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError> {
        // Refurbed has no modified-since filter: "modified" walks the orders
        // released since then, in any state; the poller re-reads the open
        // orders it holds to see the older ones change.
        let filter = match query {
            OrderQuery::New => json!({"state": {"any_of": ["NEW"]}}),
            OrderQuery::ModifiedSince(since) => {
                json!({"released_at": {"ge": since.to_rfc3339_opts(SecondsFormat::Secs, true)}})
            }
            OrderQuery::Incomplete => json!({"state": {"any_of": ["ACCEPTED"]}}),
        };
        let body = json!({
            "pagination": pagination(page),
            "sort": {"order": "ASC", "by": "ID"},
            "filter": filter,
        });
        let reply = self.call("OrderService", "ListOrders", body).await?;
        let (mut orders, next) = parse_orders_page(&reply)?;
        if *query == OrderQuery::Incomplete {
            orders.retain(|order| order.label_url.is_none());
        }
        Ok(OrderPage { orders, next })
    }

    async fn get_order(&self, order_id: &str) -> Result<MarketplaceOrder, MarketplaceError> {
        let reply = self
            .call("OrderService", "GetOrder", json!({"id": order_id}))
            .await?;
        parse_order(decode::<OrderEnvelope>(&reply)?.order)
    }

    /// Refurbed returns cannot be filtered by time: `since` is ignored and
    /// every return is walked (callers deduplicate by id and state).
    async fn list_care(
        &self,
        _since: Option<DateTime<Utc>>,
        page: Option<PageToken>,
    ) -> Result<CarePage, MarketplaceError> {
        let body = json!({"pagination": pagination(page)});
        let reply = self
            .call("OrderItemReturnService", "ListOrderItemReturns", body)
            .await?;
        let (cases, next) = parse_returns_page(&reply)?;
        Ok(CarePage { cases, next })
    }

    async fn accept_orderline(
        &self,
        _order_id: &str,
        item: &OrderItemRef,
    ) -> Result<(), MarketplaceError> {
        let body = json!({"id": item.external_id, "state": "ACCEPTED"});
        self.call("OrderItemService", "UpdateOrderItemState", body)
            .await
            .map(drop)
    }

    async fn update_order_status(
        &self,
        order_id: &str,
        update: &OrderStatusUpdate,
    ) -> Result<(), MarketplaceError> {
        let state = item_state(update.status).ok_or_else(|| {
            MarketplaceError::invalid(format!("Refurbed items cannot be set to {}", update.status))
        })?;
        let tracking_url = update.tracking.as_ref().and_then(|t| t.url.clone());
        let order = self.get_order(order_id).await?;
        for item in select_items(&order, update)? {
            let mut body = json!({"id": item.external_id, "state": state});
            if let Some(url) = &tracking_url {
                body["parcel_tracking_url"] = url.as_str().into();
            }
            self.call("OrderItemService", "UpdateOrderItemState", body)
                .await?;
        }
        Ok(())
    }

    async fn listing_quantity(&self, sku: &str) -> Result<u32, MarketplaceError> {
        let reply = self
            .call(
                "OfferService",
                "GetOffer",
                json!({"identifier": {"sku": sku}}),
            )
            .await?;
        Ok(decode::<OfferEnvelope>(&reply)?.offer.stock)
    }

    async fn set_listing_quantity(&self, sku: &str, quantity: u32) -> Result<(), MarketplaceError> {
        let body = json!({"identifier": {"sku": sku}, "stock": quantity});
        self.call("OfferService", "UpdateOffer", body)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_tables() {
        use OrderStatus::*;
        for (state, status) in [
            ("NEW", Some(Pending)),
            ("ACCEPTED", Some(Accepted)),
            ("SHIPPED", Some(Shipped)),
            ("REJECTED", Some(Cancelled)),
            ("CANCELLED", Some(Cancelled)),
            ("RETURNED", Some(Returned)),
            ("LOST_IN_SPACE", None),
            ("", None),
        ] {
            assert_eq!(item_status(state), status, "{state}");
        }
        for (state, status) in [
            ("NEW", Some(Pending)),
            ("ACCEPTED", Some(Accepted)),
            ("SHIPPED", Some(Shipped)),
            ("FULFILLED", Some(Shipped)),
            ("PARTIALLY_FULFILLED", Some(Shipped)),
            ("REJECTED", Some(Cancelled)),
            ("CANCELLED", Some(Cancelled)),
            ("UNFULFILLED", Some(Cancelled)),
            ("RETURNED", Some(Returned)),
            ("new", None),
        ] {
            assert_eq!(order_status(state), status, "{state}");
        }
    }

    #[test]
    fn golden_orders_page() {
        let body = include_bytes!("../../tests/fixtures/refurbed/orders_page.json");
        let (orders, next) = parse_orders_page(body).unwrap();
        assert_eq!(next, Some(PageToken("5002".into())));
        let order = &orders[0];
        assert_eq!(order.external_id, "5001");
        assert_eq!(order.status, Some(OrderStatus::Pending));
        assert_eq!(order.items.len(), 2);
        assert!(order.items.iter().all(|item| item.quantity == 1));
        assert!(order.items[0].needs_acceptance);
        assert_eq!(order.items[0].sku, "IPH12-128-BLK-A");
        assert_eq!(order.items[1].status, Some(OrderStatus::Accepted));
        assert_eq!(order.label_url, None);
        // int64 ids may come as numbers.
        assert_eq!(orders[1].external_id, "5002");
        assert_eq!(orders[1].items[0].sku, "");
        assert_eq!(
            orders[1].label_url.as_deref(),
            Some("https://labels.refurbed.example/5002.pdf")
        );
    }

    #[test]
    fn golden_order_returns_and_offer() {
        let envelope: OrderEnvelope =
            decode(include_bytes!("../../tests/fixtures/refurbed/order.json")).unwrap();
        let order = parse_order(envelope.order).unwrap();
        assert_eq!(order.status, Some(OrderStatus::Shipped));
        assert_eq!(order.raw_status, "PARTIALLY_FULFILLED");
        let (cases, next) = parse_returns_page(include_bytes!(
            "../../tests/fixtures/refurbed/returns_page.json"
        ))
        .unwrap();
        assert_eq!(next, None);
        assert_eq!(cases[0].item_external_id.as_deref(), Some("9003"));
        assert!(cases[0].open);
        assert!(!cases[1].open);
        let offer: OfferEnvelope =
            decode(include_bytes!("../../tests/fixtures/refurbed/offer.json")).unwrap();
        assert_eq!(offer.offer.stock, 7);
    }

    #[test]
    fn gateway_omissions_and_unknown_states_parse() {
        let (orders, next) = parse_orders_page(b"{}").unwrap();
        assert!(orders.is_empty());
        assert_eq!(next, None);
        // has_more on an empty page must not yield a cursor that loops.
        assert_eq!(parse_orders_page(br#"{"has_more":true}"#).unwrap().1, None);
        let order = parse_order(
            json!({"id": "1", "state": "ON_THE_MOON", "items": [{"id": 2, "state": "WEIRD"}]}),
        )
        .unwrap();
        assert_eq!(order.status, None);
        assert_eq!(order.items[0].status, None);
        assert_eq!(order.items[0].raw_status, "WEIRD");
        let error = parse_order(json!({"id": "1"})).unwrap_err();
        assert!(error.message().contains("missing field `state`"), "{error}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_orders_page(&body);
            let _ = parse_returns_page(&body);
        }

        #[test]
        fn mutated_golden_orders_never_panic(
            cut in 0usize..3000, byte in any::<u8>(), at in 0usize..3000
        ) {
            let mut body = include_bytes!("../../tests/fixtures/refurbed/orders_page.json").to_vec();
            let at = at % body.len();
            body[at] = byte;
            body.truncate(cut.max(1));
            let _ = parse_orders_page(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in super::super::wire::tests::arbitrary_json()) {
            let _ = parse_order(value.clone());
            let _ = parse_return(value);
        }
    }
}
