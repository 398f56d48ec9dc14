//! Back Market adapter against the simulator: every operation and pagination.

mod common;

use chrono::{Duration as Days, Utc};
use common::*;
use serde_json::json;
use stockfleet::domain::OrderStatus;
use stockfleet::marketplace::{OrderItemRef, OrderQuery, OrderStatusUpdate, PageToken, Tracking};

const BM: &str = "backmarket";

#[tokio::test]
async fn placing_an_order_decrements_the_listing_and_stock_pushes_are_recorded() {
    let env = start().await;
    env.control.listing(BM, "IPH12", 10).await;
    env.control.order(BM, &[("IPH12", 3)], "1").await;
    let adapter = env.adapter(BM);
    assert_eq!(adapter.listing_quantity("IPH12").await, Ok(7));
    adapter.set_listing_quantity("IPH12", 5).await.unwrap();
    adapter.set_listing_quantity("IPH12", 4).await.unwrap();
    assert_eq!(adapter.listing_quantity("IPH12").await, Ok(4));
    let pushes = env.control.pushes().await;
    assert_eq!(pushes["current"][BM]["IPH12"], 4);
    let history: Vec<_> = pushes["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["quantity"].clone())
        .collect();
    assert_eq!(history, [json!(5), json!(4)]);
}

#[tokio::test]
async fn new_orders_accept_ship_and_statuses() {
    let env = start().await;
    let paid = env.control.order(BM, &[("A", 1), ("B", 2)], "1").await;
    env.control.order(BM, &[("C", 1)], "2").await;
    let adapter = env.adapter(BM);

    let page = adapter.list_orders(&OrderQuery::New, None).await.unwrap();
    assert_eq!(page.next, None);
    assert_eq!(page.orders.len(), 1);
    let order = &page.orders[0];
    assert_eq!(order.external_id, id(&paid));
    assert_eq!(order.status, Some(OrderStatus::Pending));
    assert_eq!(order.items.len(), 2);
    assert!(order.items.iter().all(|item| item.needs_acceptance));
    assert_eq!(order.items[1].quantity, 2);
    assert!(order.created_at.is_some());

    adapter
        .accept_orderline(&order.external_id, &OrderItemRef::from(&order.items[0]))
        .await
        .unwrap();
    let update = OrderStatusUpdate {
        items: vec![OrderItemRef::from(&order.items[1])],
        ..OrderStatusUpdate::whole_order(OrderStatus::Cancelled)
    };
    adapter
        .update_order_status(&order.external_id, &update)
        .await
        .unwrap();
    let order = adapter.get_order(&order.external_id).await.unwrap();
    assert_eq!(order.items[0].status, Some(OrderStatus::Accepted));
    assert_eq!(order.items[1].status, Some(OrderStatus::Cancelled));
    assert_eq!(order.status, Some(OrderStatus::Accepted));

    // Shipping needs a tracking number.
    let ship = OrderStatusUpdate::whole_order(OrderStatus::Shipped);
    let error = adapter
        .update_order_status(&order.external_id, &ship)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "permanent");
    let ship = OrderStatusUpdate {
        tracking: Some(Tracking {
            number: Some("1Z999".into()),
            url: None,
            carrier: Some("UPS".into()),
        }),
        ..ship
    };
    adapter
        .update_order_status(&order.external_id, &ship)
        .await
        .unwrap();
    let order = adapter.get_order(&order.external_id).await.unwrap();
    assert_eq!(order.items[0].status, Some(OrderStatus::Shipped));
    assert_eq!(order.status, Some(OrderStatus::Shipped));
    assert_eq!(order.raw["tracking_number"], "1Z999");

    // An illegal move is a permanent 400 carrying Back Market's message.
    let accept_again = OrderStatusUpdate {
        items: vec![OrderItemRef::from(&order.items[1])],
        ..OrderStatusUpdate::whole_order(OrderStatus::Returned)
    };
    let error = adapter
        .update_order_status(&order.external_id, &accept_again)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            stockfleet::marketplace::MarketplaceError::Permanent {
                status: Some(400),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.message().contains("cannot go from 4 to 6"), "{error}");
}

#[tokio::test]
async fn unpaid_lines_are_unpaid_and_the_control_api_moves_them() {
    let env = start().await;
    let order = env.control.order(BM, &[("A", 1)], "0").await;
    let adapter = env.adapter(BM);
    let seen = adapter.get_order(&id(&order)).await.unwrap();
    assert_eq!(seen.items[0].status, Some(OrderStatus::Unpaid));
    assert_eq!(seen.status, Some(OrderStatus::Unpaid));
    // Illegal moves are refused by the control API too.
    let (status, _) = env
        .control
        .send(
            reqwest::Method::POST,
            &format!("/orders/{BM}/{}/status", id(&order)),
            Some(json!({"status": "3"})),
        )
        .await;
    assert_eq!(status, 409);
    env.control.move_order(BM, &id(&order), "1").await;
    let seen = adapter.get_order(&id(&order)).await.unwrap();
    assert_eq!(seen.items[0].status, Some(OrderStatus::Pending));
    assert!(seen.items[0].needs_acceptance);
}

