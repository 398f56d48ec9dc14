//! The REST API, the dashboard and the WooCommerce webhook receiver against
//! real PostgreSQL and RabbitMQ (and the simulator for webhooks).

mod dashboard;
mod marketplaces;
mod sync;
mod tokens;
mod webhooks;
