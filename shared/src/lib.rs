//! stockfleet: keeps a seller's stock right on every marketplace.
//!
//! - [`domain`]: pure rules (ledger, buffer, statuses), no I/O.
//! - [`ledger`]: the locker and reducer over PostgreSQL.
//! - [`bus`]: RabbitMQ topology, consumer loop, retries, dead letters, outbox.
//! - [`marketplace`]: the marketplaces table and one HTTP adapter per marketplace.
//! - [`api`]: the REST API, dashboard and webhook receiver.
//! - [`worker`], [`supervise`], [`health`], [`telemetry`], [`shutdown`]: what every binary runs on.

pub mod admin;
pub mod api;
mod buffer_sql;
pub mod bus;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod health;
pub mod ledger;
pub mod marketplace;
pub mod metrics_catalog;
mod order_commands;
pub mod outage;
pub mod poller;
pub mod pools;
pub mod publisher;
pub mod reconcile;
pub mod retry;
pub mod shutdown;
pub mod sold_out;
pub mod status_changes;
pub mod supervise;
pub mod telemetry;
pub mod worker;
