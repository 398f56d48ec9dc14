//! stockfleet-api: the REST API, the dashboard and the WooCommerce webhook
//! receiver (see `stockfleet::api`).

use std::net::SocketAddr;
use stockfleet::api::{self, Options};

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("api", 9105, |worker| async move {
        let addr: SocketAddr = match std::env::var("API_ADDR") {
            Ok(text) => text.parse().map_err(|_| {
                anyhow::anyhow!("API_ADDR must be an address such as 0.0.0.0:8080, not {text:?}")
            })?,
            Err(_) => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let options =
            Options {
                management_url: Some(std::env::var("RABBITMQ_MANAGEMENT_URL").unwrap_or_else(
                    |_| stockfleet::admin::queues::DEFAULT_MANAGEMENT_URL.to_owned(),
                )),
                ..Options::default()
            };
        api::run(worker, addr, options).await
    })
}
