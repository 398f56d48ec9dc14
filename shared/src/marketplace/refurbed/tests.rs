//! The Refurbed adapter's parsers: status tables, golden bodies, fuzzing.

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
    let body = include_bytes!("../../../tests/fixtures/refurbed/orders_page.json");
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
    let envelope: OrderEnvelope = decode(include_bytes!(
        "../../../tests/fixtures/refurbed/order.json"
    ))
    .unwrap();
    let order = parse_order(envelope.order).unwrap();
    assert_eq!(order.status, Some(OrderStatus::Shipped));
    assert_eq!(order.raw_status, "PARTIALLY_FULFILLED");
    let (cases, next) = parse_returns_page(include_bytes!(
        "../../../tests/fixtures/refurbed/returns_page.json"
    ))
    .unwrap();
    assert_eq!(next, None);
    assert_eq!(cases[0].item_external_id.as_deref(), Some("9003"));
    assert!(cases[0].open);
    assert!(!cases[1].open);
    let offer: OfferEnvelope = decode(include_bytes!(
        "../../../tests/fixtures/refurbed/offer.json"
    ))
    .unwrap();
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
        let mut body = include_bytes!("../../../tests/fixtures/refurbed/orders_page.json").to_vec();
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
