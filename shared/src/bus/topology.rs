//! Exchange and queue names and arguments (design §5), all under one prefix.
//!
//! Every consumer queue `Q` is a durable quorum queue with
//! - retry queues `Q.retry.<ms>ms`: quorum queues whose message TTL dead-letters
//!   expired messages back to `Q` only (the broker has no delayed exchange);
//! - a dead-letter queue `Q.dlq`, which also receives messages the broker gives
//!   up on after `x-delivery-limit` redeliveries (a message that crashes its worker).
//!
//! Unroutable messages are kept by the exchanges' alternate exchange in
//! `<prefix>.unroutable` instead of being dropped.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

/// Redeliveries after which the broker dead-letters a message by itself.
const DELIVERY_LIMIT: i64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Events,
    Commands,
}

impl Exchange {
    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Events => "events",
            Exchange::Commands => "commands",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "events" => Some(Exchange::Events),
            "commands" => Some(Exchange::Commands),
            _ => None,
        }
    }
}

/// A consumer queue and what it binds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub bindings: Vec<(Exchange, String)>,
    /// Only one consumer receives at a time, whatever the number of replicas:
    /// the publisher's per-marketplace rate limit then holds across the fleet.
    pub single_active_consumer: bool,
}

impl QueueSpec {
    pub fn locker() -> Self {
        Self::order_events("locker")
    }

    pub fn reducer() -> Self {
        Self::order_events("reducer")
    }

    fn order_events(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            bindings: vec![
                (Exchange::Events, "order.created.*".to_owned()),
                (Exchange::Events, "order.status_changed.*".to_owned()),
            ],
            single_active_consumer: false,
        }
    }

    pub fn poller() -> Self {
        Self {
            name: "poller".to_owned(),
            bindings: vec![(Exchange::Commands, "sync.*.*".to_owned())],
            single_active_consumer: false,
        }
    }

    pub fn publisher(marketplace: &str) -> Self {
        Self {
            name: format!("publisher.{marketplace}"),
            bindings: vec![
                (Exchange::Events, format!("stock.changed.{marketplace}")),
                (Exchange::Commands, format!("marketplace.{marketplace}.*")),
            ],
            single_active_consumer: true,
        }
    }

    /// Every consumer queue of a fleet serving these marketplaces.
    pub fn all<'a>(marketplaces: impl IntoIterator<Item = &'a str>) -> Vec<Self> {
        let mut specs = vec![Self::locker(), Self::reducer(), Self::poller()];
        specs.extend(marketplaces.into_iter().map(Self::publisher));
        specs
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub retry_delays: Vec<Duration>,
}

impl Topology {
    pub fn new(prefix: &str, retry_delays: Vec<Duration>) -> Self {
        assert!(!retry_delays.is_empty(), "at least one retry delay");
        Self {
            prefix: prefix.to_owned(),
            retry_delays,
        }
    }

    pub fn exchange(&self, exchange: Exchange) -> String {
        format!("{}.{}", self.prefix, exchange.as_str())
    }

    pub fn unroutable(&self) -> String {
        format!("{}.unroutable", self.prefix)
    }

    pub fn queue(&self, spec: &QueueSpec) -> String {
        format!("{}.{}", self.prefix, spec.name)
    }

    pub fn dead_letter_queue(&self, spec: &QueueSpec) -> String {
        format!("{}.dlq", self.queue(spec))
    }

    /// The retry queue for a message that has failed `attempts` times.
    pub fn retry_queue(&self, spec: &QueueSpec, attempts: u32) -> (String, Duration) {
        let index = (attempts.max(1) as usize - 1).min(self.retry_delays.len() - 1);
        let delay = self.retry_delays[index];
        (self.retry_queue_name(spec, delay), delay)
    }

    fn retry_queue_name(&self, spec: &QueueSpec, delay: Duration) -> String {
        format!("{}.retry.{}ms", self.queue(spec), delay.as_millis())
    }

    /// Every queue name of a spec: work, retries, dead letters.
    pub fn queue_names(&self, spec: &QueueSpec) -> Vec<String> {
        let mut names = vec![self.queue(spec)];
        names.extend(
            self.retry_delays
                .iter()
                .map(|delay| self.retry_queue_name(spec, *delay)),
        );
        names.push(self.dead_letter_queue(spec));
        names
    }

    /// Declares the exchanges and these consumer queues; idempotent.
    pub async fn declare(&self, channel: &Channel, specs: &[QueueSpec]) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.unroutable().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        declare_queue(channel, &self.unroutable(), quorum()).await?;
        channel
            .queue_bind(
                self.unroutable().into(),
                self.unroutable().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut exchange_args = FieldTable::default();
        exchange_args.insert("alternate-exchange".into(), string(&self.unroutable()));
        for exchange in [Exchange::Events, Exchange::Commands] {
            channel
                .exchange_declare(
                    self.exchange(exchange).into(),
                    ExchangeKind::Topic,
                    durable,
                    exchange_args.clone(),
                )
                .await?;
        }
        for spec in specs {
            self.declare_spec(channel, spec).await?;
        }
        Ok(())
    }

    async fn declare_spec(&self, channel: &Channel, spec: &QueueSpec) -> lapin::Result<()> {
        let queue = self.queue(spec);
        let dlq = self.dead_letter_queue(spec);
        declare_queue(channel, &dlq, quorum()).await?;

        let mut work = dead_lettering_to(&dlq);
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        declare_queue(channel, &queue, work).await?;
        for (exchange, pattern) in &spec.bindings {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange(*exchange).into(),
                    pattern.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }

        for delay in &self.retry_delays {
            let mut retry = dead_lettering_to(&queue);
            retry.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            declare_queue(channel, &self.retry_queue_name(spec, *delay), retry).await?;
        }
        Ok(())
    }
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(name.into(), options, args).await?;
    Ok(())
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args
}

/// A quorum queue whose dead letters go, at least once, straight to `target`.
fn dead_lettering_to(target: &str) -> FieldTable {
    let mut args = quorum();
    args.insert("x-dead-letter-exchange".into(), string(""));
    args.insert("x-dead-letter-routing-key".into(), string(target));
    args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
    args.insert("x-overflow".into(), string("reject-publish"));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_retry_delays_grow_then_repeat() {
        let topology = Topology::new(
            "t1",
            vec![Duration::from_millis(100), Duration::from_secs(2)],
        );
        let spec = QueueSpec::publisher("backmarket");
        assert_eq!(topology.queue(&spec), "t1.publisher.backmarket");
        assert_eq!(
            topology.dead_letter_queue(&spec),
            "t1.publisher.backmarket.dlq"
        );
        assert_eq!(
            topology.retry_queue(&spec, 1).0,
            "t1.publisher.backmarket.retry.100ms"
        );
        assert_eq!(topology.retry_queue(&spec, 2).1, Duration::from_secs(2));
        assert_eq!(topology.retry_queue(&spec, 9).1, Duration::from_secs(2));
        assert_eq!(topology.queue_names(&spec).len(), 4);
    }
}
