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
    assert_permanent(&error, 400);
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
    // Then the walk goes on with every open order released before then.
    let open = adapter
        .list_orders(&OrderQuery::ModifiedSince(later), page.next)
        .await
        .unwrap();
    assert_eq!(open.orders.len(), 3, "NEW, ACCEPTED, ACCEPTED with a label");
    assert!(
        open.orders
            .iter()
            .all(|o| o.status.is_some_and(|s| s.is_open()))
    );
    assert_eq!(open.next, None);
    let page = adapter
        .list_orders(&OrderQuery::Incomplete, None)
        .await
        .unwrap();
    let ids: Vec<_> = page.orders.iter().map(|o| o.external_id.clone()).collect();
    assert_eq!(ids, [id(&accepted)]);
    assert_ne!(id(&new), id(&accepted));
}

#[tokio::test]
async fn closed_orders_are_listed_by_release_window() {
    let env = start().await;
    let from = Utc::now() - chrono::Duration::seconds(5);
    env.control.order(RF, &[("A", 1)], "NEW").await;
    env.control.order(RF, &[("A", 1)], "ACCEPTED").await;
    let shipped = env.control.order(RF, &[("A", 1)], "SHIPPED").await;
    let cancelled = env.control.order(RF, &[("A", 1)], "CANCELLED").await;
    let adapter = env.adapter(RF);
    let before = Utc::now() + chrono::Duration::seconds(5);
    let page = adapter
        .list_orders_closed(from, before, None)
        .await
        .unwrap();
    let ids: Vec<_> = page.orders.iter().map(|o| o.external_id.clone()).collect();
    assert_eq!(ids, [id(&shipped), id(&cancelled)]);
    assert_eq!(page.next, None);
    // Released at or after `before`: the modified walk's part, not this one's.
    let page = adapter.list_orders_closed(from, from, None).await.unwrap();
    assert!(page.orders.is_empty());
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

/// A raw gateway call to the simulator's Refurbed API.
async fn gateway(env: &Env, method: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let path = format!("/refb.merchant.v1.{method}");
    env.call(RF, reqwest::Method::POST, &path, Some(body)).await
}

/// The simulator's log of Refurbed requests whose path ends with `method`.
async fn requests_to(env: &Env, method: &str) -> Vec<serde_json::Value> {
    let log = env.control.get("/requests?marketplace=refurbed").await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(method))
        .cloned()
        .collect()
}

const BATCH: &str = "OrderItemService/BatchUpdateOrderItemsState";

