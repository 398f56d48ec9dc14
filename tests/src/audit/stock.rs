//! Stock: listed stock against the units consumed, what each marketplace
//! shows against buffered(available) for every row, and `stockfleet
//! validate`'s invariants and oversold units.

use super::{Fleet, Line, Verdict, examples};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use stockfleet::admin::stock::{self, StockFilter, StockRowView};
use stockfleet::admin::validate;
use stockfleet::domain::listing::Window;
use stockfleet::domain::push_guard::{self, PushDecision};

pub(super) async fn check(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    listed_vs_consumed(fleet, lines).await?;
    shown_vs_buffered(fleet, lines).await?;
    Ok(invariants(fleet, lines).await?)
}

/// Each row's listed stock is what was counted into it (every change but a
/// consumption) less the units its consumed locks took. A consumption that
/// clamped at 0 (an oversell) breaks the sum; those rows are only counted.
async fn listed_vs_consumed(fleet: &Fleet, lines: &mut Vec<Line>) -> sqlx::Result<()> {
    let rows = sqlx::query(
        "WITH consumed AS (
             SELECT stock_id, sum(quantity_locked)::bigint AS units
             FROM marketplace_stock_locks WHERE lock_status = 'consumed' GROUP BY stock_id),
         counted AS (
             SELECT stock_id,
                    sum(listed_after - listed_before) FILTER (WHERE change_type <> 'order_completed')::bigint AS units,
                    bool_or(notes LIKE '%clamped%') AS clamped
             FROM marketplace_stock_history GROUP BY stock_id)
         SELECT m.code, count(s.id) AS stock_rows, COALESCE(sum(c.units), 0)::bigint AS consumed,
                count(*) FILTER (WHERE COALESCE(k.clamped, false)) AS clamped,
                count(*) FILTER (WHERE NOT COALESCE(k.clamped, false)
                    AND s.listed_stock <> COALESCE(k.units, 0) - COALESCE(c.units, 0)) AS wrong,
                min(v.sku) FILTER (WHERE NOT COALESCE(k.clamped, false)
                    AND s.listed_stock <> COALESCE(k.units, 0) - COALESCE(c.units, 0)) AS example
         FROM marketplace_stock s JOIN marketplaces m ON m.id = s.marketplace_id
         JOIN variations v ON v.id = s.variation_id
         LEFT JOIN consumed c ON c.stock_id = s.id LEFT JOIN counted k ON k.stock_id = s.id
         GROUP BY m.code ORDER BY m.code",
    )
    .fetch_all(&fleet.db)
    .await?;
    for row in rows {
        let wrong: i64 = row.get("wrong");
        let example = row
            .get::<Option<String>, _>("example")
            .map(|sku| format!(" (e.g. {sku})"))
            .unwrap_or_default();
        let result = format!(
            "{} row(s), {} unit(s) consumed, {} clamped at 0, {wrong} off by a consumption{example}",
            row.get::<i64, _>("stock_rows"),
            row.get::<i64, _>("consumed"),
            row.get::<i64, _>("clamped"),
        );
        lines.push(Line::unless(
            "listed vs consumed",
            row.get::<String, _>("code"),
            result,
            wrong > 0,
        ));
    }
    Ok(())
}

/// Every stock row (the same reader as `stockfleet stock show`), 500 at a time.
async fn all_rows(fleet: &Fleet) -> sqlx::Result<Vec<StockRowView>> {
    let mut rows = Vec::new();
    loop {
        let window = Window {
            limit: 500,
            offset: rows.len() as i64,
        };
        let page = stock::rows(&fleet.db, &StockFilter::every(window))
            .await?
            .items;
        let done = page.len() < 500;
        rows.extend(page);
        if done {
            return Ok(rows);
        }
    }
}

/// A row showing less than its target because the guard holds the
/// increase back until a fresh poll (push_guard.rs): not a failure.
fn held_back(row: &StockRowView, estimate: Option<&Option<i32>>) -> bool {
    let Some(estimate) = estimate else {
        return false;
    };
    push_guard::decide(row.buffered as i32, *estimate, false) == PushDecision::WaitForPoll
}

