//! The bus and the marketplaces' side: dead letters by reason, messages left
//! in any other queue, the simulator's rate-limit violations, requests per
//! minute by caller and class against each limit, and sync runs by outcome.

use super::{Fleet, Line, Verdict, idle};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;
use stockfleet::admin::{dlq, queues};

pub(super) async fn check(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    dead_letters(fleet, lines).await?;
    left_in_queues(fleet, lines).await?;
    rate_limits(fleet, lines).await?;
    request_rates(fleet, lines).await?;
    sync_runs(fleet, lines).await?;
    Ok(())
}

async fn dead_letters(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let letters = dlq::list(&fleet.bus, &fleet.codes, &dlq::Filter::default()).await?;
    let mut reasons: BTreeMap<(String, String), usize> = BTreeMap::new();
    for letter in &letters {
        let reason = format!(
            "{}: {}",
            letter.error_kind,
            letter.error.chars().take(90).collect::<String>()
        );
        *reasons.entry((letter.queue.clone(), reason)).or_default() += 1;
    }
    if reasons.is_empty() {
        lines.push(Line::new("dead letters", "-", "none".into(), Verdict::Ok));
    }
    for ((queue, reason), count) in reasons {
        lines.push(Line::new(
            "dead letters",
            queue,
            format!("{count} × {reason}"),
            Verdict::Fail,
        ));
    }
    Ok(())
}

/// Once idle nothing waits in a work queue; the unroutable queue holds
/// messages no queue was bound for.
async fn left_in_queues(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let stats = queues::stats(&fleet.bus, &fleet.codes, fleet.management_url.as_deref()).await?;
    let dead_letter_queues: Vec<String> =
        stockfleet::bus::QueueSpec::all(fleet.codes.iter().map(String::as_str))
            .iter()
            .map(|spec| fleet.bus.topology.dead_letter_queue(spec))
            .collect();
    let mut left = Vec::new();
    let mut checked = 0;
    for queue in stats
        .iter()
        .filter(|q| !dead_letter_queues.contains(&q.name))
    {
        checked += 1;
        let messages = u64::from(queue.ready) + queue.unacked.unwrap_or(0);
        if messages > 0 {
            let what = if idle::is_work_queue(fleet, &queue.name) {
                ""
            } else {
                " (unroutable)"
            };
            left.push(format!("{} {messages}{what}", queue.name));
        }
    }
    let result = match left.is_empty() {
        true => format!("{checked} queue(s) empty"),
        false => left.join(", "),
    };
    lines.push(Line::unless("messages left", "-", result, !left.is_empty()));
    Ok(())
}

async fn rate_limits(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let answer = fleet.sim_get("/rate-limits").await?;
    for (code, sim_name) in &fleet.on_sim {
        let violations = answer[sim_name.as_str()]["violations"]
            .as_u64()
            .unwrap_or(0);
        let result = format!("{violations} request(s) over the marketplace's rate limit");
        lines.push(Line::unless(
            "rate-limit violations",
            code.clone(),
            result,
            violations > 0,
        ));
    }
    Ok(())
}

/// Requests per minute by caller and class: the average over the span the
/// caller was active and the busiest minute, against the class's limit.
async fn request_rates(fleet: &Fleet, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let answer = match fleet.sim_get("/requests/rates").await {
        Ok(answer) => answer,
        // A simulator from before per-caller counting: say so, audit the rest.
        Err(error) if error.to_string().contains("404") => {
            let note = "the simulator does not count requests by caller (an older version)";
            lines.push(Line::new("requests", "-", note.to_owned(), Verdict::Info));
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let rows = answer.as_array().cloned().unwrap_or_default();
    for rate in rows {
        let Some(code) = fleet
            .on_sim
            .iter()
            .find(|(_, name)| rate["marketplace"] == name.as_str())
        else {
            continue;
        };
        let requests = rate["requests"].as_u64().unwrap_or(0);
        let time = |field: &str| {
            rate[field]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        };
        let minutes = match (time("first_at"), time("last_at")) {
            (Some(first), Some(last)) => ((last - first).as_seconds_f64() / 60.0).max(1.0 / 60.0),
            _ => 1.0,
        };
        let limit = rate["limit_per_minute"]
            .as_f64()
            .map_or("no limit".to_owned(), |limit| {
                format!("limit {limit:.0}/min")
            });
        let result = format!(
            "{} {}: {requests} request(s), {:.1}/min on average, busiest minute {} ({limit}), {} answered 429",
            rate["caller"].as_str().unwrap_or("?"),
            rate["class"].as_str().unwrap_or("?"),
            requests as f64 / minutes,
            rate["peak_per_minute"],
            rate["rate_limited"],
        );
        lines.push(Line::new("requests", code.0.clone(), result, Verdict::Info));
    }
    Ok(())
}

async fn sync_runs(fleet: &Fleet, lines: &mut Vec<Line>) -> sqlx::Result<()> {
    let rows = sqlx::query(
        "SELECT m.code, r.sync_type,
                count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE r.status = 'partial') AS partial,
                count(*) FILTER (WHERE r.status = 'failed') AS failed,
                count(*) FILTER (WHERE r.status = 'running') AS running
         FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&fleet.db)
    .await?;
    for row in rows {
        let scope = format!(
            "{} {}",
            row.get::<String, _>("code"),
            row.get::<String, _>("sync_type")
        );
        let result = format!(
            "{} succeeded, {} partial, {} failed, {} running",
            row.get::<i64, _>("succeeded"),
            row.get::<i64, _>("partial"),
            row.get::<i64, _>("failed"),
            row.get::<i64, _>("running"),
        );
        lines.push(Line::new("sync runs", scope, result, Verdict::Info));
    }
    Ok(())
}
