//! Shared stock pools (issue 17) against the real services and the
//! simulator, with the worker binaries: a sale on one marketplace lowers what
//! every marketplace of the pool shows; the last unit sold on two at once is
//! an oversold pool, reported, unless the last unit is held for one
//! marketplace; moving a variation with locks into and out of a pool keeps
//! every lock and invariant.

use stockfleet::admin::pools::{self, Hold};
use stockfleet_tests::*;

const MARKETPLACES: [&str; 3] = ["backmarket", "refurbed", "woocommerce"];

/// The simulator listing `sku` on every marketplace, the fleet running, the
/// rule "show what is available" (no buffer) and `on_hand` units of `sku`
/// counted on Back Market, then pooled. `poll_every`: the poll intervals
/// forced for the test, or None for the defaults a seller runs with.
async fn pooled_fleet(
    env: &TestEnv,
    sim: &Sim,
    sku: &str,
    on_hand: i32,
    poll_every: Option<i32>,
) -> Vec<tokio::process::Child> {
    if let Some(seconds) = poll_every {
        env.poll_every(seconds).await;
    }
    sqlx::query("UPDATE marketplaces SET default_buffer_percentage = 0")
        .execute(&env.db)
        .await
        .unwrap();
    for marketplace in MARKETPLACES {
        sim.listing(marketplace, sku, 0).await;
    }
    let workers = env.spawn_fleet();
    env.set_stock_on("backmarket", sku, on_hand).await;
    for marketplace in &MARKETPLACES[1..] {
        env.set_stock_on(marketplace, sku, 0).await;
    }
    let out = env.cli(&["stock", "pool", sku]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    workers
}

async fn every_marketplace_shows(sim: &Sim, sku: &str, quantity: i64) {
    let shows = || async {
        let mut shown = Vec::new();
        for marketplace in MARKETPLACES {
            shown.push(sim.quantity(marketplace, sku).await);
        }
        shown
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let shown = shows().await;
        if shown.iter().all(|q| *q == Some(quantity)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "every marketplace should show {quantity} of {sku}; they show {shown:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Waits until the order's lock is committed.
async fn order_locked(env: &TestEnv, order: &str) {
    let locked = format!(
        "SELECT count(*) FROM marketplace_stock_locks
         WHERE order_external_id = '{order}' AND lock_status = 'locked'"
    );
    eventually("the order is locked", || async {
        env.scalar(&locked).await == 1
    })
    .await;
}

#[tokio::test]
async fn a_sale_anywhere_lowers_the_pool_everywhere_and_a_cancel_raises_it_again() {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let _workers = pooled_fleet(&env, &sim, "POOL-3", 3, Some(1)).await;
    every_marketplace_shows(&sim, "POOL-3", 3).await;

    // Orders on two marketplaces lock 2 units: every marketplace shows 1.
    // At once: a push caused by one marketplace's order may land on the other
    // after that one took its own order's unit off (it decrements): the push
    // overwrote it, and the guard must still lower it (publisher/estimate.rs).
    let (on_backmarket, on_refurbed) = tokio::join!(
        sim.place("backmarket", "POOL-3", 1),
        sim.place("refurbed", "POOL-3", 1)
    );
    every_marketplace_shows(&sim, "POOL-3", 1).await;
    let view = pools::view(&env.db, "POOL-3").await.unwrap();
    assert_eq!((view.on_hand, view.locked, view.available), (3, 2, 1));
    let locked: Vec<(String, i32)> = view
        .marketplaces
        .iter()
        .map(|m| (m.marketplace.clone(), m.locked))
        .collect();
    assert_eq!(
        locked,
        [
            ("backmarket".to_owned(), 1),
            ("refurbed".to_owned(), 1),
            ("woocommerce".to_owned(), 0)
        ]
    );
    // The race window was measured on the marketplace that sold nothing.
    let woocommerce = &view.marketplaces[2];
    assert!(woocommerce.propagation_ms.is_some(), "{woocommerce:?}");

    // A cancel raises all three again.
    sim.move_order("refurbed", &on_refurbed, "CANCELLED").await;
    every_marketplace_shows(&sim, "POOL-3", 2).await;

    // A shipment lowers on hand: 2 on hand, nothing locked.
    // The fleet has accepted the Back Market line (state 2) by now.
    eventually("the Back Market line accepted", || async {
        env.scalar("SELECT count(*) FROM orders WHERE status = 'accepted'")
            .await
            == 1
    })
    .await;
    sim.move_order("backmarket", &on_backmarket, "3").await;
    eventually("the shipment consumed", || async {
        let view = pools::view(&env.db, "POOL-3").await.unwrap();
        (view.on_hand, view.locked) == (2, 0)
    })
    .await;
    every_marketplace_shows(&sim, "POOL-3", 2).await;
    let report = env.validate().await;
    assert!(report.is_clean(), "{:?}", report.violations);
    // Each pool change names the marketplace and order that caused it.
    let named = env
        .scalar(
            "SELECT count(*) FROM stock_pool_history h JOIN marketplaces m ON m.id = h.marketplace_id
             WHERE h.order_external_id IS NOT NULL",
        )
        .await;
    assert_eq!(named, 4, "two locks, a release, a consumption");
}

#[tokio::test]
async fn at_the_default_poll_settings_the_last_pooled_unit_sold_on_back_market_is_zero_everywhere_within_3_s()
 {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let _workers = pooled_fleet(&env, &sim, "LAST-1", 1, None).await;
    every_marketplace_shows(&sim, "LAST-1", 1).await;
    let placed = tokio::time::Instant::now();
    let order = sim.place("backmarket", "LAST-1", 1).await;
    order_locked(&env, &order).await;
    eventually("Refurbed and WooCommerce show 0", || async {
        sim.quantity("refurbed", "LAST-1").await == Some(0)
            && sim.quantity("woocommerce", "LAST-1").await == Some(0)
    })
    .await;
    let took = placed.elapsed();
    // Polled at the budget's pace (new orders at least once a second where
    // it has headroom), not every order_poll_interval_seconds (120 s).
    assert!(
        took < std::time::Duration::from_secs(3),
        "placed on Back Market -> locked and 0 on Refurbed and WooCommerce took {took:?}"
    );
}

#[tokio::test]
async fn a_pooled_sale_reaches_back_market_ahead_of_a_backlog_of_increases_waiting_for_its_budget()
{
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let _workers = pooled_fleet(&env, &sim, "LANE-P", 5, None).await;
    every_marketplace_shows(&sim, "LANE-P", 5).await;
    // 30 increases on Back Market: each a read and a push at low priority,
    // which wait for a full listings bucket (2 permits, 1.5 a second):
    // about 40 s of them.
    let backlog: Vec<String> = (1..=30).map(|n| format!("LANE-UP-{n:02}")).collect();
    for sku in &backlog {
        sim.listing("backmarket", sku, 0).await;
        env.set_stock_on("backmarket", sku, 10).await;
    }
    // Placed once the increases are in the publisher's hands: worked one
    // batch at a time, the decrease would wait out their patience (5 s).
    let queue = env.queue(&stockfleet::bus::QueueSpec::publisher("backmarket"));
    eventually("the increases in the publisher's hands", || async {
        env.outbox_len().await == 0 && env.depth(&queue).await == 0
    })
    .await;
    let order = sim.place("refurbed", "LANE-P", 1).await;
    order_locked(&env, &order).await;
    let since_lock = tokio::time::Instant::now();
    eventually("Back Market shows the pool's 4", || async {
        sim.quantity("backmarket", "LANE-P").await == Some(4)
    })
    .await;
    let took = since_lock.elapsed();
    let mut raised = 0;
    for sku in &backlog {
        raised += usize::from(sim.quantity("backmarket", sku).await == Some(10));
    }
    assert!(
        took < std::time::Duration::from_secs(2),
        "locked -> Back Market showing 4 took {took:?}"
    );
    assert!(
        raised < backlog.len() / 2,
        "the decrease went ahead of the backlog, not after it: {raised} of {} increases had landed",
        backlog.len()
    );
    // And the backlog drains after it, within the limits.
    for sku in &backlog {
        let sku = sku.as_str();
        eventually("every increase lands", || async {
            sim.quantity("backmarket", sku).await == Some(10)
        })
        .await;
    }
    assert_eq!(sim.violations("backmarket").await, 0);
}

/// Two marketplaces order the last unit of a pool at the same instant;
/// returns (orders the simulator took, the pool's oversold units as validate
/// reports them).
async fn last_unit_race(hold_for_backmarket: bool) -> (Vec<&'static str>, i32, Vec<String>) {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    let sku = "POOL-LAST";
    let _workers = pooled_fleet(&env, &sim, sku, 1, Some(1)).await;
    if hold_for_backmarket {
        let hold = Hold {
            units: 1,
            holder: Some("backmarket".to_owned()),
        };
        pools::pool(&env.db, sku, Some(hold), "test").await.unwrap();
        eventually("only Back Market shows the last unit", || async {
            sim.quantity("backmarket", sku).await == Some(1)
                && sim.quantity("refurbed", sku).await == Some(0)
                && sim.quantity("woocommerce", sku).await == Some(0)
        })
        .await;
    } else {
        every_marketplace_shows(&sim, sku, 1).await;
    }
    // The simulator refuses (409) an order for more than a listing shows.
    let order = |marketplace: &'static str| {
        let url = format!("{}/orders", sim.handle.control_url());
        async move {
            let body = serde_json::json!({"marketplace": marketplace, "items": [{"sku": sku}]});
            let answer = reqwest::Client::new().post(url).json(&body).send().await;
            answer.expect("control API answers").status().is_success()
        }
    };
    let (a, b) = tokio::join!(order("backmarket"), order("refurbed"));
    let taken: Vec<&str> = [("backmarket", a), ("refurbed", b)]
        .into_iter()
        .filter_map(|(marketplace, taken)| taken.then_some(marketplace))
        .collect();
    eventually("every order taken locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
            .await
            == taken.len() as i64
    })
    .await;
    every_marketplace_shows(&sim, sku, 0).await;
    let report = env.validate().await;
    assert!(report.is_clean(), "{:?}", report.violations);
    let oversold: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.kind == "oversold_pool")
        .map(|f| f.detail.clone())
        .collect();
    let view = pools::view(&env.db, sku).await.unwrap();
    (taken, view.oversold, oversold)
}

#[tokio::test]
async fn the_last_unit_sold_on_two_marketplaces_at_once_is_an_oversold_pool_unless_held_for_one() {
    let (taken, oversold, findings) = last_unit_race(false).await;
    assert_eq!(
        taken,
        ["backmarket", "refurbed"],
        "both showed the last unit"
    );
    assert_eq!(oversold, 1);
    assert_eq!(findings.len(), 1, "validate reports the oversold pool");

    let (taken, oversold, findings) = last_unit_race(true).await;
    assert_eq!(
        taken,
        ["backmarket"],
        "only Back Market offered the last unit"
    );
    assert_eq!(oversold, 0);
    assert!(findings.is_empty(), "{findings:?}");
}

#[tokio::test]
async fn moving_a_variation_with_locks_into_and_out_of_a_pool_keeps_every_lock() {
    let env = TestEnv::new().await;
    let _locker = env.start(stockfleet::ledger::Role::Locker).await;
    for (marketplace, listed) in [("backmarket", 3), ("refurbed", 2), ("woocommerce", 0)] {
        stockfleet::admin::stock::correct(
            &env.db,
            "MOVE-1",
            marketplace,
            stockfleet::admin::stock::Correction::Create(listed),
            "test",
            "count",
        )
        .await
        .unwrap();
    }
    let mut order = created("BM-1", "MOVE-1", 2);
    order.marketplace = "backmarket".to_owned();
    let mut other = created("RF-1", "MOVE-1", 1);
    other.marketplace = "refurbed".to_owned();
    env.publish(&[order, other]).await;
    eventually("both orders locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
            .await
            == 2
    })
    .await;

    let view = pools::pool(&env.db, "MOVE-1", None, "test").await.unwrap();
    assert_eq!((view.on_hand, view.locked, view.available), (5, 3, 2));
    let report = env.validate().await;
    assert!(report.is_clean(), "{:?}", report.violations);

    // A lock on the marketplace that had nothing is covered by the pool.
    let mut third = created("WC-1", "MOVE-1", 2);
    third.marketplace = "woocommerce".to_owned();
    env.publish(&[third]).await;
    eventually("the pool lends WooCommerce its units", || async {
        pools::view(&env.db, "MOVE-1").await.unwrap().locked == 5
    })
    .await;

    pools::unpool(&env.db, "MOVE-1", "test").await.unwrap();
    let rows: Vec<(String, i32, i32)> = sqlx::query_as(
        "SELECT m.code, s.listed_stock, s.locked_stock FROM marketplace_stock s
         JOIN marketplaces m ON m.id = s.marketplace_id ORDER BY s.id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    // Each row gets its own locks back first: nothing oversold, nothing lost.
    assert_eq!(
        rows,
        [
            ("backmarket".to_owned(), 2, 2),
            ("refurbed".to_owned(), 1, 1),
            ("woocommerce".to_owned(), 2, 2)
        ]
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
            .await,
        3
    );
    let report = env.validate().await;
    assert!(report.is_clean(), "{:?}", report.violations);
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.kind.starts_with("oversold"))
    );
    // Cancelling after the move releases on the row again, not on a pool.
    let mut cancel = changed(
        "RF-1",
        "MOVE-1",
        1,
        stockfleet::domain::OrderStatus::Cancelled,
    );
    cancel.marketplace = "refurbed".to_owned();
    env.publish(&[cancel]).await;
    eventually("the release applied to the row", || async {
        env.scalar(
            "SELECT locked_stock::bigint FROM marketplace_stock s
             JOIN marketplaces m ON m.id = s.marketplace_id WHERE m.code = 'refurbed'",
        )
        .await
            == 0
    })
    .await;
}