/// The marketplace's own SKU of each (code, our SKU) that differs.
async fn marketplace_skus(fleet: &Fleet) -> sqlx::Result<HashMap<(String, String), String>> {
    let rows = sqlx::query(
        "SELECT m.code, v.sku, l.sku AS listed_as FROM listings l
         JOIN variations v ON v.id = l.variation_id JOIN marketplaces m ON m.id = l.marketplace_id",
    )
    .fetch_all(&fleet.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.get("code"), row.get("sku")), row.get("listed_as")))
        .collect())
}

#[derive(Default)]
struct Shown {
    rows: u64,
    matching: u64,
    held: u64,
    unknown_stock: u64,
    unlisted: u64,
    above: Vec<String>,
    below: Vec<String>,
}

async fn shown_vs_buffered(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let rows = all_rows(fleet).await?;
    let estimates = stockfleet::publisher::shown_estimates(&fleet.db).await?;
    let renamed = marketplace_skus(fleet).await?;
    let mut per_code: BTreeMap<&str, Shown> = BTreeMap::new();
    let mut sim_quantities: HashMap<String, HashMap<String, i64>> = HashMap::new();
    for (code, sim_name) in &fleet.on_sim {
        let answer = fleet
            .sim_get(&format!("/listings?marketplace={sim_name}"))
            .await?;
        let quantities = answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let listing = &entry["listing"];
                Some((
                    listing["sku"].as_str()?.to_owned(),
                    listing["quantity"].as_i64()?,
                ))
            })
            .collect();
        sim_quantities.insert(code.clone(), quantities);
        per_code.insert(code, Shown::default());
    }
    for row in &rows {
        let (Some(quantities), Some(tally)) = (
            sim_quantities.get(&row.marketplace),
            per_code.get_mut(row.marketplace.as_str()),
        ) else {
            continue;
        };
        tally.rows += 1;
        let key = (row.marketplace.clone(), row.sku.clone());
        let sku = renamed.get(&key).unwrap_or(&row.sku);
        let Some(&shown) = quantities.get(sku) else {
            tally.unlisted += 1;
            continue;
        };
        let target = i64::from(row.buffered);
        let described = format!("{} shows {shown} for {target}", row.sku);
        if shown == target {
            tally.matching += 1;
        } else if !row.stock_known {
            tally.unknown_stock += 1;
        } else if shown < target && held_back(row, estimates.get(&row.stock_id)) {
            tally.held += 1;
        } else if shown > target {
            tally.above.push(described);
        } else {
            tally.below.push(described);
        }
    }
    for (code, tally) in per_code {
        let result = format!(
            "{} row(s): {} match, {} held for a poll, {} never counted, {} not listed, {} above{}, {} below{}",
            tally.rows,
            tally.matching,
            tally.held,
            tally.unknown_stock,
            tally.unlisted,
            tally.above.len(),
            examples(&tally.above),
            tally.below.len(),
            examples(&tally.below),
        );
        let failed = !(tally.above.is_empty() && tally.below.is_empty());
        lines.push(Line::unless("shown vs buffered", code, result, failed));
    }
    Ok(())
}

async fn invariants(fleet: &Fleet, lines: &mut Vec<Line>) -> sqlx::Result<()> {
    let stale_after = Duration::from_secs(validate::DEFAULT_STALE_AFTER_HOURS * 3600);
    let report = validate::validate(&fleet.db, stale_after).await?;
    for (n, text) in validate::INVARIANTS.iter().enumerate() {
        let broken: Vec<&validate::Violation> = report
            .violations
            .iter()
            .filter(|v| usize::from(v.invariant) == n + 1)
            .collect();
        let result = match broken.first() {
            None => format!("holds: {text}"),
            Some(first) => format!("{} violation(s), e.g. {}", broken.len(), first.detail),
        };
        lines.push(Line::unless(
            "invariant",
            format!("{}", n + 1),
            result,
            !broken.is_empty(),
        ));
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for finding in &report.findings {
        *kinds.entry(finding.kind).or_default() += 1;
    }
    for (kind, count) in kinds.into_iter().filter(|(kind, _)| *kind != "oversold") {
        lines.push(Line::new(
            "validate report",
            kind,
            format!("{count}"),
            Verdict::Info,
        ));
    }
    for (code, units) in &report.oversold_units {
        let result = format!("{units} unit(s) sold beyond what was listed");
        lines.push(Line::unless("oversold", code.clone(), result, *units > 0));
    }
    Ok(())
}
