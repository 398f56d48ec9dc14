//! A test's side of the bus: publishing as the poller's relay or a traced
//! sender would, observer queues that collect what is routed to them, and
//! reading queues (their messages, depth and consumers).

use crate::TestEnv;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use std::time::Duration;
use stockfleet::bus::headers;
use stockfleet::bus::{Envelope, Exchange};

impl TestEnv {
    /// Publishes envelopes on the events exchange, as the poller's relay would.
    pub async fn publish(&self, envelopes: &[Envelope]) {
        for envelope in envelopes {
            self.publish_raw(&envelope.event_routing_key(), envelope.to_bytes())
                .await;
        }
    }

    pub async fn publish_raw(&self, routing_key: &str, body: Vec<u8>) {
        self.publish_with_headers(routing_key, body, FieldTable::default())
            .await;
    }

    /// Publishes an envelope as a traced sender does: `traceparent` names its span.
    pub async fn publish_traced(&self, envelope: &Envelope, traceparent: &str) {
        let mut headers = FieldTable::default();
        headers::set_str(&mut headers, headers::TRACEPARENT, traceparent);
        self.publish_with_headers(&envelope.event_routing_key(), envelope.to_bytes(), headers)
            .await;
    }

    async fn publish_with_headers(&self, routing_key: &str, body: Vec<u8>, headers: FieldTable) {
        self.channel
            .basic_publish(
                self.bus.topology.exchange(Exchange::Events).into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    /// A queue bound to the events exchange that collects what matches `pattern`.
    pub async fn observe(&self, pattern: &str) -> Observer {
        self.observe_on(Exchange::Events, pattern).await
    }

    pub async fn observe_on(&self, exchange: Exchange, pattern: &str) -> Observer {
        let name = format!("{}.observe.{}", self.name, uuid::Uuid::now_v7().simple());
        let channel = self.bus.channel().await.expect("channel");
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("observer queue");
        channel
            .queue_bind(
                name.as_str().into(),
                self.bus.topology.exchange(exchange).into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind observer");
        Observer { channel, name }
    }

    /// Takes every message in a queue: (headers, body).
    pub async fn drain(&self, queue: &str) -> Vec<(FieldTable, Vec<u8>)> {
        let mut messages = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            let headers = message
                .delivery
                .properties
                .headers()
                .clone()
                .unwrap_or_default();
            messages.push((headers, message.delivery.data));
        }
        messages
    }

    /// Ready messages in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        passive_declare(&self.channel, queue).await.message_count()
    }

    pub async fn consumers(&self, queue: &str) -> u32 {
        passive_declare(&self.channel, queue).await.consumer_count()
    }
}

/// Collects messages routed to it.
pub struct Observer {
    channel: Channel,
    name: String,
}

impl Observer {
    pub fn queue(&self) -> &str {
        &self.name
    }

    pub async fn count(&self) -> u32 {
        passive_declare(&self.channel, &self.name)
            .await
            .message_count()
    }

    /// Every envelope received so far.
    pub async fn take(&self) -> Vec<Envelope> {
        let expected = self.count().await;
        let mut consumer = self
            .channel
            .basic_consume(
                self.name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("observer consume");
        let mut envelopes = Vec::new();
        while envelopes.len() < expected as usize {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("observer delivery")
                .expect("observer stream")
                .expect("delivery");
            envelopes.push(Envelope::decode(&delivery.data).expect("envelope"));
        }
        envelopes
    }
}

pub fn header(headers: &FieldTable, key: &str) -> Option<String> {
    headers::get_str(headers, key)
}

/// A queue's counts, as the broker reports them to a passive declare.
async fn passive_declare(channel: &Channel, queue: &str) -> lapin::Queue {
    stockfleet::bus::passive_declare(channel, queue)
        .await
        .expect("passive declare")
}
