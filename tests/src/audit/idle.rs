//! Idle: every work and delay queue empty, nothing unacknowledged, the
//! outbox drained, three times in a row half a second apart.

use super::{Fleet, Line, Verdict};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use stockfleet::admin::queues;
use stockfleet::bus::QueueSpec;

const CALM_CHECKS: u32 = 3;
const PAUSE: Duration = Duration::from_millis(500);

/// The queues that hold work still to do: not the dead-letter queues and
/// not the unroutable one (what sits there is a finding, not work).
pub(super) fn is_work_queue(fleet: &Fleet, name: &str) -> bool {
    let topology = &fleet.bus.topology;
    let parked: BTreeSet<String> = QueueSpec::all(fleet.codes.iter().map(String::as_str))
        .iter()
        .map(|spec| topology.dead_letter_queue(spec))
        .chain([topology.unroutable()])
        .collect();
    !parked.contains(name)
}

/// What is still to do: queues with messages and the outbox backlog.
async fn busy(fleet: &Fleet) -> anyhow::Result<Vec<String>> {
    let mut left = Vec::new();
    let stats = queues::stats(&fleet.bus, &fleet.codes, fleet.management_url.as_deref()).await?;
    for queue in stats.iter().filter(|q| is_work_queue(fleet, &q.name)) {
        match queue.unacked {
            // A batch in a consumer's hands is work too; without the count
            // the fleet cannot be called idle.
            None if queue.consumers > 0 => left.push(format!(
                "{} {}+? (unacknowledged unknown: enable RabbitMQ's management plugin, \
                 `rabbitmq-plugins enable rabbitmq_management`)",
                queue.name, queue.ready
            )),
            unacked if queue.ready > 0 || unacked.unwrap_or(0) > 0 => left.push(format!(
                "{} {}+{}",
                queue.name,
                queue.ready,
                unacked.unwrap_or(0)
            )),
            _ => {}
        }
    }
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&fleet.db)
        .await?;
    if outbox > 0 {
        left.push(format!("outbox {outbox}"));
    }
    Ok(left)
}

/// Waits until the fleet is idle or `timeout` passes; the line says which
/// and, on timeout, what was left.
pub async fn wait_for_idle(fleet: &Fleet, timeout: Duration) -> anyhow::Result<Line> {
    let started = Instant::now();
    let mut calm = 0;
    loop {
        let left = busy(fleet).await?;
        calm = if left.is_empty() { calm + 1 } else { 0 };
        if calm == CALM_CHECKS {
            let waited = started.elapsed().as_secs_f64();
            let result = format!("queues empty and outbox drained after {waited:.1} s");
            return Ok(Line::new("idle", "-", result, Verdict::Ok));
        }
        if started.elapsed() >= timeout {
            let result = format!(
                "not idle within {} s: {}",
                timeout.as_secs(),
                left.join(", ")
            );
            return Ok(Line::new("idle", "-", result, Verdict::Fail));
        }
        tokio::time::sleep(PAUSE).await;
    }
}
