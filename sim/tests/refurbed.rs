//! Refurbed adapter against the simulator: every operation and pagination.

mod common;

use chrono::Utc;
use common::*;
use serde_json::json;
use stockfleet::domain::OrderStatus;
use stockfleet::marketplace::{
    MarketplaceError, OrderItemRef, OrderQuery, OrderStatusUpdate, PageToken, Tracking,
};

const RF: &str = "refurbed";

#[tokio::test]
async fn offers_stock_taken_off_by_an_order() {
    let env = start().await;
    env.control.listing(RF, "PIX7", 10).await;
    env.control.order(RF, &[("PIX7", 2)], "NEW").await;
    let adapter = env.adapter(RF);
    // Like every marketplace, Refurbed takes an order's units off the offer.
    assert_eq!(adapter.listing_quantity("PIX7").await, Ok(8));
    adapter.set_listing_quantity("PIX7", 3).await.unwrap();
    assert_eq!(adapter.listing_quantity("PIX7").await, Ok(3));
    assert_eq!(env.control.pushes().await["current"][RF]["PIX7"], 3);
}

#[tokio::test]
async fn items_are_single_units_accept_reject_ship() {
    let env = start().await;
    let order = env
        .control
        .order(RF, &[("PIX7", 2), ("S21", 1)], "NEW")
        .await;
    let adapter = env.adapter(RF);
    let page = adapter.list_orders(&OrderQuery::New, None).await.unwrap();
    assert_eq!(page.orders.len(), 1);
    let seen = &page.orders[0];
    assert_eq!(seen.external_id, id(&order));
    assert_eq!(seen.items.len(), 3, "a quantity of 2 is two items");
    assert!(
        seen.items
            .iter()
            .all(|i| i.quantity == 1 && i.needs_acceptance)
    );
    assert_eq!(seen.status, Some(OrderStatus::Pending));

    adapter
        .accept_orderline(&seen.external_id, &OrderItemRef::from(&seen.items[0]))
        .await
        .unwrap();
    let cancel = OrderStatusUpdate {
        items: vec![OrderItemRef::from(&seen.items[1])],
        ..OrderStatusUpdate::whole_order(OrderStatus::Cancelled)
    };
    adapter
        .update_order_status(&seen.external_id, &cancel)
        .await
        .unwrap();
    // The whole-order accept only moves what is still NEW.
    adapter
        .update_order_status(
            &seen.external_id,
            &OrderStatusUpdate::whole_order(OrderStatus::Accepted),
        )
        .await
        .unwrap();
    let now = adapter.get_order(&seen.external_id).await.unwrap();
    let statuses: Vec<_> = now.items.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [
            Some(OrderStatus::Accepted),
            Some(OrderStatus::Cancelled),
            Some(OrderStatus::Accepted)
        ]
    );
    assert_eq!(now.status, Some(OrderStatus::Accepted));

    // Shipping without a tracking URL is refused by Refurbed (400, INVALID_ARGUMENT).
    let ship = OrderStatusUpdate::whole_order(OrderStatus::Shipped);
    let error = adapter
        .update_order_status(&seen.external_id, &ship)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            MarketplaceError::Permanent {
                status: Some(400),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.message().contains("parcel_tracking_url"), "{error}");
    let ship = OrderStatusUpdate {
        tracking: Some(Tracking {
            number: None,
            url: Some("https://dhl.example/1".into()),
            carrier: None,
        }),
        ..ship
    };
    adapter
        .update_order_status(&seen.external_id, &ship)
        .await
        .unwrap();
    let now = adapter.get_order(&seen.external_id).await.unwrap();
    assert_eq!(now.raw_status, "PARTIALLY_FULFILLED");
    assert_eq!(now.status, Some(OrderStatus::Shipped));
}

#[tokio::test]
async fn modified_walks_orders_released_since_and_incomplete_lacks_labels() {
    let env = start().await;
    let before = Utc::now() - chrono::Duration::seconds(5);
    let new = env.control.order(RF, &[("A", 1)], "NEW").await;
    let accepted = env.control.order(RF, &[("A", 1)], "ACCEPTED").await;
    env.control.order(RF, &[("A", 1)], "SHIPPED").await;
    env.control
        .post("/orders", json!({"marketplace": RF, "items": [{"sku": "A"}], "status": "ACCEPTED", "document_url": "https://labels.example/1.pdf"}))
        .await;
    let adapter = env.adapter(RF);
    // No modified-since filter on Refurbed: "modified" gives every order
    // released since then, whatever its state, and none released before.
    let page = adapter
        .list_orders(&OrderQuery::ModifiedSince(before), None)
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 4);
    assert!(
        page.orders
            .iter()
            .any(|o| o.status == Some(OrderStatus::Shipped))
    );
    let later = Utc::now() + chrono::Duration::seconds(5);
    let page = adapter
        .list_orders(&OrderQuery::ModifiedSince(later), None)
        .await
        .unwrap();
    assert!(page.orders.is_empty());
    let page = adapter
        .list_orders(&OrderQuery::Incomplete, None)
        .await
        .unwrap();
    let ids: Vec<_> = page.orders.iter().map(|o| o.external_id.clone()).collect();
    assert_eq!(ids, [id(&accepted)]);
    assert_ne!(id(&new), id(&accepted));
}

#[tokio::test]
async fn pagination_walks_the_cursor_over_several_pages() {
    let env = start().await;
    let mut created = Vec::new();
    for _ in 0..230 {
        created.push(id(&env.control.order(RF, &[("A", 1)], "NEW").await));
    }
    let adapter = env.adapter(RF);
    let (mut seen, mut page, mut pages) = (Vec::new(), None::<PageToken>, 0);
    loop {
        let result = adapter.list_orders(&OrderQuery::New, page).await.unwrap();
        pages += 1;
        seen.extend(result.orders.into_iter().map(|o| o.external_id));
        page = result.next;
        if page.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3); // 100 + 100 + 30
    assert_eq!(seen, created);
}

#[tokio::test]
async fn returns_are_the_care_sync() {
    let env = start().await;
    let order = env.control.order(RF, &[("A", 1)], "SHIPPED").await;
    env.control
        .post("/care", json!({"marketplace": RF, "order_id": order["id"]}))
        .await;
    env.control
        .post(
            "/care",
            json!({"marketplace": RF, "order_id": order["id"], "open": false}),
        )
        .await;
    let page = env.adapter(RF).list_care(None, None).await.unwrap();
    assert_eq!(page.cases.len(), 2);
    assert_eq!(page.cases[0].order_id, Some(id(&order)));
    assert_eq!(
        page.cases[0].item_external_id,
        Some(order["items"][0]["id"].to_string())
    );
    assert!(page.cases[0].open);
    assert!(!page.cases[1].open);
}
