//! Orders: every order on the simulator stored once with each item's raw
//! status, no order stored that the marketplace does not have, no order
//! effect applied twice, and each item's lock where its status puts it.

use super::{Fleet, Line, Verdict, examples};
use sqlx::Row;
use std::collections::BTreeMap;
use stockfleet::domain::OrderStatus;

/// Item id → raw status, per order id.
type Orders = BTreeMap<String, BTreeMap<String, String>>;

pub(super) async fn check(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let stored = stored_orders(fleet).await?;
    for (code, sim_name) in &fleet.on_sim {
        let on_sim = sim_orders(fleet, sim_name).await?;
        let empty = Orders::new();
        let ours = stored.get(code).unwrap_or(&empty);
        lines.push(compare(code, &on_sim, ours));
    }
    doubled(fleet, lines).await?;
    locks(fleet, lines).await
}

async fn sim_orders(fleet: &Fleet, sim_name: &str) -> anyhow::Result<Orders> {
    let answer = fleet
        .sim_get(&format!("/orders?marketplace={sim_name}"))
        .await?;
    let mut orders = Orders::new();
    for order in answer.as_array().into_iter().flatten() {
        let items = order["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| (item["id"].to_string(), text(&item["state"])))
            .collect();
        orders.insert(order["id"].to_string(), items);
    }
    Ok(orders)
}

fn text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

async fn stored_orders(fleet: &Fleet) -> sqlx::Result<BTreeMap<String, Orders>> {
    let rows = sqlx::query(
        "SELECT m.code, o.external_id, i.external_id AS item, i.raw_status
         FROM orders o JOIN marketplaces m ON m.id = o.marketplace_id
         LEFT JOIN order_items i ON i.order_id = o.id",
    )
    .fetch_all(&fleet.db)
    .await?;
    let mut stored: BTreeMap<String, Orders> = BTreeMap::new();
    for row in rows {
        let order = stored
            .entry(row.get("code"))
            .or_default()
            .entry(row.get("external_id"))
            .or_default();
        if let Some(item) = row.get::<Option<String>, _>("item") {
            order.insert(item, row.get("raw_status"));
        }
    }
    Ok(stored)
}

/// Missing (on the marketplace, not stored), unknown (stored, not on the
/// marketplace) and wrong status (an item whose stored raw status differs).
fn compare(code: &str, on_sim: &Orders, ours: &Orders) -> Line {
    let missing: Vec<&String> = on_sim.keys().filter(|id| !ours.contains_key(*id)).collect();
    let unknown: Vec<&String> = ours.keys().filter(|id| !on_sim.contains_key(*id)).collect();
    let wrong: Vec<String> = on_sim
        .iter()
        .filter_map(|(id, items)| {
            let stored = ours.get(id)?;
            let differs = items
                .iter()
                .find(|(item, state)| stored.get(*item) != Some(state))?;
            let found = stored.get(differs.0).map_or("nothing", String::as_str);
            Some(format!(
                "{id} item {} is {} here {found}",
                differs.0, differs.1
            ))
        })
        .collect();
    let result = format!(
        "{} on the marketplace, {} stored: {} missing{}, {} unknown{}, {} wrong status{}",
        on_sim.len(),
        ours.len(),
        missing.len(),
        examples(&missing),
        unknown.len(),
        examples(&unknown),
        wrong.len(),
        examples(&wrong),
    );
    let failed = !(missing.is_empty() && unknown.is_empty() && wrong.is_empty());
    Line::unless("orders", code, result, failed)
}

/// An order effect (lock, consume, release) recorded twice for one item.
async fn doubled(fleet: &Fleet, lines: &mut Vec<Line>) -> sqlx::Result<()> {
    let rows = sqlx::query(
        "SELECT m.code, count(d.*) AS doubled,
                string_agg(d.order_external_id || '/' || d.order_item_external_id, ', ') AS which
         FROM marketplaces m LEFT JOIN (
             SELECT marketplace_id, order_external_id, order_item_external_id
             FROM marketplace_stock_history
             WHERE change_type IN ('order_created', 'order_completed', 'order_cancelled')
               AND order_item_external_id IS NOT NULL
               AND (listed_before <> listed_after OR locked_before <> locked_after)
             GROUP BY marketplace_id, stock_id, order_external_id, order_item_external_id, change_type
             HAVING count(*) > 1) d ON d.marketplace_id = m.id
         GROUP BY m.code ORDER BY m.code",
    )
    .fetch_all(&fleet.db)
    .await?;
    for row in rows {
        let doubled: i64 = row.get("doubled");
        let which: Option<String> = row.get("which");
        let which = which
            .map(|w| format!(" ({})", truncate(&w, 80)))
            .unwrap_or_default();
        let result = format!("{doubled} order effect(s) applied twice{which}");
        lines.push(Line::unless(
            "doubled",
            row.get::<String, _>("code"),
            result,
            doubled > 0,
        ));
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Whether an item's lock agrees with its stored status: open items hold a
/// lock (unpaid ones only where the marketplace locks them), shipped ones
/// consumed it, cancelled ones released it or never had one, returned ones
/// are past their lock.
pub fn lock_agrees(status: OrderStatus, lock: Option<&str>) -> bool {
    match status {
        OrderStatus::Unpaid => matches!(lock, None | Some("locked")),
        OrderStatus::Pending | OrderStatus::Accepted => lock == Some("locked"),
        OrderStatus::Shipped => lock == Some("consumed"),
        OrderStatus::Cancelled => matches!(lock, None | Some("released")),
        OrderStatus::Returned => matches!(lock, Some("consumed" | "released")),
    }
}

async fn locks(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let rows = sqlx::query(
        "SELECT m.code, i.status, l.lock_status, count(*) AS items,
                min(o.external_id || '/' || i.external_id) AS example
         FROM order_items i JOIN orders o ON o.id = i.order_id
         JOIN marketplaces m ON m.id = o.marketplace_id
         LEFT JOIN marketplace_stock_locks l ON l.marketplace_id = o.marketplace_id
              AND l.order_external_id = o.external_id AND l.order_item_external_id = i.external_id
         WHERE i.variation_id IS NOT NULL AND i.status IS NOT NULL
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .fetch_all(&fleet.db)
    .await?;
    let mut per_code: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let status: String = row.get("status");
        let lock: Option<String> = row.get("lock_status");
        let items: i64 = row.get("items");
        let entry = per_code.entry(row.get("code")).or_default();
        entry.0 += items;
        if !lock_agrees(status.parse().map_err(anyhow::Error::msg)?, lock.as_deref()) {
            let example: String = row.get("example");
            let lock = lock.as_deref().unwrap_or("no lock");
            entry
                .1
                .push(format!("{items} {status} with {lock} (e.g. {example})"));
        }
    }
    for (code, (items, wrong)) in per_code {
        let result = match wrong.is_empty() {
            true => format!("{items} item(s), every lock where its status puts it"),
            false => format!("{items} item(s): {}", wrong.join("; ")),
        };
        lines.push(Line::unless(
            "locks vs status",
            code,
            result,
            !wrong.is_empty(),
        ));
    }
    if lines.iter().all(|l| l.check != "locks vs status") {
        lines.push(Line::new(
            "locks vs status",
            "-",
            "no order items".into(),
            Verdict::Info,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_its_lock() {
        use OrderStatus::*;
        assert!(lock_agrees(Pending, Some("locked")));
        assert!(!lock_agrees(Accepted, None));
        assert!(!lock_agrees(Accepted, Some("released")));
        assert!(lock_agrees(Shipped, Some("consumed")));
        assert!(!lock_agrees(Shipped, Some("locked")));
        assert!(lock_agrees(Cancelled, None));
        assert!(!lock_agrees(Cancelled, Some("locked")));
        assert!(lock_agrees(Unpaid, None));
        assert!(!lock_agrees(Returned, Some("locked")));
    }

    #[test]
    fn a_missing_order_and_a_wrong_status_fail() {
        let order = |state: &str| BTreeMap::from([("1".to_owned(), state.to_owned())]);
        let on_sim = Orders::from([("10".into(), order("2")), ("11".into(), order("1"))]);
        let ours = Orders::from([("10".into(), order("1"))]);
        let line = compare("backmarket", &on_sim, &ours);
        assert_eq!(line.verdict, Verdict::Fail);
        assert!(
            line.result.contains("1 missing (e.g. 11)"),
            "{}",
            line.result
        );
        assert!(line.result.contains("1 wrong status"), "{}", line.result);
        let same = compare("backmarket", &on_sim, &on_sim);
        assert_eq!(same.verdict, Verdict::Ok, "{}", same.result);
    }
}