#[tokio::test]
async fn a_locker_killed_mid_stream_on_pooled_rows_loses_and_doubles_nothing() {
    let env = TestEnv::new().await;
    for marketplace in MARKETPLACES {
        stockfleet::admin::stock::correct(
            &env.db,
            "KILL-POOL",
            marketplace,
            stockfleet::admin::stock::Correction::Create(100),
            "test",
            "count",
        )
        .await
        .unwrap();
    }
    pools::pool(&env.db, "KILL-POOL", None, "test")
        .await
        .unwrap();
    let first = env.spawn("stockfleet-locker");
    // 300 orders spread over the three marketplaces of the pool.
    let orders: Vec<_> = (0..300)
        .map(|n| {
            let mut order = created(&format!("KP{n}"), "KILL-POOL", 1);
            order.marketplace = MARKETPLACES[n % 3].to_owned();
            order
        })
        .collect();
    env.publish(&orders).await;
    eventually("the locker is mid-stream", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            >= 30
    })
    .await;
    let mut first = first;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            < 300,
        "the kill should land mid-stream; raise the order count if this machine is faster"
    );

    let second = env.spawn("stockfleet-locker");
    eventually("all 300 orders locked after the restart", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks")
            .await
            == 300
    })
    .await;
    eventually("outbox drained", || async { env.outbox_len().await == 0 }).await;
    let view = pools::view(&env.db, "KILL-POOL").await.unwrap();
    assert_eq!((view.on_hand, view.locked, view.available), (300, 300, 0));
    assert!(
        view.marketplaces.iter().all(|m| m.locked == 100),
        "{view:?}"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM stock_pool_history WHERE change_type = 'lock'")
            .await,
        300,
        "nothing doubled"
    );
    let report = env.validate().await;
    assert!(report.is_clean(), "{:?}", report.violations);
    terminate(second).await;
}
