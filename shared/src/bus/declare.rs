//! Declaring the topology of `topology.rs`: exchanges, queues with their
//! arguments, bindings. Idempotent; a queue that already exists with other
//! arguments (an older version's) is refused with what to do about it.

use super::Exchange;
use super::topology::{DELIVERY_LIMIT, QueueSpec, RETRY_DELAY, Topology, delay_label};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use std::future::Future;
use std::time::Duration;

/// `call`, or an error saying the broker did not answer within `timeout`.
pub(super) async fn within<T, E>(
    timeout: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    anyhow::Error: From<E>,
{
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!(
            "RabbitMQ did not answer within {timeout:?} (AMQP_TIMEOUT_SECONDS); \
             is the broker overloaded or is AMQP_URL pointing at something else?"
        ),
    }
}

impl Topology {
    /// Declares the exchanges, the shared queues and these consumer queues;
    /// each step (the shared part, a consumer queue) within `step`.
    pub async fn declare(
        &self,
        channel: &Channel,
        specs: &[QueueSpec],
        step: Duration,
    ) -> anyhow::Result<()> {
        within(step, self.declare_shared(channel)).await?;
        for spec in specs {
            within(step, self.declare_spec(channel, spec)).await?;
        }
        Ok(())
    }

    /// Exchanges, the unroutable queue and the delay queues.
    async fn declare_shared(&self, channel: &Channel) -> anyhow::Result<()> {
        exchange(
            channel,
            &self.unroutable(),
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        declare_queue(channel, &self.unroutable(), quorum()).await?;
        bind(
            channel,
            &self.unroutable(),
            &self.unroutable(),
            "",
            FieldTable::default(),
        )
        .await?;
        let mut keeps_unroutable = FieldTable::default();
        keeps_unroutable.insert("alternate-exchange".into(), string(&self.unroutable()));
        for name in [
            self.exchange(Exchange::Events),
            self.exchange(Exchange::Commands),
        ] {
            exchange(
                channel,
                &name,
                ExchangeKind::Topic,
                keeps_unroutable.clone(),
            )
            .await?;
        }
        let delay = self.delay_exchange();
        exchange(
            channel,
            &delay,
            ExchangeKind::Headers,
            keeps_unroutable.clone(),
        )
        .await?;
        let retry = self.retry_exchange();
        exchange(channel, &retry, ExchangeKind::Direct, keeps_unroutable).await?;
        for wait in &self.retry_delays {
            // No dead-letter routing key: an expired message keeps its own,
            // the name of the queue it came from.
            let mut args = at_least_once_dead_lettering(&retry, None);
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(wait.as_millis() as i64),
            );
            let queue = self.delay_queue(*wait);
            declare_queue(channel, &queue, args).await?;
            let mut matches = FieldTable::default();
            matches.insert("x-match".into(), string("all"));
            matches.insert(RETRY_DELAY.into(), string(&delay_label(*wait)));
            bind(channel, &queue, &delay, "", matches).await?;
        }
        Ok(())
    }

    async fn declare_spec(&self, channel: &Channel, spec: &QueueSpec) -> anyhow::Result<()> {
        let queue = self.queue(spec);
        let dlq = self.dead_letter_queue(spec);
        declare_queue(channel, &dlq, quorum()).await?;
        declare_queue(channel, &queue, self.work_queue_arguments(spec)).await?;
        for (exchange, pattern) in &spec.bindings {
            let exchange = self.exchange(*exchange);
            bind(channel, &queue, &exchange, pattern, FieldTable::default()).await?;
        }
        for (exchange, pattern) in &spec.retired_bindings {
            let exchange = self.exchange(*exchange);
            channel
                .queue_unbind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    pattern.as_str().into(),
                    FieldTable::default(),
                )
                .await?;
        }
        bind(
            channel,
            &queue,
            &self.retry_exchange(),
            &queue,
            FieldTable::default(),
        )
        .await
    }

    /// The arguments of `spec`'s work queue.
    pub fn work_queue_arguments(&self, spec: &QueueSpec) -> FieldTable {
        let mut args = at_least_once_dead_lettering("", Some(&self.dead_letter_queue(spec)));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        if spec.single_active_consumer {
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        args
    }
}

async fn exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, durable, args)
        .await?;
    Ok(())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    args: FieldTable,
) -> anyhow::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        )
        .await?;
    Ok(())
}

/// Declares a durable queue; one that exists with other arguments is refused
/// with the way out (the broker answers PRECONDITION_FAILED and closes the channel).
pub(super) async fn declare_queue(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> anyhow::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    match channel.queue_declare(name.into(), options, args).await {
        Ok(_) => Ok(()),
        Err(error) if is_precondition_failed(&error) => anyhow::bail!(
            "queue {name} exists with other arguments than this version declares ({error}); \
             stop the workers that consume it, then run `stockfleet queues migrate` \
             (`--dry-run` first) to re-create it with its messages kept"
        ),
        Err(error) => Err(error.into()),
    }
}

pub(super) fn is_precondition_failed(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if e.kind() == &AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    )
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

pub(super) fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args
}

/// A quorum queue whose dead letters go, at least once, to `exchange` (under
/// `routing_key`, else their own routing key).
fn at_least_once_dead_lettering(exchange: &str, routing_key: Option<&str>) -> FieldTable {
    let mut args = quorum();
    args.insert("x-dead-letter-exchange".into(), string(exchange));
    if let Some(key) = routing_key {
        args.insert("x-dead-letter-routing-key".into(), string(key));
    }
    args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
    args.insert("x-overflow".into(), string("reject-publish"));
    args
}
