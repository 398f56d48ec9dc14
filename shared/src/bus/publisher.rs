//! Persistent messages published with confirms: a publish returns only once
//! the broker has taken responsibility for every message.

use super::Route;
use anyhow::bail;
use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: String,
    pub headers: FieldTable,
    pub body: Vec<u8>,
}

impl Outgoing {
    /// A copy of `delivery` (its id and body) with `headers`, for `route`.
    pub fn copy_of(delivery: &Delivery, headers: FieldTable, route: &Route) -> Self {
        Self {
            exchange: route.exchange.clone(),
            routing_key: route.routing_key.clone(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            headers,
            body: delivery.data.clone(),
        }
    }
}

pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn new(bus: &super::Bus) -> lapin::Result<Self> {
        Self::on(bus.channel().await?).await
    }

    /// Puts an existing channel in confirm mode and publishes on it.
    pub async fn on(channel: Channel) -> lapin::Result<Self> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Closes the channel and waits for the broker's answer: a channel merely
    /// dropped closes in the background and races the connection's close
    /// (lapin then logs a spurious "invalid channel state" error).
    pub async fn close(self) {
        if let Err(error) = self.channel.close(200, "done".into()).await {
            tracing::debug!(%error, "closing a publisher channel");
        }
    }

    /// Publishes every message, then waits for all their confirms. Every
    /// publish is handed to the connection before any is awaited (polled in
    /// order, so they go out in order): the frames leave together rather
    /// than one write of the connection's loop per message.
    pub async fn publish_all(&self, messages: Vec<Outgoing>) -> anyhow::Result<()> {
        let publishes = messages.into_iter().map(|message| async move {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.message_id.into())
                .with_headers(message.headers);
            self.channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    BasicPublishOptions::default(),
                    &message.body,
                    properties,
                )
                .await
        });
        let confirms = futures::future::try_join_all(publishes).await?;
        for confirm in futures::future::join_all(confirms).await {
            if !confirm?.is_ack() {
                bail!("the broker refused a message (nack); it will be published again");
            }
        }
        Ok(())
    }
}
