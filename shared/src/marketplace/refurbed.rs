//! Refurbed merchant API through its HTTP/JSON gateway: every call is a POST
//! to `/refb.merchant.v1.<Service>/<Method>`, cursor pagination with
//! `starting_after` + `has_more`, statuses per item, one unit per item.

mod batch;
mod walk;

use super::budget::EndpointClass;
use super::http::{HttpClient, Reply};
use super::wire::{Id, decode, from_value, parse_time};
use super::{
    CareCase, CarePage, Marketplace, MarketplaceConfig, MarketplaceError, MarketplaceOrder,
    MarketplaceOrderItem, OrderItemRef, OrderPage, OrderQuery, OrderStatusUpdate, PageToken,
    select_items,
};
use crate::domain::OrderStatus;
use chrono::{DateTime, Utc};
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
        Ok(self.call_reply(service, method, body).await?.body)
    }

    /// One `ListOrders` page, oldest id first, and the cursor after it.
    async fn list_page(
        &self,
        filter: Value,
        cursor: Option<PageToken>,
    ) -> Result<(Vec<MarketplaceOrder>, Option<PageToken>), MarketplaceError> {
        let body = json!({
            "pagination": pagination(cursor),
            "sort": {"order": "ASC", "by": "ID"},
            "filter": filter,
        });
        parse_orders_page(&self.call("OrderService", "ListOrders", body).await?)
    }

    /// [`Self::call`], with the answer's headers.
    async fn call_reply(
        &self,
        service: &str,
        method: &str,
        body: Value,
    ) -> Result<Reply, MarketplaceError> {
        let url = self
            .http
            .url(&[&format!("refb.merchant.v1.{service}"), method]);
        self.http
            .send(self.http.request(Method::POST, url).json(&body))
            .await
    }

    /// One `BatchUpdateOrderItemsState` call for at most 50 update bodies;
    /// one outcome per update, in order. A call that fails as a whole (429,
    /// 5xx, transport) gives its error to every update.
    async fn update_items(&self, updates: &[Value]) -> Vec<Result<(), MarketplaceError>> {
        debug_assert!((1..=batch::MAX_UPDATES).contains(&updates.len()));
        let body = json!({"updates": updates});
        match self
            .call_reply("OrderItemService", batch::METHOD, body)
            .await
        {
            Ok(reply) => batch::outcomes(&self.http, &reply.headers, &reply.body, updates.len()),
            Err(error) => vec![Err(error); updates.len()],
        }
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
        let (filter, listing, cursor) = walk::order_filter(query, page);
        let (mut orders, next) = self.list_page(filter, cursor).await?;
        if *query == OrderQuery::Incomplete {
            orders.retain(|order| order.label_url.is_none());
        }
        Ok(OrderPage {
            orders,
            next: listing.next(next),
        })
    }

    async fn list_orders_closed(
        &self,
        released_from: DateTime<Utc>,
        released_before: DateTime<Utc>,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError> {
        let filter = walk::closed_filter(released_from, released_before);
        let (orders, next) = self.list_page(filter, page).await?;
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
        let body = batch::update_body(&item.external_id, "ACCEPTED", None);
        self.call("OrderItemService", "UpdateOrderItemState", body)
            .await
            .map(drop)
    }

    /// `BatchUpdateOrderItemsState`, one call per 50 lines (an item id is
    /// enough: the order id is not sent).
    async fn accept_orderlines(
        &self,
        lines: &[(String, OrderItemRef)],
    ) -> Vec<Result<(), MarketplaceError>> {
        let mut outcomes = Vec::with_capacity(lines.len());
        for chunk in lines.chunks(batch::MAX_UPDATES) {
            let updates: Vec<Value> = chunk
                .iter()
                .map(|(_, item)| batch::update_body(&item.external_id, "ACCEPTED", None))
                .collect();
            outcomes.extend(self.update_items(&updates).await);
        }
        outcomes
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
        let items = select_items(&order, update)?;
        // One batch call for the selected items (50 a call); the first
        // failed item's error is the method's, and a failed chunk stops the
        // ones after it, as a failed single update stopped the items after it.
        for chunk in items.chunks(batch::MAX_UPDATES) {
            let updates: Vec<Value> = chunk
                .iter()
                .map(|item| batch::update_body(&item.external_id, state, tracking_url.as_deref()))
                .collect();
            if let Some(error) = self
                .update_items(&updates)
                .await
                .into_iter()
                .find_map(Result::err)
            {
                return Err(error);
            }
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
mod tests;
