//! WooCommerce REST API v3 (`/wp-json/wc/v3`): Basic auth with the consumer
//! key and secret over HTTPS, OAuth 1.0a signed query strings over plain HTTP, `page`/`per_page` pagination with X-WP-TotalPages, one
//! status per order applied to every line item, stock on products by SKU.

mod parse;
mod status;

use super::budget::EndpointClass;
use super::http::HttpClient;
use super::oauth1::OAuth1;
use super::wire::{decode, format_time};
use super::{
    CareCase, CarePage, Marketplace, MarketplaceConfig, MarketplaceError, MarketplaceOrder,
    OrderItemRef, OrderPage, OrderQuery, OrderStatusUpdate, PageToken,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use parse::{Product, parse_order, parse_orders};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};
use serde_json::json;
use status::status_name;
use std::collections::HashMap;
use std::sync::Mutex;

pub use parse::parse_webhook_order;

/// The documented maximum of `per_page`.
const PAGE_SIZE: u32 = 100;
const API: [&str; 3] = ["wp-json", "wc", "v3"];

/// The next page from X-WP-TotalPages; without it, a full page means maybe more.
fn next_page(headers: &HeaderMap, page: u32, count: usize) -> Option<PageToken> {
    let total_pages = headers
        .get("x-wp-totalpages")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let more = match total_pages {
        Some(total) => page < total,
        None => count == PAGE_SIZE as usize,
    };
    (more && count > 0).then(|| PageToken((page + 1).to_string()))
}

pub(crate) struct WooCommerce {
    code: String,
    http: HttpClient,
    /// Set when the store is on plain HTTP: every request is signed.
    oauth: Option<OAuth1>,
    /// SKU → product: stock writes go by id (and by parent for variations).
    products: Mutex<HashMap<String, Product>>,
}

/// Products (stock) are the listings class; orders and refunds the orders class.
fn endpoint_class(path: &str) -> EndpointClass {
    if path.contains("/wp-json/wc/v3/products") {
        EndpointClass::Listings
    } else {
        EndpointClass::Orders
    }
}

impl WooCommerce {
    pub(crate) fn new(config: MarketplaceConfig) -> Result<Self, MarketplaceError> {
        let credential = config.credential.expose();
        let (key, secret) = credential.split_once(':').ok_or_else(|| {
            MarketplaceError::invalid("WooCommerce credential must be consumer_key:consumer_secret")
        })?;
        let basic = BASE64.encode(credential);
        let mut headers = HeaderMap::new();
        // WooCommerce takes Basic auth over HTTPS only; over HTTP it wants
        // OAuth 1.0a, as its own client libraries do.
        let oauth = url::Url::parse(config.base_url.trim())
            .is_ok_and(|url| url.scheme() == "http")
            .then(|| OAuth1::new(key, secret));
        if oauth.is_none() {
            headers.insert(
                AUTHORIZATION,
                HttpClient::header_value(&format!("Basic {basic}"))?,
            );
        }
        headers.insert(ACCEPT, HttpClient::header_value("application/json")?);
        let secrets = vec![
            credential.to_owned(),
            secret.to_owned(),
            key.to_owned(),
            basic,
        ];
        let http = HttpClient::new(&config, headers, secrets, endpoint_class)?;
        Ok(WooCommerce {
            code: config.code,
            http,
            oauth,
            products: Mutex::new(HashMap::new()),
        })
    }

    /// A request to `url`, signed when the store is on plain HTTP.
    fn request(&self, method: Method, mut url: url::Url) -> reqwest::RequestBuilder {
        if let Some(oauth) = &self.oauth {
            oauth.sign(method.as_str(), &mut url);
        }
        self.http.request(method, url)
    }

    fn url(&self, path: &[&str]) -> url::Url {
        let segments: Vec<&str> = API.iter().copied().chain(path.iter().copied()).collect();
        self.http.url(&segments)
    }

    async fn orders_page(
        &self,
        filters: &[(&str, String)],
        page: Option<PageToken>,
    ) -> Result<(Vec<MarketplaceOrder>, Option<PageToken>), MarketplaceError> {
        let page = match page {
            Some(token) => token
                .0
                .parse::<u32>()
                .map_err(|_| MarketplaceError::invalid(format!("bad page token {:?}", token.0)))?,
            None => 1,
        };
        let mut url = self.url(&["orders"]);
        url.query_pairs_mut()
            .extend_pairs(filters)
            .append_pair("page", &page.to_string())
            .append_pair("per_page", &PAGE_SIZE.to_string());
        let reply = self.http.send(self.request(Method::GET, url)).await?;
        let orders = parse_orders(&reply.body)?;
        let next = next_page(&reply.headers, page, orders.len());
        Ok((orders, next))
    }

    async fn product(&self, sku: &str, cached: bool) -> Result<Product, MarketplaceError> {
        if cached && let Some(product) = self.products.lock().expect("poisoned").get(sku) {
            return Ok(product.clone());
        }
        let mut url = self.url(&["products"]);
        url.query_pairs_mut().append_pair("sku", sku);
        let reply = self.http.send(self.request(Method::GET, url)).await?;
        let products: Vec<Product> = decode(&reply.body)?;
        let product = products
            .iter()
            .find(|p| p.sku.as_deref() == Some(sku))
            .or(products.first())
            .cloned()
            .ok_or_else(|| MarketplaceError::Permanent {
                status: Some(404),
                message: format!("no WooCommerce product with SKU {sku:?}"),
            })?;
        self.products
            .lock()
            .expect("poisoned")
            .insert(sku.to_owned(), product.clone());
        Ok(product)
    }
}

