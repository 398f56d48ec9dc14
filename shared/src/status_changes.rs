//! Order status changes an operator asks for: checked against the
//! marketplace's rules ([`crate::domain::status_change`]) before anything is
//! sent, recorded with the actor in `order_status_changes`, and sent in the
//! same transaction through the outbox as an `update_order_status` command,
//! so the publisher rate-limits, retries and dead-letters it like any order
//! command. The publisher settles the row: done, or failed with the reason.

use crate::bus::Envelope;
use crate::bus::HandlerError;
use crate::bus::outbox::{self, OutboxMessage};
use crate::domain::OrderStatus;
use crate::domain::status_change::{self, Refusal};
use crate::events::{
    CommandItem, CommandTracking, UPDATE_ORDER_STATUS, UpdateOrderStatus, marketplace_command_key,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// What an operator asks for.
pub struct Request<'a> {
    pub marketplace: &'a str,
    pub order_id: &'a str,
    pub target: OrderStatus,
    /// Items to move; empty = every item of the order.
    pub items: &'a [String],
    pub tracking: Option<CommandTracking>,
    pub actor: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no order {order_id:?} on {marketplace:?}")]
    NoOrder {
        marketplace: String,
        order_id: String,
    },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("order {order_id:?} has no item {item:?}")]
    NoItem { order_id: String, item: String },
    #[error("a change of this order to {0} is still pending; wait for it to settle")]
    Pending(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A requested change and where it stands.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct StatusChangeView {
    pub id: i64,
    pub from_status: String,
    pub requested_status: String,
    pub actor: String,
    /// pending (sent or being retried), done or failed.
    pub state: String,
    /// The marketplace's last refusal or failure.
    pub error: Option<String>,
    pub message_id: Uuid,
    pub requested_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

const VIEW_COLUMNS: &str = "c.id, c.from_status, c.requested_status, c.actor, c.state, c.error,
    c.message_id, c.requested_at, c.settled_at";

/// Checks the change, records it and queues its command, all or nothing.
pub async fn request(
    pool: &PgPool,
    request: &Request<'_>,
) -> Result<StatusChangeView, RequestError> {
    let no_order = || RequestError::NoOrder {
        marketplace: request.marketplace.to_owned(),
        order_id: request.order_id.to_owned(),
    };
    let mut tx = pool.begin().await?;
    // The order row is locked so two requests for it are judged one after the other.
    let order: Option<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT m.id, m.kind, o.status FROM orders o JOIN marketplaces m ON m.id = o.marketplace_id
         WHERE m.code = $1 AND o.external_id = $2 FOR UPDATE OF o",
    )
    .bind(request.marketplace)
    .bind(request.order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (marketplace_id, kind, current) = order.ok_or_else(no_order)?;
    let current: Option<OrderStatus> = current.and_then(|status| status.parse().ok());
    let tracked = request
        .tracking
        .as_ref()
        .is_some_and(|t| t.number.as_deref().is_some_and(|n| !n.trim().is_empty()));
    status_change::check(&kind, current, request.target, tracked)?;
    let items: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.external_id, i.sku FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE o.marketplace_id = $1 AND o.external_id = $2 ORDER BY i.id",
    )
    .bind(marketplace_id)
    .bind(request.order_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut named = Vec::new();
    for wanted in request.items {
        let item =
            items
                .iter()
                .find(|(id, _)| id == wanted)
                .ok_or_else(|| RequestError::NoItem {
                    order_id: request.order_id.to_owned(),
                    item: wanted.clone(),
                })?;
        named.push(CommandItem {
            item_id: item.0.clone(),
            sku: item.1.clone(),
        });
    }
    let command = UpdateOrderStatus {
        order_id: request.order_id.to_owned(),
        status: request.target,
        items: named,
        tracking: request.tracking.clone(),
    };
    let envelope = Envelope::new(UPDATE_ORDER_STATUS, request.marketplace, &command);
    let from = current.map_or("unknown", OrderStatus::as_str);
    let recorded = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO order_status_changes AS c
             (marketplace_id, order_external_id, from_status, requested_status, actor, message_id)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {VIEW_COLUMNS}"
    )))
    .bind(marketplace_id)
    .bind(request.order_id)
    .bind(from)
    .bind(request.target.as_str())
    .bind(request.actor)
    .bind(envelope.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            RequestError::Pending(request.target.to_string())
        }
        _ => RequestError::Database(error),
    })?;
    let key = marketplace_command_key(request.marketplace, UPDATE_ORDER_STATUS);
    outbox::enqueue(&mut tx, &[OutboxMessage::command(key, envelope, None)]).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// Records how the publisher's attempt at a command ended: done, failed
/// (a permanent refusal: the message is dead-lettered), or still pending
/// with the transient failure it will be retried after. A command that was
/// not asked for through the API (no row) records nothing.
pub async fn settle(
    pool: &PgPool,
    message_id: Uuid,
    outcome: &Result<(), HandlerError>,
) -> sqlx::Result<()> {
    let (state, error) = match outcome {
        Ok(()) => ("done", None),
        Err(HandlerError::Permanent(reason)) => ("failed", Some(reason.clone())),
        Err(error) => ("pending", Some(format!("will be retried: {error}"))),
    };
    sqlx::query(
        "UPDATE order_status_changes
         SET state = $2, error = $3, settled_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
         WHERE message_id = $1 AND state = 'pending'",
    )
    .bind(message_id)
    .bind(state)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The changes asked for an order, newest first.
pub async fn of_order(
    pool: &PgPool,
    marketplace: &str,
    order_id: &str,
) -> sqlx::Result<Vec<StatusChangeView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VIEW_COLUMNS} FROM order_status_changes c
         JOIN marketplaces m ON m.id = c.marketplace_id
         WHERE m.code = $1 AND c.order_external_id = $2 ORDER BY c.id DESC"
    )))
    .bind(marketplace)
    .bind(order_id)
    .fetch_all(pool)
    .await
}
