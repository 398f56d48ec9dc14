//! Dead letters: list, show, replay and purge (`stockfleet dlq …`).
//!
//! Every operation reads a dead-letter queue with unacknowledged `basic.get`s
//! up to the depth it had when it started; the messages it does not take are
//! handed back when its channel closes, so nothing is lost if the command
//! dies half-way. Replay sends a message to the queue that dead-lettered it
//! (through the default exchange), not to its original routing key on the
//! topic exchange: the other queues bound to that key handled it already.
//! Its attempts are reset and its failure headers dropped; where it was first
//! routed is kept. A replayed message is acknowledged on the dead-letter queue
//! only after the broker confirmed the copy.

use super::scope::Scope;
use crate::bus::headers::{
    self, ATTEMPTS, DEFERRALS, ERROR, ERROR_KIND, FIRST_FAILURE, LAST_FAILURE,
};
use crate::bus::{Bus, Envelope, Outgoing, Publisher, QueueSpec};
use chrono::{DateTime, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use std::time::Duration;

/// The failure kinds a dead letter may have (`x-error-kind`; `broker` when
/// the broker itself dead-lettered it).
pub const KINDS: [&str; 3] = ["transient", "permanent", "broker"];

/// Which dead letters an operation takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A consumer queue name without the prefix (`locker`, `publisher.backmarket`).
    pub queue: Option<String>,
    pub marketplace: Option<String>,
    /// `transient` or `permanent` (the `x-error-kind` header).
    pub kind: Option<String>,
    /// Last failed at least this long ago.
    pub older_than: Option<Duration>,
    /// Last failed at most this long ago.
    pub newer_than: Option<Duration>,
    /// Only these messages, by message id (empty: any message).
    pub message_ids: Vec<String>,
    /// At most this many, the first found (the dashboard shows a page, not thousands).
    pub limit: Option<usize>,
    /// The caller's marketplaces: letters of others are never taken.
    pub scope: Scope,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub queue: String,
    pub message_id: String,
    pub kind: String,
    pub marketplace: String,
    pub error: String,
    pub error_kind: String,
    pub attempts: u32,
    pub first_failure: Option<String>,
    pub last_failure: Option<String>,
    pub routing_key: String,
    pub headers: serde_json::Value,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    List,
    Replay,
    Purge,
}

/// The dead-letter queues of every consumer queue of these marketplaces.
pub fn queues(bus: &Bus, marketplaces: &[String], filter: &Filter) -> Vec<(QueueSpec, String)> {
    QueueSpec::all(marketplaces.iter().map(String::as_str))
        .into_iter()
        .filter(|spec| filter.queue.as_ref().is_none_or(|q| *q == spec.name))
        .map(|spec| {
            let dlq = bus.topology.dead_letter_queue(&spec);
            (spec, dlq)
        })
        .collect()
}

/// The dead letters matching `filter`, left in place.
pub async fn list(
    bus: &Bus,
    marketplaces: &[String],
    filter: &Filter,
) -> anyhow::Result<Vec<DeadLetter>> {
    walk(bus, marketplaces, filter, Action::List, false).await
}

/// Puts matching dead letters back on their queue; returns those moved (or
/// that would move, with `dry_run`).
pub async fn replay(
    bus: &Bus,
    marketplaces: &[String],
    filter: &Filter,
    dry_run: bool,
) -> anyhow::Result<Vec<DeadLetter>> {
    walk(bus, marketplaces, filter, Action::Replay, dry_run).await
}

/// Deletes matching dead letters; returns those deleted (or that would be).
pub async fn purge(
    bus: &Bus,
    marketplaces: &[String],
    filter: &Filter,
    dry_run: bool,
) -> anyhow::Result<Vec<DeadLetter>> {
    walk(bus, marketplaces, filter, Action::Purge, dry_run).await
}

async fn walk(
    bus: &Bus,
    marketplaces: &[String],
    filter: &Filter,
    action: Action,
    dry_run: bool,
) -> anyhow::Result<Vec<DeadLetter>> {
    let mut taken = Vec::new();
    for (spec, dlq) in queues(bus, marketplaces, filter) {
        // One channel per queue: closing it hands back what was not taken.
        let publisher = Publisher::new(bus).await?;
        let channel = publisher.channel().clone();
        let depth = crate::bus::passive_declare(&channel, &dlq)
            .await?
            .message_count();
        let mut left = Vec::new();
        for _ in 0..depth {
            if filter.limit.is_some_and(|limit| taken.len() >= limit) {
                break;
            }
            let Some(message) = channel
                .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            let delivery = message.delivery;
            let letter = describe(&dlq, &delivery);
            if !matches(&letter, filter) {
                left.push(delivery.delivery_tag);
                continue;
            }
            if dry_run {
                left.push(delivery.delivery_tag);
            } else {
                match action {
                    Action::List => left.push(delivery.delivery_tag),
                    Action::Replay => {
                        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                        start_over(&mut headers);
                        publisher
                            .publish_all(vec![Outgoing {
                                exchange: String::new(),
                                routing_key: bus.topology.queue(&spec),
                                message_id: letter.message_id.clone(),
                                headers,
                                body: delivery.data.clone(),
                            }])
                            .await?;
                        channel
                            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                            .await?;
                    }
                    Action::Purge => {
                        channel
                            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                            .await?;
                    }
                }
            }
            taken.push(letter);
        }
        // Back to the queue, explicitly (closing the channel would too).
        for tag in left {
            channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    },
                )
                .await?;
        }
        channel.close(200, "done".into()).await.ok();
    }
    Ok(taken)
}

