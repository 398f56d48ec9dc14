//! Every metric family the fleet exports, with its `# HELP` text, in one
//! place: `promtool check metrics` refuses families without one, and an
//! operator reads what a number means here rather than in the code.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Registers the descriptions with the installed recorder.
pub fn describe() {
    describe_counter!(
        "stockfleet_messages_handled_total",
        "Messages a worker handled successfully, by queue."
    );
    describe_counter!(
        "stockfleet_messages_failed_total",
        "Messages whose handling failed, by queue and kind (transient: retried later; permanent: dead-lettered)."
    );
    describe_counter!(
        "stockfleet_messages_deferred_total",
        "Messages held back on purpose (e.g. a stock increase waiting for a fresh orders poll), by queue; not failures."
    );
    describe_histogram!(
        "stockfleet_handler_seconds",
        Unit::Seconds,
        "Time to handle and settle one batch of messages, by queue."
    );
    describe_histogram!(
        "stockfleet_stage_seconds",
        Unit::Seconds,
        "Time of one stage of a batch or relay round (settle.decode, ledger.lock_rows, outbox.publish, …), by stage: where a batch's time goes."
    );
    describe_counter!(
        "stockfleet_outbox_relayed_total",
        "Outbox rows published to the broker by the relay."
    );
    describe_gauge!(
        "stockfleet_outbox_backlog",
        "Outbox rows waiting to be published."
    );
    describe_gauge!(
        "stockfleet_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest outbox row waiting to be published."
    );
    describe_counter!(
        "stockfleet_http_requests_total",
        "API requests answered, by route template, method and status."
    );
    describe_histogram!(
        "stockfleet_http_request_seconds",
        Unit::Seconds,
        "Time to answer an API request, by route template."
    );
    describe_counter!(
        "stockfleet_sold_out_confirmations_total",
        "Listings pushed to 0 read back by the publisher (a reconciliation of the row), to send the 0 again where it did not land."
    );
    describe_counter!(
        "stockfleet_webhooks_received_total",
        "WooCommerce webhooks stored, by marketplace and topic."
    );
    describe_counter!(
        "stockfleet_webhooks_rejected_total",
        "WooCommerce webhooks refused, by marketplace, reason (signature, body, field) and the field refused (empty for signature and body)."
    );
    describe_gauge!(
        "stockfleet_marketplace_paused",
        "1 while a marketplace is paused (outage mode: its publisher queues wait, no attempts spent), else 0."
    );
    describe_counter!(
        "stockfleet_outage_probes_total",
        "Probes of a paused marketplace by the publisher, by marketplace and outcome; an answer resumes it."
    );
    describe_counter!(
        "stockfleet_marketplace_calls_total",
        "Calls to a marketplace's API by the publisher, by marketplace, call and outcome."
    );
    describe_counter!(
        "stockfleet_push_skipped_total",
        "Stock pushes not sent, by marketplace and reason (unknown_stock, unchanged)."
    );
    describe_counter!(
        "stockfleet_push_permits_unused_total",
        "Listing permits an increase or reconciliation took before its row's lock and did not spend (the row, read again under the lock, needed fewer calls or ran out of patience), by marketplace."
    );
    describe_gauge!(
        "stockfleet_push_rows_waiting_for_permits",
        "Stock rows (increases, reconciliation reads) waiting for low-priority listing permits in this process, by marketplace: the work queued behind the marketplace's request budget."
    );
    describe_counter!(
        "stockfleet_rate_limited_total",
        "429 answers from a marketplace (its endpoint class is blocked fleet-wide for the Retry-After), by marketplace."
    );
    describe_histogram!(
        "stockfleet_rate_limit_wait_seconds",
        Unit::Seconds,
        "Time a marketplace request waited for its permit, by marketplace and what paces it (orders, listings, quantity_updates)."
    );
    describe_gauge!(
        "stockfleet_pool_oversold_units",
        "Units locked by orders beyond what the shared pools have on hand (as of the last validate)."
    );
    describe_histogram!(
        "stockfleet_pool_propagation_seconds",
        Unit::Seconds,
        "Pooled stock: time from an order seen on one marketplace (from) to another marketplace of its pool (to) accepting the quantity that follows; the window in which both may sell the same unit."
    );
    describe_counter!(
        "stockfleet_reconciliation_rows_total",
        "Stock rows looked at by the reconciliation, by marketplace and outcome."
    );
    describe_counter!(
        "stockfleet_sync_runs_total",
        "Order and stock sync runs, by marketplace, type and outcome."
    );
    describe_counter!(
        "stockfleet_marketplace_requests_total",
        "Permits taken from the fleet's request budget, by marketplace, endpoint class (orders, listings) and caller (poller, publisher, cli)."
    );
    describe_gauge!(
        "stockfleet_oversold_units",
        "Units locked beyond what was listed (rows where locked > listed), by marketplace."
    );
    describe_counter!(
        "stockfleet_order_commands_total",
        "Order commands settled, by marketplace, command and outcome (applied, already_done, moot, refused)."
    );
    describe_counter!(
        "stockfleet_task_failures_total",
        "Background tasks that failed and stopped their process, by task."
    );
    describe_counter!(
        "stockfleet_broker_connection_lost_total",
        "Times the RabbitMQ connection was lost (consumers stop and reconnect)."
    );
    describe_counter!(
        "stockfleet_broker_reconnects_total",
        "Times the RabbitMQ connection was re-established after a loss."
    );
    describe_counter!(
        "stockfleet_consumer_restarts_total",
        "Consumer loops started again after their channel or connection was lost, by queue."
    );
    describe_counter!(
        "stockfleet_outbox_relay_reconnects_total",
        "Times the outbox relay rebuilt its database listener or broker publisher after an error."
    );
}

/// Every family named in [`describe`], for tests that check the exports.
#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(std::fs::read_to_string(&path).expect("source file"));
            }
        }
    }

    #[test]
    fn every_metric_in_the_code_is_described() {
        let catalog = include_str!("metrics_catalog.rs");
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut missing = Vec::new();
        for file in &files {
            // The name right after `counter!(`, `gauge!(` or `histogram!(`,
            // on the same line or the next.
            for (at, _) in file.match_indices("!(") {
                let rest = file[at + 2..].trim_start();
                let Some(quoted) = rest.strip_prefix('"') else {
                    continue;
                };
                let name = quoted.split('"').next().unwrap_or_default();
                if name.starts_with("stockfleet_") && !catalog.contains(&format!("\"{name}\"")) {
                    missing.push(name.to_owned());
                }
            }
        }
        assert!(
            missing.is_empty(),
            "describe these in metrics_catalog.rs: {missing:?}"
        );
    }
}