#[async_trait::async_trait]
impl Marketplace for WooCommerce {
    fn code(&self) -> &str {
        &self.code
    }

    async fn list_orders(
        &self,
        query: &OrderQuery,
        page: Option<PageToken>,
    ) -> Result<OrderPage, MarketplaceError> {
        let filters = match query {
            OrderQuery::New => vec![
                ("status", "pending,processing,on-hold".to_owned()),
                ("orderby", "id".to_owned()),
                ("order", "asc".to_owned()),
            ],
            OrderQuery::ModifiedSince(since) => vec![
                ("modified_after", format_time(*since)),
                ("dates_are_gmt", "true".to_owned()),
                ("orderby", "modified".to_owned()),
                ("order", "asc".to_owned()),
            ],
            // WooCommerce core has neither delivery notes nor labels.
            OrderQuery::Incomplete => {
                return Ok(OrderPage {
                    orders: Vec::new(),
                    next: None,
                });
            }
        };
        let (orders, next) = self.orders_page(&filters, page).await?;
        Ok(OrderPage { orders, next })
    }

    async fn get_order(&self, order_id: &str) -> Result<MarketplaceOrder, MarketplaceError> {
        let reply = self
            .http
            .send(self.request(Method::GET, self.url(&["orders", order_id])))
            .await?;
        parse_order(decode(&reply.body)?)
    }

    /// WooCommerce has no after-sales API: a refunded order is the case.
    async fn list_care(
        &self,
        since: Option<DateTime<Utc>>,
        page: Option<PageToken>,
    ) -> Result<CarePage, MarketplaceError> {
        let mut filters = vec![("status", "refunded".to_owned())];
        if let Some(since) = since {
            filters.push(("modified_after", format_time(since)));
            filters.push(("dates_are_gmt", "true".to_owned()));
        }
        let (orders, next) = self.orders_page(&filters, page).await?;
        let cases = orders
            .into_iter()
            .map(|order| CareCase {
                external_id: order.external_id.clone(),
                order_id: Some(order.external_id),
                item_external_id: None,
                raw_state: order.raw_status,
                open: false,
                created_at: order.modified_at,
                modified_at: order.modified_at,
                raw: order.raw,
            })
            .collect();
        Ok(CarePage { cases, next })
    }

    /// WooCommerce orders need no acceptance: processing already means paid and to ship.
    async fn accept_orderline(
        &self,
        _order_id: &str,
        _item: &OrderItemRef,
    ) -> Result<(), MarketplaceError> {
        Ok(())
    }

    async fn update_order_status(
        &self,
        order_id: &str,
        update: &OrderStatusUpdate,
    ) -> Result<(), MarketplaceError> {
        let body = json!({"status": status_name(update.status)});
        let request = self
            .request(Method::PUT, self.url(&["orders", order_id]))
            .json(&body);
        self.http.send(request).await.map(drop)
    }

    async fn listing_quantity(&self, sku: &str) -> Result<u32, MarketplaceError> {
        let product = self.product(sku, false).await?;
        let quantity = product.stock_quantity.ok_or_else(|| {
            MarketplaceError::invalid(format!("WooCommerce does not manage stock for SKU {sku:?}"))
        })?;
        // Woo allows negative stock (backorders): nothing is available then.
        Ok(u32::try_from(quantity.max(0)).unwrap_or(u32::MAX))
    }

    async fn set_listing_quantity(&self, sku: &str, quantity: u32) -> Result<(), MarketplaceError> {
        let product = self.product(sku, true).await?;
        let path = product.stock_path();
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let body = json!({"manage_stock": true, "stock_quantity": quantity});
        let result = self
            .http
            .send(self.request(Method::PUT, self.url(&path)).json(&body))
            .await;
        if let Err(MarketplaceError::Permanent {
            status: Some(404 | 400),
            ..
        }) = result
        {
            // The product was deleted or replaced: resolve the SKU again next time.
            self.products.lock().expect("poisoned").remove(sku);
        }
        result.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn oauth_over_http_basic_over_https() {
        let adapter = |url: &str| {
            let config = MarketplaceConfig::new(
                super::super::MarketplaceKind::WooCommerce,
                url,
                super::super::Secret::new("ck_1:cs_1"),
            );
            WooCommerce::new(config).unwrap()
        };
        assert!(adapter("http://shop.test").oauth.is_some());
        assert!(adapter("HTTP://shop.test").oauth.is_some());
        assert!(adapter("https://shop.test").oauth.is_none());
    }

    #[test]
    fn pages_follow_total_pages_header() {
        let mut headers = HeaderMap::new();
        headers.insert("x-wp-totalpages", HeaderValue::from_static("3"));
        assert_eq!(next_page(&headers, 1, 100), Some(PageToken("2".into())));
        assert_eq!(next_page(&headers, 3, 5), None);
        assert_eq!(
            next_page(&HeaderMap::new(), 1, 100),
            Some(PageToken("2".into()))
        );
        assert_eq!(next_page(&HeaderMap::new(), 1, 99), None);
        assert_eq!(next_page(&headers, 1, 0), None);
    }
}
