//! Exchange and queue names (design §5), all under one prefix, and how many
//! quorum queues a fleet needs. Declaring them: `declare.rs`.
//!
//! Every consumer queue `Q` is a durable quorum queue with a dead-letter queue
//! `Q.dlq`, which also receives messages the broker gives up on after
//! `x-delivery-limit` redeliveries (a message that crashes its worker).
//!
//! Retries share a fixed set of delay queues, one per retry delay for the
//! whole fleet, whatever the number of consumer queues (the broker has no
//! delayed exchange). A message to retry is published to the headers exchange
//! `<prefix>.delay` with the routing key `Q` and the header `retry-delay`; the
//! exchange puts it in the delay queue `<prefix>.retry.<ms>ms`, whose message
//! TTL dead-letters it to the direct exchange `<prefix>.retry` under its
//! routing key `Q`, and `Q` alone is bound there by its own name.
//!
//! Unroutable messages are kept by the exchanges' alternate exchange in
//! `<prefix>.unroutable` instead of being dropped.

use std::time::Duration;

/// Redeliveries after which the broker dead-letters a message by itself.
pub(super) const DELIVERY_LIMIT: i64 = 20;

/// The header the delay exchange routes on (the headers exchange ignores
/// headers whose name starts with `x-`).
pub const RETRY_DELAY: &str = "retry-delay";

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
    /// Bindings an older version declared and this one removes when it
    /// declares the queue (the broker answers an unbind of a binding that
    /// is not there with success, so this is idempotent).
    pub retired_bindings: Vec<(Exchange, String)>,
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
            retired_bindings: Vec::new(),
            single_active_consumer: false,
        }
    }

    pub fn poller() -> Self {
        Self {
            name: "poller".to_owned(),
            bindings: vec![(Exchange::Commands, "sync.*.*".to_owned())],
            retired_bindings: Vec::new(),
            single_active_consumer: false,
        }
    }

    /// A marketplace's stock pushes (`stock.changed.<mp>`). Up to version
    /// 0.1 its order commands came here too; that binding is retired, and
    /// commands still queued here are served all the same.
    pub fn publisher(marketplace: &str) -> Self {
        Self {
            name: format!("publisher.{marketplace}"),
            bindings: vec![(Exchange::Events, format!("stock.changed.{marketplace}"))],
            retired_bindings: vec![(Exchange::Commands, Self::command_pattern(marketplace))],
            single_active_consumer: true,
        }
    }

    /// A marketplace's order commands (`marketplace.<mp>.*`): their own
    /// queue, so an accept never waits behind a batch of stock pushes.
    pub fn publisher_commands(marketplace: &str) -> Self {
        Self {
            name: format!("publisher.{marketplace}.commands"),
            bindings: vec![(Exchange::Commands, Self::command_pattern(marketplace))],
            retired_bindings: Vec::new(),
            single_active_consumer: true,
        }
    }

    fn command_pattern(marketplace: &str) -> String {
        format!("marketplace.{marketplace}.*")
    }

    /// A marketplace's publisher queues, in the order to declare them:
    /// order commands, then stock pushes (whose declaration retires the old
    /// command binding once the commands queue is there to take them).
    pub fn publishers(marketplace: &str) -> [Self; 2] {
        [
            Self::publisher_commands(marketplace),
            Self::publisher(marketplace),
        ]
    }

    /// Every consumer queue of a fleet serving these marketplaces.
    pub fn all<'a>(marketplaces: impl IntoIterator<Item = &'a str>) -> Vec<Self> {
        let mut specs = vec![Self::locker(), Self::reducer(), Self::poller()];
        specs.extend(marketplaces.into_iter().flat_map(Self::publishers));
        specs
    }
}

/// Where a message is published: an exchange and a routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub retry_delays: Vec<Duration>,
}

impl Topology {
    /// This fleet's topology, as its settings name it (prefix, retry delays).
    pub fn of(settings: &crate::config::Settings) -> Self {
        Self::new(&settings.bus_prefix, settings.consumer.retry_delays())
    }

    pub fn new(prefix: &str, retry_delays: Vec<Duration>) -> Self {
        assert!(!retry_delays.is_empty(), "at least one retry delay");
        Self {
            prefix: prefix.to_owned(),
            retry_delays,
        }
    }

    /// Quorum queues of a fleet serving `marketplaces` with `delays` retry
    /// delays: a work and a dead-letter queue per consumer queue (locker,
    /// reducer, poller, two publisher queues per marketplace), one queue per
    /// delay, and the unroutable queue: 2 × (3 + 2M) + D + 1.
    pub fn quorum_queue_count(marketplaces: usize, delays: usize) -> usize {
        2 * (3 + 2 * marketplaces) + delays + 1
    }