#[tokio::test]
async fn batch_item_updates_answer_each_item_and_count_as_one_request() {
    let env = start().await;
    let order = env.control.order(RF, &[("A", 3)], "NEW").await;
    let item = |i: usize| order["items"][i]["id"].to_string();
    // One request a minute: the batch of three must pass as one.
    env.control
        .put(
            "/rate-limits/refurbed",
            json!({"general": {"requests": 1, "window_ms": 60000}}),
        )
        .await;
    let (status, body) = gateway(
        &env,
        BATCH,
        json!({"updates": [
            {"id": item(0), "state": "ACCEPTED"},
            // NEW → SHIPPED is illegal, the tracking URL notwithstanding.
            {"id": item(1), "state": "SHIPPED", "parcel_tracking_url": "https://t.example/1"},
            {"id": item(2), "state": "ACCEPTED"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["order_item"]["state"], "ACCEPTED");
    assert_eq!(results[0]["order_item"]["id"], item(0).as_str());
    assert_eq!(results[1]["error"]["code"], 3, "{body}");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SHIPPED")
    );
    assert_eq!(results[2]["order_item"]["state"], "ACCEPTED");
    let view = env.control.order_view(RF, &id(&order)).await;
    let states: Vec<_> = view["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].clone())
        .collect();
    assert_eq!(states, ["ACCEPTED", "NEW", "ACCEPTED"]);
    let limits = env.control.get("/rate-limits").await;
    assert_eq!(limits[RF]["violations"], 0, "{limits}");
    let logged = requests_to(&env, BATCH).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["class"], "orders");

    // The whole call is refused for 0 or more than 50 updates.
    env.control
        .put("/rate-limits/refurbed", json!({"general": null}))
        .await;
    let many: Vec<_> = (0..51)
        .map(|_| json!({"id": item(1), "state": "ACCEPTED"}))
        .collect();
    for updates in [json!(many), json!([]), serde_json::Value::Null] {
        let (status, body) = gateway(&env, BATCH, json!({"updates": updates})).await;
        assert_eq!((status, &body["code"]), (400, &json!(3)), "{body}");
    }
    let view = env.control.order_view(RF, &id(&order)).await;
    assert_eq!(
        view["items"][1]["state"], "NEW",
        "a refused batch applies nothing"
    );
}

#[tokio::test]
async fn accept_orderlines_sends_one_batch_per_50_lines_and_maps_each_result() {
    let env = start().await;
    let order = env.control.order(RF, &[("A", 49)], "NEW").await;
    let adapter = env.adapter(RF);
    let lines: Vec<(String, OrderItemRef)> = lines_of(&order, "A")
        .into_iter()
        .chain([(
            id(&order),
            OrderItemRef {
                external_id: "1".into(),
                sku: "A".into(),
            },
        )])
        .collect();
    assert_eq!(lines.len(), 50);
    adapter
        .accept_orderline(&lines[0].0, &lines[0].1)
        .await
        .unwrap();

    let results = adapter.accept_orderlines(&lines).await;
    assert_eq!(
        requests_to(&env, BATCH).await.len(),
        1,
        "50 lines, one call"
    );
    assert_eq!(results.len(), 50);
    // Already accepted: the 400 INVALID_ARGUMENT a single update gives,
    // which `is_refused_transition` (a permanent 400) recognises.
    let refused = results[0].as_ref().unwrap_err();
    assert_permanent(refused, 400);
    assert!(refused.message().starts_with("HTTP 400: 3: "), "{refused}");
    assert!(results[1..49].iter().all(Result::is_ok), "{results:?}");
    let unknown = results[49].as_ref().unwrap_err();
    assert_permanent(unknown, 404);
    let now = adapter.get_order(&id(&order)).await.unwrap();
    assert!(
        now.items
            .iter()
            .all(|i| i.status == Some(OrderStatus::Accepted))
    );

    // 51 lines: two calls; a call failing as a whole fails each of its lines.
    let more = env.control.order(RF, &[("B", 51)], "NEW").await;
    let lines = lines_of(&more, "B");
    env.control.faults(RF, json!({"error_rate": 1.0})).await;
    let results = adapter.accept_orderlines(&lines).await;
    assert_eq!(requests_to(&env, BATCH).await.len(), 3);
    assert_eq!(results.len(), 51);
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.kind() == "transient"))
    );
    env.control.faults(RF, json!({"error_rate": 0.0})).await;
    let results = adapter.accept_orderlines(&lines).await;
    assert_eq!(requests_to(&env, BATCH).await.len(), 5);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(adapter.accept_orderlines(&[]).await.is_empty());
    assert_eq!(requests_to(&env, BATCH).await.len(), 5, "no lines, no call");
}

#[tokio::test]
async fn update_order_status_moves_its_items_in_one_batch() {
    let env = start().await;
    let order = env.control.order(RF, &[("A", 3)], "NEW").await;
    let adapter = env.adapter(RF);
    adapter
        .update_order_status(
            &id(&order),
            &OrderStatusUpdate::whole_order(OrderStatus::Accepted),
        )
        .await
        .unwrap();
    assert_eq!(requests_to(&env, BATCH).await.len(), 1);
    assert!(requests_to(&env, "UpdateOrderItemState").await.is_empty());
    let now = adapter.get_order(&id(&order)).await.unwrap();
    assert_eq!(now.status, Some(OrderStatus::Accepted));
    // Naming an item that cannot make the move fails with that item's error.
    let item = OrderItemRef::from(&now.items[1]);
    let back = OrderStatusUpdate {
        items: vec![item],
        ..OrderStatusUpdate::whole_order(OrderStatus::Returned)
    };
    let error = adapter
        .update_order_status(&id(&order), &back)
        .await
        .unwrap_err();
    assert_permanent(&error, 400);
    assert!(
        error
            .message()
            .contains("cannot go from ACCEPTED to RETURNED"),
        "{error}"
    );
}

/// A permanent failure with this HTTP status (a refusal the marketplace will repeat).
#[track_caller]
fn assert_permanent(error: &MarketplaceError, status: u16) {
    assert!(
        matches!(error, MarketplaceError::Permanent { status: Some(s), .. } if *s == status),
        "{error:?}"
    );
}

/// Every item of a simulator order as a line to accept.
fn lines_of(order: &serde_json::Value, sku: &str) -> Vec<(String, OrderItemRef)> {
    order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let item = OrderItemRef {
                external_id: item["id"].to_string(),
                sku: sku.into(),
            };
            (id(order), item)
        })
        .collect()
}
