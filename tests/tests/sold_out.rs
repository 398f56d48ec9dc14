//! Sold-outs confirmed (issue 29): a push that takes a listing to 0 is read
//! back once the marketplace's `zero_confirm_seconds` have passed, and a
//! zero the marketplace answered 200 to without applying is sent again.

use serde_json::json;
use stockfleet_tests::*;

#[tokio::test]
async fn a_zero_acknowledged_but_not_applied_is_read_back_and_sent_again() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sqlx::query("UPDATE marketplaces SET zero_confirm_seconds = 1")
        .execute(&env.db)
        .await
        .unwrap();
    sim.listing("refurbed", "ZERO-1", 0).await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock_on("refurbed", "ZERO-1", 10).await;
    eventually("9 shown (10 less the buffer)", || async {
        // An increase waits for a poll started after the last push.
        env.orders_polled("refurbed").await;
        sim.quantity("refurbed", "ZERO-1").await == Some(9)
    })
    .await;

    // Refurbed answers 200 to the next quantity write without applying it.
    sim.faults("refurbed", json!({"ack_without_apply_writes": 1}))
        .await;
    env.set_stock_on("refurbed", "ZERO-1", 0).await;
    let pushed_zero =
        "SELECT count(*) FROM marketplace_stock s JOIN variations v ON v.id = s.variation_id
         WHERE v.sku = 'ZERO-1' AND s.last_api_quantity = 0";
    eventually("the zero acknowledged", || async {
        env.scalar(pushed_zero).await == 1
    })
    .await;
    assert_eq!(
        sim.quantity("refurbed", "ZERO-1").await,
        Some(9),
        "the fault kept the listing as it was"
    );

    eventually("the zero read back and sent again", || async {
        sim.quantity("refurbed", "ZERO-1").await == Some(0)
    })
    .await;
    // The history row commits after the push it goes with has landed.
    let noted = "SELECT count(*) FROM marketplace_stock_history
        WHERE change_type = 'reconciliation' AND notes LIKE 'refurbed showed 9 while we last pushed 0%'";
    eventually("the difference the read found in the history", || async {
        env.scalar(noted).await == 1
    })
    .await;
    // Confirmed: nothing is left due, and a read that agrees changes nothing.
    eventually("nothing left to confirm", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock WHERE zero_confirm_due_at IS NOT NULL")
            .await
            == 0
    })
    .await;
    assert_eq!(env.scalar(noted).await, 1, "the difference recorded once");
    publisher.stop().await;
}

/// The other side of zero: a listing back in stock takes orders again, and a
/// write the marketplace dropped would leave it at 0 with nothing to correct
/// it (a listing at 0 sells nothing, so its row never changes).
#[tokio::test]
async fn a_listing_back_in_stock_acknowledged_but_not_applied_is_read_back_and_sent_again() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    sqlx::query("UPDATE marketplaces SET zero_confirm_seconds = 1")
        .execute(&env.db)
        .await
        .unwrap();
    sim.listing("refurbed", "BACK-1", 0).await;
    sim.faults("refurbed", json!({"ack_without_apply_writes": 1}))
        .await;
    let publisher = env.start_publisher(&sim).await;
    env.set_stock_on("refurbed", "BACK-1", 10).await;
    let pushed_nine =
        "SELECT count(*) FROM marketplace_stock s JOIN variations v ON v.id = s.variation_id
         WHERE v.sku = 'BACK-1' AND s.last_api_quantity = 9";
    eventually("9 acknowledged", || async {
        env.orders_polled("refurbed").await;
        env.scalar(pushed_nine).await == 1
    })
    .await;
    assert_eq!(
        sim.quantity("refurbed", "BACK-1").await,
        Some(0),
        "the fault kept the listing at 0"
    );
    eventually("the 9 read back and sent again", || async {
        // The increase after the read waits for a poll started after it.
        env.orders_polled("refurbed").await;
        sim.quantity("refurbed", "BACK-1").await == Some(9)
    })
    .await;
    let noted = env
        .scalar(
            "SELECT count(*) FROM marketplace_stock_history
             WHERE change_type = 'reconciliation' AND notes LIKE 'refurbed showed 0 while we last pushed 9%'",
        )
        .await;
    assert_eq!(noted, 1, "the difference the read found is in the history");
    publisher.stop().await;
}
