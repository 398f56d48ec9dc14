//! What a worker plugs into the consumer loop: the [`Handler`] of a batch
//! of [`Incoming`] messages, and how each message fails ([`HandlerError`]).

use super::envelope::Envelope;
use crate::marketplace::directory::{MarketplaceDirectory, MarketplaceRow};
use std::future::Future;
use std::sync::Arc;

/// A decoded message handed to a handler.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub envelope: Envelope,
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying later: a dependency is down or busy.
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time: bad input, unknown SKU, a 4xx.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: the message must wait for something that is on its way
    /// (the publisher holding a stock increase until a fresh orders poll). It
    /// goes through the shortest retry queue without counting an attempt, so
    /// it never reaches the dead-letter queue however late that thing is.
    #[error("{0}")]
    Deferred(String),
    /// The transaction this message shared with others failed for a reason
    /// that may be any one message's content (a value the database refused).
    /// The consumer handles the batch again in smaller parts (see
    /// [`isolate`](super::isolate)); a message that fails alone gets the
    /// reason as its permanent error. Never settled as such.
    #[error("{0}")]
    Batch(String),
}

impl HandlerError {
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::Transient(_) => "transient",
            HandlerError::Permanent(_) => "permanent",
            HandlerError::Deferred(_) => "deferred",
            HandlerError::Batch(_) => "batch",
        }
    }

    /// The error of a transaction shared by a batch: a lost connection or a
    /// busy database is every message's transient error (retry them all);
    /// anything else may be one message's content, so the batch is split.
    pub fn of_batch(error: sqlx::Error) -> Self {
        if crate::db::is_transient(&error) {
            HandlerError::Transient(format!("database: {error}"))
        } else {
            HandlerError::Batch(format!("database: {error}"))
        }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_transient(&error) {
            HandlerError::Transient(format!("database: {error}"))
        } else {
            HandlerError::Permanent(format!("database: {error}"))
        }
    }
}

/// The marketplace a message names; an unknown code fails for good (a dead
/// letter naming it), for no retry will make it known.
pub async fn named_marketplace(
    directory: &MarketplaceDirectory,
    code: &str,
) -> Result<Arc<MarketplaceRow>, HandlerError> {
    directory
        .get(code)
        .await?
        .ok_or_else(|| HandlerError::Permanent(format!("unknown marketplace {code:?}")))
}

/// Handles a batch of messages; returns one result per message, in order.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Vec<Result<(), HandlerError>>> + Send;
}
