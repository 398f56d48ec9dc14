//! Back Market's bodies read into the shared model: orders with their
//! orderlines, after-sales folders, listings, and the `next` page link
//! turned into a token that never leaves our configured host.

use super::super::wire::{Id, decode, from_value, parse_time};
use super::super::{CareCase, MarketplaceError, MarketplaceOrder, MarketplaceOrderItem, PageToken};
use super::status::{line_status, order_status};
use serde::Deserialize;
use serde_json::Value;

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
pub(super) struct Listing {
    pub(super) id: Id,
    pub(super) quantity: i64,
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
pub(super) fn next_token(next: &str) -> Option<PageToken> {
    let query = next.split_once('?').map(|(_, query)| query)?;
    let query = query.split('#').next().unwrap_or_default();
    (!query.is_empty()).then(|| PageToken(query.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderStatus;
    use crate::marketplace::wire::format_time;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn golden_orders_page() {
        let body = include_bytes!("../../../tests/fixtures/backmarket/orders_page.json");
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
        let body = include_bytes!("../../../tests/fixtures/backmarket/care_page.json");
        let (cases, next) = parse_page(body, parse_care_folder).unwrap();
        assert_eq!(next, None);
        assert_eq!(cases[0].item_external_id.as_deref(), Some("90001"));
        assert!(cases[0].open);
        assert!(!cases[1].open);
        let listing: Listing = decode(include_bytes!(
            "../../../tests/fixtures/backmarket/listing.json"
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
            let mut body = include_bytes!("../../../tests/fixtures/backmarket/orders_page.json").to_vec();
            let at = at % body.len();
            body[at] = byte;
            body.truncate(cut.max(1));
            let _ = parse_page(&body, parse_order);
        }

        #[test]
        fn arbitrary_json_orders_never_panic(value in crate::marketplace::wire::tests::arbitrary_json()) {
            let _ = parse_order(value);
        }
    }
}
