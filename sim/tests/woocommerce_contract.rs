//! WooCommerce contract: orders, products and variations in the shapes of
//! WooCommerce's REST documentation (common/schema.rs), totals from lines.

mod common;

use common::schema::*;
use common::*;
use serde_json::{Value, json};

const WOO: &str = "woocommerce";

async fn get(env: &Env, path: &str) -> Value {
    let creds = credentials();
    let response = reqwest::Client::new()
        .get(format!("{}/wp-json/wc/v3{path}", env.sim.base_url(WOO)))
        .basic_auth(&creds.woocommerce_key, Some(&creds.woocommerce_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn listing(env: &Env, body: Value) -> u64 {
    env.control.post("/listings", body).await[0]["listing"]["id"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn variation_lines_name_parent_and_variation_and_totals_add_up() {
    let env = start().await;
    let parent = listing(
        &env,
        json!({"marketplace": WOO, "sku": "MBA", "quantity": 0, "price": "999.00"}),
    )
    .await;
    let variation = listing(
        &env,
        json!({"marketplace": WOO, "sku": "MBA-16GB", "quantity": 5, "price": "199.00", "variation_of": parent}),
    )
    .await;
    let simple = listing(
        &env,
        json!({"marketplace": WOO, "sku": "CASE", "quantity": 5, "price": "19.50"}),
    )
    .await;
    let order = env
        .control
        .order(WOO, &[("MBA-16GB", 2), ("CASE", 1)], "processing")
        .await;

    let body = get(&env, &format!("/orders/{}", id(&order))).await;
    check("order", WOO_ORDER, &body);
    let lines = body["line_items"].as_array().unwrap();
    for (i, line) in lines.iter().enumerate() {
        check(&format!("order.line_items[{i}]"), WOO_LINE_ITEM, line);
    }
    assert_eq!(
        (&lines[0]["product_id"], &lines[0]["variation_id"]),
        (&json!(parent), &json!(variation))
    );
    assert_eq!(
        (&lines[1]["product_id"], &lines[1]["variation_id"]),
        (&json!(simple), &json!(0))
    );
    assert_eq!(lines[0]["total"], "398.00");
    assert_eq!(body["total"], "417.50");

    let products = get(&env, "/products").await;
    let kinds: Vec<(&Value, &Value)> = products
        .as_array()
        .unwrap()
        .iter()
        .inspect(|p| check("product", WOO_PRODUCT, p))
        .map(|p| (&p["sku"], &p["type"]))
        .collect();
    assert_eq!(
        kinds,
        [
            (&json!("CASE"), &json!("simple")),
            (&json!("MBA"), &json!("variable"))
        ]
    );
    let one = get(&env, &format!("/products/{parent}/variations/{variation}")).await;
    check("variation", WOO_PRODUCT, &one);
    assert_eq!(one["type"], "variation");

    // The adapter maps lines to SKUs by `sku`, whatever the ids say.
    let adapter = env.adapter(WOO);
    let mapped = adapter.get_order(&id(&order)).await.unwrap();
    let skus: Vec<&str> = mapped.items.iter().map(|i| i.sku.as_str()).collect();
    assert_eq!(skus, ["MBA-16GB", "CASE"]);
}

#[tokio::test]
async fn refurbed_totals_are_the_sum_of_its_items() {
    let env = start().await;
    env.control
        .post(
            "/listings",
            json!({"marketplace": "refurbed", "sku": "A", "quantity": 5, "price": "299.25"}),
        )
        .await;
    let order = env.control.order("refurbed", &[("A", 2)], "NEW").await;
    let raw = env
        .adapter("refurbed")
        .get_order(&id(&order))
        .await
        .unwrap()
        .raw;
    check("refurbed order", RF_ORDER, &raw);
    assert_eq!(
        (&raw["total_charged"], &raw["total_paid"]),
        (&json!("598.50"), &json!("598.50"))
    );
}

#[tokio::test]
async fn batch_answers_each_item_as_a_product_or_an_error() {
    let env = start().await;
    let product = listing(&env, json!({"marketplace": WOO, "sku": "A", "quantity": 1})).await;
    let creds = credentials();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/wp-json/wc/v3/products/batch",
            env.sim.base_url(WOO)
        ))
        .basic_auth(&creds.woocommerce_key, Some(&creds.woocommerce_secret))
        .json(&json!({"update": [{"id": product, "stock_quantity": 4}, {"id": 999999, "stock_quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let update = body["update"].as_array().unwrap();
    check("update[0]", WOO_PRODUCT, &update[0]);
    assert_eq!(update[0]["stock_quantity"], 4);
    assert_eq!(update[1]["id"], 999999);
    check("update[1].error", WOO_ERROR, &update[1]["error"]);
}
