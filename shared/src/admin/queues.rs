//! Queue depths for `stockfleet queues`: ready messages and consumers of every
//! queue of the fleet (work, dead-letter, shared delay, unroutable) from AMQP itself;
//! unacknowledged messages only where the broker tells, i.e. its management
//! API (RabbitMQ's `rabbitmq_management` plugin, off by default). Without it
//! the column says so instead of failing.

use crate::bus::{Bus, QueueSpec};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// RabbitMQ's management API on this machine with the default account.
pub const DEFAULT_MANAGEMENT_URL: &str = "http://guest:guest@127.0.0.1:15672";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub name: String,
    pub ready: u32,
    /// None when the management API did not answer.
    pub unacked: Option<u64>,
    pub consumers: u32,
}

/// Every queue of a fleet serving these marketplaces, in a stable order.
pub fn names(bus: &Bus, marketplaces: &[String]) -> Vec<String> {
    let mut names: Vec<String> = QueueSpec::all(marketplaces.iter().map(String::as_str))
        .iter()
        .flat_map(|spec| bus.topology.queue_names(spec))
        .collect();
    names.extend(bus.topology.delay_queues());
    names.push(bus.topology.unroutable());
    names
}

/// Stats of every queue; `management` is the broker's management API base
/// URL (with credentials), tried for the unacknowledged counts.
pub async fn stats(
    bus: &Bus,
    marketplaces: &[String],
    management: Option<&str>,
) -> anyhow::Result<Vec<QueueStats>> {
    let unacked = match management {
        Some(url) => unacknowledged(url).await.unwrap_or_else(|error| {
            tracing::debug!(%error, "management API not available");
            HashMap::new()
        }),
        None => HashMap::new(),
    };
    let channel = bus.channel().await?;
    let mut stats = Vec::new();
    for name in names(bus, marketplaces) {
        // A passive declare fails (and closes the channel) for a missing queue.
        let declared = crate::bus::passive_declare(&channel, &name).await?;
        stats.push(QueueStats {
            unacked: unacked.get(&name).copied(),
            name,
            ready: declared.message_count(),
            consumers: declared.consumer_count(),
        });
    }
    channel.close(200, "done".into()).await.ok();
    Ok(stats)
}

/// Unacknowledged messages per queue from the management API.
async fn unacknowledged(base: &str) -> anyhow::Result<HashMap<String, u64>> {
    let mut url = url::Url::parse(base)?;
    let (user, password) = (url.username().to_owned(), url.password().map(str::to_owned));
    url.set_username("").ok();
    url.set_password(None).ok();
    url.set_path("/api/queues");
    let queues: Vec<serde_json::Value> = reqwest::Client::new()
        .get(url)
        .basic_auth(user, password)
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(queues
        .into_iter()
        .filter_map(|queue| {
            Some((
                queue["name"].as_str()?.to_owned(),
                queue["messages_unacknowledged"].as_u64().unwrap_or(0),
            ))
        })
        .collect())
}