fn describe(queue: &str, delivery: &lapin::message::Delivery) -> DeadLetter {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let envelope = Envelope::decode(&delivery.data).ok();
    let body = serde_json::from_slice(&delivery.data).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&delivery.data).into_owned())
    });
    let error = headers::get_str(&headers, ERROR)
        .or_else(|| death(&headers).map(|reason| format!("broker dead-lettered it: {reason}")))
        .unwrap_or_default();
    DeadLetter {
        queue: queue.to_owned(),
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            // A copy resent without one carries an empty id.
            .filter(|id| !id.is_empty())
            .or_else(|| envelope.as_ref().map(|e| e.id.to_string()))
            .unwrap_or_default(),
        kind: envelope
            .as_ref()
            .map(|e| e.kind.clone())
            .unwrap_or_default(),
        marketplace: envelope
            .as_ref()
            .map(|e| e.marketplace.clone())
            .unwrap_or_default(),
        error,
        error_kind: headers::get_str(&headers, ERROR_KIND).unwrap_or_else(|| "broker".into()),
        attempts: headers::get_u32(&headers, ATTEMPTS).unwrap_or(0),
        first_failure: headers::get_str(&headers, FIRST_FAILURE),
        last_failure: headers::get_str(&headers, LAST_FAILURE),
        routing_key: headers::get_str(&headers, headers::ORIGINAL_ROUTING_KEY)
            .unwrap_or_else(|| delivery.routing_key.to_string()),
        headers: headers_json(&headers),
        body,
    }
}

/// The reason of the broker's own dead-lettering (`x-death`), e.g. "delivery_limit".
fn death(headers: &FieldTable) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    headers::get_str(first, "reason")
}

fn headers_json(headers: &FieldTable) -> serde_json::Value {
    let map = headers
        .inner()
        .iter()
        .map(|(key, value)| {
            let value = match value {
                AMQPValue::LongString(_) | AMQPValue::ShortString(_) => serde_json::Value::String(
                    headers::get_str(headers, key.as_str()).unwrap_or_default(),
                ),
                other => match headers::get_u32(headers, key.as_str()) {
                    Some(n) => serde_json::Value::from(n),
                    None => serde_json::Value::String(format!("{other:?}")),
                },
            };
            (key.to_string(), value)
        })
        .collect();
    serde_json::Value::Object(map)
}

fn matches(letter: &DeadLetter, filter: &Filter) -> bool {
    let age = letter
        .last_failure
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .and_then(|at| (Utc::now() - at.with_timezone(&Utc)).to_std().ok());
    filter.scope.sees(&letter.marketplace)
        && filter
            .marketplace
            .as_ref()
            .is_none_or(|m| *m == letter.marketplace)
        && filter.kind.as_ref().is_none_or(|k| *k == letter.error_kind)
        && (filter.message_ids.is_empty() || filter.message_ids.contains(&letter.message_id))
        && filter
            .older_than
            .is_none_or(|bound| age.is_some_and(|age| age >= bound))
        && filter
            .newer_than
            .is_none_or(|bound| age.is_none_or(|age| age <= bound))
}

/// A replayed message starts its retries over, its count of attempts kept
/// (the fleet's own `x-attempts`, never the broker's `x-death`, whose count
/// RabbitMQ 3.13 froze): the next failure is one more attempt, and the retry
/// ladder counts from the replay (`x-replayed-at-attempt`). The failure's
/// reason goes; when it first failed stays.
fn start_over(headers: &mut FieldTable) {
    let attempts = headers::get_u32(headers, ATTEMPTS).unwrap_or(0);
    let mut kept = FieldTable::default();
    for (key, value) in headers.inner() {
        let drop = [DEFERRALS, ERROR, ERROR_KIND, LAST_FAILURE, "x-death"].contains(&key.as_str());
        if !drop {
            kept.insert(key.clone(), value.clone());
        }
    }
    headers::set_u32(&mut kept, headers::REPLAYED_AT_ATTEMPT, attempts);
    *headers = kept;
}

/// Parses an age such as `30s`, `10m`, `2h`, `1d`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not an age like 30s, 10m, 2h or 1d"))?;
    let seconds = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(number * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_age("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_age("soon").is_err());
        assert!(parse_age("5w").is_err());
    }

    #[test]
    fn replay_keeps_the_count_and_the_route_and_drops_the_reason() {
        let mut h = FieldTable::default();
        headers::record_failure(
            &mut h,
            "boom",
            "permanent",
            3,
            "p.events",
            "stock.changed.bm",
        );
        headers::set_str(&mut h, headers::TRACEPARENT, "00-abc-def-01");
        start_over(&mut h);
        assert_eq!(headers::get_u32(&h, ATTEMPTS), Some(3));
        assert_eq!(headers::get_u32(&h, headers::REPLAYED_AT_ATTEMPT), Some(3));
        assert_eq!(headers::get_str(&h, ERROR), None);
        assert!(headers::get_str(&h, FIRST_FAILURE).is_some());
        assert_eq!(
            headers::get_str(&h, headers::ORIGINAL_ROUTING_KEY).as_deref(),
            Some("stock.changed.bm")
        );
        assert!(headers::get_str(&h, headers::TRACEPARENT).is_some());
    }
}