    pub fn exchange(&self, exchange: Exchange) -> String {
        format!("{}.{}", self.prefix, exchange.as_str())
    }

    pub fn unroutable(&self) -> String {
        format!("{}.unroutable", self.prefix)
    }

    /// The headers exchange that puts a message in its delay queue.
    pub fn delay_exchange(&self) -> String {
        format!("{}.delay", self.prefix)
    }

    /// The direct exchange expired retries come back through, routed by the
    /// name of the queue they came from.
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    pub fn queue(&self, spec: &QueueSpec) -> String {
        format!("{}.{}", self.prefix, spec.name)
    }

    pub fn dead_letter_queue(&self, spec: &QueueSpec) -> String {
        format!("{}.dlq", self.queue(spec))
    }

    /// The delay queue shared by every consumer queue for `delay`.
    pub fn delay_queue(&self, delay: Duration) -> String {
        format!("{}.retry.{}", self.prefix, delay_label(delay))
    }

    /// Every delay queue of this topology.
    pub fn delay_queues(&self) -> Vec<String> {
        self.retry_delays
            .iter()
            .map(|delay| self.delay_queue(*delay))
            .collect()
    }

    /// The delay before the next attempt of a message that has failed
    /// `attempts` times: the delays grow, then the last repeats.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let index = (attempts.max(1) as usize - 1).min(self.retry_delays.len() - 1);
        self.retry_delays[index]
    }

    /// Where a message of `spec`'s queue waits before coming back to it; the
    /// message must carry the header [`RETRY_DELAY`] = [`delay_label`].
    pub fn retry_route(&self, spec: &QueueSpec) -> Route {
        Route {
            exchange: self.delay_exchange(),
            routing_key: self.queue(spec),
        }
    }

    /// The retry queue each delay had per consumer queue before the delay
    /// queues were shared (`stockfleet queues migrate` empties and deletes them).
    pub fn legacy_retry_queue(&self, spec: &QueueSpec, delay: Duration) -> String {
        format!("{}.retry.{}", self.queue(spec), delay_label(delay))
    }

    /// The queues of a spec: work and dead letters.
    pub fn queue_names(&self, spec: &QueueSpec) -> Vec<String> {
        vec![self.queue(spec), self.dead_letter_queue(spec)]
    }
}

/// `1000ms`: names a delay in queue names and in the [`RETRY_DELAY`] header.
pub fn delay_label(delay: Duration) -> String {
    format!("{}ms", delay.as_millis())
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
            topology.delay_queues(),
            vec!["t1.retry.100ms", "t1.retry.2000ms"]
        );
        assert_eq!(
            topology.retry_route(&spec),
            Route {
                exchange: "t1.delay".into(),
                routing_key: "t1.publisher.backmarket".into()
            }
        );
        assert_eq!(topology.retry_delay(1), Duration::from_millis(100));
        assert_eq!(topology.retry_delay(2), Duration::from_secs(2));
        assert_eq!(topology.retry_delay(9), Duration::from_secs(2));
        assert_eq!(
            topology.legacy_retry_queue(&spec, Duration::from_secs(2)),
            "t1.publisher.backmarket.retry.2000ms"
        );
    }

    #[test]
    fn the_queue_count_grows_by_four_per_marketplace_only() {
        // Three marketplaces, five delays: 24 queues (66 with a retry queue
        // per consumer queue and delay); ten marketplaces: 52 (157 so).
        assert_eq!(Topology::quorum_queue_count(3, 5), 24);
        assert_eq!(Topology::quorum_queue_count(10, 5), 52);
        let specs = QueueSpec::all(["a", "b", "c"]);
        assert_eq!(2 * specs.len() + 5 + 1, 24);
    }

    #[test]
    fn commands_and_stock_pushes_have_their_own_queues() {
        let topology = Topology::new("t1", vec![Duration::from_secs(1)]);
        let [commands, stock] = QueueSpec::publishers("backmarket");
        assert_eq!(topology.queue(&stock), "t1.publisher.backmarket");
        assert_eq!(
            topology.queue(&commands),
            "t1.publisher.backmarket.commands"
        );
        let commanding = (Exchange::Commands, "marketplace.backmarket.*".to_owned());
        assert_eq!(commands.bindings, vec![commanding.clone()]);
        assert!(!stock.bindings.contains(&commanding));
        assert_eq!(stock.retired_bindings, vec![commanding]);
        assert!(stock.single_active_consumer && commands.single_active_consumer);
    }
}
