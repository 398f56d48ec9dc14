//! Order commands (accept a line, move items to a status) made idempotent
//! against the marketplace's own state. The write goes out as is: the common
//! path costs one request. Only when the marketplace refuses it as an illegal
//! transition (400) does the publisher read the order and ask
//! [`crate::domain::order_commands`] what the refusal means: already done
//! (success), moot because the order ended another way (success, recorded in
//! `moot_order_commands`), or a refusal an operator must look at (dead letter).

use crate::domain::OrderStatus;
use crate::domain::order_commands::{self, Outcome};
use crate::marketplace::{MarketplaceError, MarketplaceOrder};
use sqlx::PgPool;
use uuid::Uuid;

/// One command to a marketplace, as far as judging a refusal needs it.
pub(crate) struct OrderCommand<'a> {
    pub kind: &'a str,
    pub order_id: &'a str,
    /// The items it names; empty = every item of the order.
    pub items: Vec<&'a str>,
    pub requested: OrderStatus,
}

/// An item the command could no longer apply to, and the status it had.
pub(crate) struct MootItem {
    pub item_id: String,
    pub raw_status: String,
}

/// What the order's current state says about a refused command.
pub(crate) struct Reading {
    pub outcome: Outcome,
    /// The items' raw statuses, for the log and the dead letter's reason.
    pub found: String,
    pub moot: Vec<MootItem>,
}

/// Whether a failed write is the marketplace refusing the transition (all
/// three answer an illegal one with 400), which the order's state may explain.
pub(crate) fn is_refused_transition(error: &MarketplaceError) -> bool {
    matches!(
        error,
        MarketplaceError::Permanent {
            status: Some(400),
            ..
        }
    )
}

impl OrderCommand<'_> {
    /// Judges the refusal from the order as the marketplace shows it now. An
    /// item the command names that the order lacks keeps the refusal.
    pub(crate) fn read(&self, order: &MarketplaceOrder) -> Reading {
        let items: Vec<_> = if self.items.is_empty() {
            order.items.iter().map(Some).collect()
        } else {
            self.items
                .iter()
                .map(|id| order.items.iter().find(|item| item.external_id == *id))
                .collect()
        };
        let mut outcomes = Vec::new();
        let mut found = Vec::new();
        let mut moot = Vec::new();
        for item in items {
            let Some(item) = item else {
                outcomes.push(Outcome::Refused);
                continue;
            };
            let outcome = order_commands::after_refusal(self.requested, item.status);
            found.push(format!("item {} is {}", item.external_id, item.raw_status));
            if outcome == Outcome::Moot {
                moot.push(MootItem {
                    item_id: item.external_id.clone(),
                    raw_status: item.raw_status.clone(),
                });
            }
            outcomes.push(outcome);
        }
        Reading {
            outcome: order_commands::combine(outcomes),
            found: found.join(", "),
            moot,
        }
    }

    /// Records the items the command could no longer apply to; a redelivery
    /// of the same message records nothing new.
    pub(crate) async fn record_moot(
        &self,
        pool: &PgPool,
        marketplace_id: i32,
        message_id: Uuid,
        reading: &Reading,
    ) -> sqlx::Result<()> {
        let items: Vec<&str> = reading.moot.iter().map(|m| m.item_id.as_str()).collect();
        let statuses: Vec<&str> = reading.moot.iter().map(|m| m.raw_status.as_str()).collect();
        let reason = format!(
            "{} to {} refused; the order had ended: {}",
            self.kind, self.requested, reading.found
        );
        sqlx::query(
            "INSERT INTO moot_order_commands
                 (marketplace_id, order_external_id, item_external_id, command,
                  requested_status, found_status, message_id, reason)
             SELECT $1, $2, k.item, $3, $4, k.status, $5, $6
             FROM unnest($7::text[], $8::text[]) AS k(item, status)
             ON CONFLICT (message_id, item_external_id) DO NOTHING",
        )
        .bind(marketplace_id)
        .bind(self.order_id)
        .bind(self.kind)
        .bind(self.requested.as_str())
        .bind(message_id)
        .bind(&reason)
        .bind(&items)
        .bind(&statuses)
        .execute(pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marketplace::MarketplaceOrderItem;

    fn order(items: &[(&str, OrderStatus, &str)]) -> MarketplaceOrder {
        MarketplaceOrder {
            external_id: "9".into(),
            status: None,
            raw_status: String::new(),
            created_at: None,
            modified_at: None,
            delivery_note_url: None,
            label_url: None,
            items: items
                .iter()
                .map(|(id, status, raw)| MarketplaceOrderItem {
                    external_id: (*id).into(),
                    sku: "A".into(),
                    quantity: 1,
                    status: Some(*status),
                    raw_status: (*raw).into(),
                    needs_acceptance: false,
                })
                .collect(),
            raw: serde_json::Value::Null,
        }
    }

    fn command(items: Vec<&str>, requested: OrderStatus) -> OrderCommand<'_> {
        OrderCommand {
            kind: "accept_orderline",
            order_id: "9",
            items,
            requested,
        }
    }

    #[test]
    fn a_named_item_decides_and_the_others_are_ignored() {
        let order = order(&[
            ("1", OrderStatus::Shipped, "3"),
            ("2", OrderStatus::Cancelled, "4"),
        ]);
        let done = command(vec!["1"], OrderStatus::Accepted).read(&order);
        assert_eq!(done.outcome, Outcome::AlreadyDone);
        assert!(done.moot.is_empty());
        let moot = command(vec!["2"], OrderStatus::Accepted).read(&order);
        assert_eq!(moot.outcome, Outcome::Moot);
        assert_eq!(moot.moot[0].item_id, "2");
        assert_eq!(moot.moot[0].raw_status, "4");
        assert_eq!(moot.found, "item 2 is 4");
    }

    #[test]
    fn an_item_missing_from_the_order_keeps_the_refusal() {
        let order = order(&[("1", OrderStatus::Accepted, "2")]);
        let reading = command(vec!["1", "7"], OrderStatus::Accepted).read(&order);
        assert_eq!(reading.outcome, Outcome::Refused);
    }

    #[test]
    fn a_whole_order_command_reads_every_item() {
        let order = order(&[
            ("1", OrderStatus::Shipped, "3"),
            ("2", OrderStatus::Cancelled, "4"),
        ]);
        let reading = command(vec![], OrderStatus::Shipped).read(&order);
        assert_eq!(reading.outcome, Outcome::Moot);
        assert_eq!(reading.found, "item 1 is 3, item 2 is 4");
        let pending = self::order(&[("1", OrderStatus::Pending, "1")]);
        let refused = command(vec![], OrderStatus::Shipped).read(&pending);
        assert_eq!(refused.outcome, Outcome::Refused);
    }

    #[test]
    fn only_a_400_is_read_as_a_refused_transition() {
        let refused = MarketplaceError::Permanent {
            status: Some(400),
            message: "item 2409 cannot go from 2 to 2".into(),
        };
        assert!(is_refused_transition(&refused));
        let missing = MarketplaceError::Permanent {
            status: Some(404),
            message: "order item not found".into(),
        };
        assert!(!is_refused_transition(&missing));
        let down = MarketplaceError::Transient {
            message: "503".into(),
        };
        assert!(!is_refused_transition(&down));
    }
}
