//! WooCommerce's order statuses read as ours (a refund means a return only
//! after completion), and the status a merchant sets for each of ours.

use crate::domain::OrderStatus;

/// Order status → normalised status (docs/marketplaces.md). A refund after
/// completion is a return; before, a cancellation.
pub(crate) fn order_status(status: &str, completed: bool) -> Option<OrderStatus> {
    match status {
        "pending" | "on-hold" => Some(OrderStatus::Pending),
        "processing" => Some(OrderStatus::Accepted),
        "completed" => Some(OrderStatus::Shipped),
        "cancelled" | "failed" => Some(OrderStatus::Cancelled),
        "refunded" if completed => Some(OrderStatus::Returned),
        "refunded" => Some(OrderStatus::Cancelled),
        _ => None,
    }
}

/// The WooCommerce status a merchant sets for a normalised target.
pub(super) fn status_name(target: OrderStatus) -> &'static str {
    match target {
        OrderStatus::Unpaid => "pending",
        OrderStatus::Pending => "on-hold",
        OrderStatus::Accepted => "processing",
        OrderStatus::Shipped => "completed",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Returned => "refunded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        use OrderStatus::*;
        for (status, completed, expected) in [
            ("pending", false, Some(Pending)),
            ("on-hold", false, Some(Pending)),
            ("processing", false, Some(Accepted)),
            ("completed", true, Some(Shipped)),
            ("cancelled", false, Some(Cancelled)),
            ("failed", false, Some(Cancelled)),
            ("refunded", false, Some(Cancelled)),
            ("refunded", true, Some(Returned)),
            ("trash", false, None),
            ("checkout-draft", false, None),
            ("wc-custom-plugin-status", false, None),
        ] {
            assert_eq!(
                order_status(status, completed),
                expected,
                "{status} {completed}"
            );
        }
        for target in OrderStatus::ALL {
            let name = status_name(target);
            assert!(order_status(name, false).is_some(), "{name}");
        }
    }
}
