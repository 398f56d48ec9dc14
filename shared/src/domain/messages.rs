//! The envelope types this build reads and the routing keys that carry them:
//! an envelope whose `type` is unknown or is not the one its routing key
//! names is refused (a permanent dead letter), never applied.

use super::input::Invalid;

pub const ORDER_CREATED: &str = "order.created";
pub const ORDER_STATUS_CHANGED: &str = "order.status_changed";
pub const STOCK_CHANGED: &str = "stock.changed";
/// The envelope type of a `sync.<mp>.<type>` command.
pub const SYNC_REQUEST: &str = "sync.request";
pub const ACCEPT_ORDERLINE: &str = "accept_orderline";
pub const UPDATE_ORDER_STATUS: &str = "update_order_status";

/// Events, routed `<type>.<marketplace>` on the events exchange.
const EVENTS: [&str; 3] = [ORDER_CREATED, ORDER_STATUS_CHANGED, STOCK_CHANGED];
/// Commands to a publisher, routed `marketplace.<mp>.<type>`.
const MARKETPLACE_COMMANDS: [&str; 2] = [ACCEPT_ORDERLINE, UPDATE_ORDER_STATUS];

/// Every envelope type this build reads.
pub fn is_known(kind: &str) -> bool {
    EVENTS.contains(&kind) || MARKETPLACE_COMMANDS.contains(&kind) || kind == SYNC_REQUEST
}

/// The envelope type and marketplace a message route names; `None` for a key
/// that is no message route (a queue name: retries and replays come through
/// the default exchange).
pub fn route(routing_key: &str) -> Option<(&str, &str)> {
    for event in EVENTS {
        if let Some(marketplace) = routing_key
            .strip_prefix(event)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            return Some((event, marketplace));
        }
    }
    if let Some((marketplace, _sync_type)) = routing_key
        .strip_prefix("sync.")
        .and_then(|rest| rest.split_once('.'))
    {
        return Some((SYNC_REQUEST, marketplace));
    }
    routing_key
        .strip_prefix("marketplace.")
        .and_then(|rest| rest.split_once('.'))
        .map(|(marketplace, command)| (command, marketplace))
}

/// Checks an envelope's `type` and `marketplace` against the key it was routed by.
pub fn check_route(kind: &str, marketplace: &str, routing_key: &str) -> Result<(), Invalid> {
    if !is_known(kind) {
        return Err(Invalid::new(
            "type",
            format!("unknown envelope type {kind:?}"),
        ));
    }
    if let Some((routed_kind, routed_marketplace)) = route(routing_key) {
        if routed_kind != kind {
            return Err(Invalid::new(
                "type",
                format!("type {kind:?} does not match routing key {routing_key:?}"),
            ));
        }
        if routed_marketplace != marketplace {
            return Err(Invalid::new(
                "marketplace",
                format!("marketplace {marketplace:?} does not match routing key {routing_key:?}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_must_be_known_and_match_their_route() {
        assert!(check_route(ORDER_CREATED, "backmarket", "order.created.backmarket").is_ok());
        assert!(check_route(SYNC_REQUEST, "refurbed", "sync.refurbed.new").is_ok());
        assert!(check_route(ACCEPT_ORDERLINE, "bm", "marketplace.bm.accept_orderline").is_ok());
        // Retries come back through the default exchange, named by queue.
        assert!(check_route(STOCK_CHANGED, "bm", "sft_x.publisher.bm").is_ok());

        let exploded = check_route("order.exploded", "backmarket", "order.created.backmarket");
        assert_eq!(exploded.unwrap_err().field, "type");
        let swapped = check_route(
            ORDER_STATUS_CHANGED,
            "backmarket",
            "order.created.backmarket",
        );
        assert!(swapped.unwrap_err().reason.contains("does not match"));
        let elsewhere = check_route(ORDER_CREATED, "refurbed", "order.created.backmarket");
        assert_eq!(elsewhere.unwrap_err().field, "marketplace");
        assert!(check_route(SYNC_REQUEST, "bm", "marketplace.bm.accept_orderline").is_err());
    }
}
