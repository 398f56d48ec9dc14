//! WooCommerce's bodies read into the shared model: orders (one status for
//! every line item), the order a webhook carries, and products with where
//! their stock is written.

use super::super::wire::{Id, decode, from_value, parse_time};
use super::super::{MarketplaceError, MarketplaceOrder, MarketplaceOrderItem};
use super::status::order_status;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Order {
    id: Id,
    status: String,
    date_created_gmt: Option<String>,
    date_modified_gmt: Option<String>,
    date_completed_gmt: Option<String>,
    #[serde(default)]
    line_items: Vec<LineItem>,
}

#[derive(Deserialize)]
struct LineItem {
    id: Id,
    sku: Option<String>,
    quantity: u32,
}

#[derive(Deserialize, Clone)]
pub(super) struct Product {
    id: Id,
    pub(super) sku: Option<String>,
    parent_id: Option<Id>,
    /// A bool, or "parent" on a variation whose parent holds the stock.
    manage_stock: Option<Value>,
    pub(super) stock_quantity: Option<i64>,
}

impl Product {
    /// Where this product's stock is written.
    pub(super) fn stock_path(&self) -> Vec<String> {
        let parent = self
            .parent_id
            .as_ref()
            .map(|id| id.0.as_str())
            .filter(|id| *id != "0");
        match parent {
            Some(parent)
                if self.manage_stock.as_ref().and_then(Value::as_str) == Some("parent") =>
            {
                vec!["products".into(), parent.into()]
            }
            Some(parent) => vec![
                "products".into(),
                parent.into(),
                "variations".into(),
                self.id.0.clone(),
            ],
            None => vec!["products".into(), self.id.0.clone()],
        }
    }
}

pub(crate) fn parse_order(raw: Value) -> Result<MarketplaceOrder, MarketplaceError> {
    let order: Order = from_value(&raw)?;
    let completed = order
        .date_completed_gmt
        .as_deref()
        .is_some_and(|d| !d.is_empty());
    let status = order_status(&order.status, completed);
    Ok(MarketplaceOrder {
        external_id: order.id.0,
        status,
        created_at: parse_time(order.date_created_gmt.as_deref()),
        modified_at: parse_time(order.date_modified_gmt.as_deref()),
        delivery_note_url: None,
        label_url: None,
        // The order's status applies to every line; nothing needs acceptance.
        items: order
            .line_items
            .into_iter()
            .map(|item| MarketplaceOrderItem {
                external_id: item.id.0,
                sku: item.sku.unwrap_or_default(),
                quantity: item.quantity,
                status,
                raw_status: order.status.clone(),
                needs_acceptance: false,
            })
            .collect(),
        raw_status: order.status,
        raw,
    })
}

/// The order a WooCommerce webhook carries (the body is the order as
/// `GET /orders/{id}` returns it).
pub fn parse_webhook_order(body: &[u8]) -> Result<MarketplaceOrder, MarketplaceError> {
    parse_order(decode(body)?)
}

pub(crate) fn parse_orders(body: &[u8]) -> Result<Vec<MarketplaceOrder>, MarketplaceError> {
    decode::<Vec<Value>>(body)?
        .into_iter()
        .map(parse_order)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderStatus;
    use crate::marketplace::wire::format_time;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn golden_orders() {
        let orders = parse_orders(include_bytes!(
            "../../../tests/fixtures/woocommerce/orders.json"
        ))
        .unwrap();
        assert_eq!(orders.len(), 2);
        let order = &orders[0];
        assert_eq!(order.external_id, "727");
        assert_eq!(order.status, Some(OrderStatus::Accepted));
        assert_eq!(
            order.created_at.map(format_time).as_deref(),
            Some("2026-03-01T08:15:00Z")
        );
        assert_eq!(order.items.len(), 2);
        assert_eq!(order.items[0].sku, "IPH12-128-BLK-A");
        assert_eq!(order.items[0].quantity, 2);
        assert!(
            order
                .items
                .iter()
                .all(|i| i.status == Some(OrderStatus::Accepted) && !i.needs_acceptance)
        );
        assert_eq!(order.items[1].sku, "");
        let refunded = &orders[1];
        assert_eq!(refunded.status, Some(OrderStatus::Returned));
        assert_eq!(refunded.raw_status, "refunded");
    }

    #[test]
    fn golden_products() {
        let products: Vec<Product> = decode(include_bytes!(
            "../../../tests/fixtures/woocommerce/products.json"
        ))
        .unwrap();
        assert_eq!(products[0].stock_quantity, Some(5));
        assert_eq!(products[0].stock_path(), ["products", "799"]);
        assert_eq!(
            products[1].stock_path(),
            ["products", "800", "variations", "801"]
        );
        assert_eq!(products[2].stock_path(), ["products", "800"]);
        assert_eq!(products[2].stock_quantity, None);
    }

    #[test]
    fn unknown_statuses_and_missing_optionals_parse() {
        let order = parse_order(
            json!({"id": 1, "status": "wc-shipped-partially", "meta_data": [{"k": 1}]}),
        )
        .unwrap();
        assert_eq!(order.status, None);
        assert!(order.items.is_empty());
        let error = parse_order(
            json!({"id": 1, "status": "processing", "line_items": [{"id": 2, "quantity": -1}]}),
        )
        .unwrap_err();
        assert!(error.message().contains("malformed"), "{error}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_orders(&body);
            let _ = parse_webhook_order(&body);
            let _ = decode::<Vec<Product>>(&body);
        }

        #[test]
        fn mutated_golden_orders_never_panic(
            cut in 0usize..4000, byte in any::<u8>(), at in 0usize..4000
        ) {
            let mut body = include_bytes!("../../../tests/fixtures/woocommerce/orders.json").to_vec();
            let at = at % body.len();
            body[at] = byte;
            body.truncate(cut.max(1));
            let _ = parse_orders(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in crate::marketplace::wire::tests::arbitrary_json()) {
            let _ = parse_order(value.clone());
            if let Ok(product) = from_value::<Product>(&value) {
                let _ = product.stock_path();
            }
        }
    }
}