/// The ids of every order a listing brings, over all its pages.
async fn all_pages<F, Fut>(mut list: F) -> Vec<String>
where
    F: FnMut(Option<PageToken>) -> Fut,
    Fut: std::future::Future<
            Output = Result<
                stockfleet::marketplace::OrderPage,
                stockfleet::marketplace::MarketplaceError,
            >,
        >,
{
    let (mut ids, mut page) = (Vec::new(), None);
    loop {
        let got = list(page).await.unwrap();
        ids.extend(got.orders.iter().map(|o| o.external_id.clone()));
        match got.next {
            Some(next) => page = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn modified_sync_sees_orders_that_left_the_default_listing() {
    let env = start().await;
    let before = Utc::now() - Days::seconds(5);
    let open = env.control.order(BM, &[("A", 1)], "1").await;
    let cancelled = env.control.order(BM, &[("A", 1)], "1").await;
    env.control.move_order(BM, &id(&cancelled), "4").await;
    let adapter = env.adapter(BM);
    // Without `state`, Back Market hides state 8 (every line cancelled).
    let default_page = adapter
        .list_orders(&OrderQuery::ModifiedSince(before), None)
        .await
        .unwrap();
    assert_eq!(default_page.orders.len(), 1);
    let query = OrderQuery::ModifiedSince(before);
    let mut seen = all_pages(|page| adapter.list_orders(&query, page)).await;
    seen.sort();
    let mut expected = vec![id(&open), id(&cancelled)];
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn closed_orders_are_the_closed_ones_among_the_modified() {
    let env = start().await;
    let from = Utc::now() - Days::seconds(5);
    env.control.order(BM, &[("A", 1)], "1").await;
    env.control.order(BM, &[("A", 1)], "2").await;
    let shipped = env.control.order(BM, &[("A", 1)], "3").await;
    let adapter = env.adapter(BM);
    let before = Utc::now() + Days::seconds(5);
    assert_eq!(
        all_pages(|page| adapter.list_orders_closed(from, before, page)).await,
        [id(&shipped)]
    );
    assert!(
        all_pages(|page| adapter.list_orders_closed(from, from, page))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn modified_since_and_incomplete() {
    let env = start().await;
    let before = Utc::now() - Days::seconds(5);
    let without_note = env.control.order(BM, &[("A", 1)], "2").await;
    env.control
        .post("/orders", json!({"marketplace": BM, "items": [{"sku": "B"}], "status": "2", "document_url": "https://bm.example/note.pdf"}))
        .await;
    let adapter = env.adapter(BM);
    let page = adapter
        .list_orders(&OrderQuery::ModifiedSince(before), None)
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 2);
    let later = Utc::now() + Days::seconds(5);
    assert!(
        adapter
            .list_orders(&OrderQuery::ModifiedSince(later), None)
            .await
            .unwrap()
            .orders
            .is_empty()
    );
    let page = adapter
        .list_orders(&OrderQuery::Incomplete, None)
        .await
        .unwrap();
    let ids: Vec<_> = page.orders.iter().map(|o| o.external_id.clone()).collect();
    assert_eq!(ids, [id(&without_note)]);
}

#[tokio::test]
async fn pagination_follows_next_over_several_pages() {
    let env = start().await;
    let mut created = Vec::new();
    for _ in 0..120 {
        created.push(id(&env.control.order(BM, &[("A", 1)], "1").await));
    }
    let adapter = env.adapter(BM);
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
    assert_eq!(pages, 3); // 50 + 50 + 20
    assert_eq!(seen, created);
}

#[tokio::test]
async fn care_folders() {
    let env = start().await;
    let order = env.control.order(BM, &[("A", 1)], "3").await;
    let item_id = order["items"][0]["id"].as_u64().unwrap();
    env.control
        .post(
            "/care",
            json!({"marketplace": BM, "order_id": order["id"], "item_id": item_id}),
        )
        .await;
    let adapter = env.adapter(BM);
    let page = adapter
        .list_care(Some(Utc::now() - Days::minutes(5)), None)
        .await
        .unwrap();
    assert_eq!(page.cases.len(), 1);
    assert_eq!(page.cases[0].item_external_id, Some(item_id.to_string()));
    assert!(page.cases[0].open);
    let page = adapter
        .list_care(Some(Utc::now() + Days::minutes(5)), None)
        .await
        .unwrap();
    assert!(page.cases.is_empty());
}
