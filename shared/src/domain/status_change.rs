//! Which status changes an operator may ask a marketplace for, decided
//! before anything is sent (an illegal one answers 409).
//!
//! Every marketplace walks an order forward: accepted, shipped, then maybe
//! returned; cancelled ends it before shipping. Back Market and Refurbed
//! take those steps one at a time and only for paid orders (an unpaid line
//! cannot be accepted). WooCommerce's statuses are the shop owner's own, so
//! a WooCommerce order may skip ahead (an unpaid order marked processing,
//! a pending one completed at once). Nothing moves backwards or leaves an
//! end; a unit with the buyer is returned, not cancelled.

use super::OrderStatus;

/// The statuses an operator may ask for.
pub const TARGETS: [OrderStatus; 4] = [
    OrderStatus::Accepted,
    OrderStatus::Shipped,
    OrderStatus::Cancelled,
    OrderStatus::Returned,
];

/// Why a change may not be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The move is not one this marketplace makes from where the order is (409).
    #[error("{0}")]
    Illegal(String),
    /// The move needs a field the request lacks (422, naming it).
    #[error("{reason}")]
    Missing { field: &'static str, reason: String },
}

/// Whether the marketplace (by its adapter kind) lets an order skip steps.
fn skips_steps(kind: &str) -> bool {
    kind == "woocommerce"
}

/// Checks asking a `kind` marketplace to move an order from `current` to
/// `target`; `tracking` is whether a tracking number comes with it.
pub fn check(
    kind: &str,
    current: Option<OrderStatus>,
    target: OrderStatus,
    tracking: bool,
) -> Result<(), Refusal> {
    use OrderStatus::*;
    let illegal = |why: String| Err(Refusal::Illegal(why));
    if !TARGETS.contains(&target) {
        return illegal(format!(
            "an order cannot be set to {target}; ask for accepted, shipped, cancelled or returned"
        ));
    }
    let Some(current) = current else {
        return illegal(
            "the order's status is unknown to us; sync it before changing it".to_owned(),
        );
    };
    if current == target {
        return illegal(format!("the order is {current} already"));
    }
    let free = skips_steps(kind);
    let legal = match (current, target) {
        (Cancelled | Returned, _) => false,
        (Pending, Accepted) | (Accepted, Shipped) | (Shipped, Returned) => true,
        (Unpaid | Pending | Accepted, Cancelled) => true,
        (Unpaid, Accepted) | (Unpaid | Pending, Shipped) => free,
        _ => false,
    };
    if !legal {
        return illegal(format!(
            "{kind} does not move an order from {current} to {target}"
        ));
    }
    if kind == "backmarket" && target == Shipped && !tracking {
        return Err(Refusal::Missing {
            field: "tracking.number",
            reason: "Back Market ships an order only with a tracking number".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    fn legal(kind: &str, from: OrderStatus, to: OrderStatus) -> bool {
        check(kind, Some(from), to, true).is_ok()
    }

    #[test]
    fn every_marketplace_walks_forward_one_step() {
        for kind in ["backmarket", "refurbed", "woocommerce"] {
            assert!(legal(kind, Pending, Accepted), "{kind}");
            assert!(legal(kind, Accepted, Shipped), "{kind}");
            assert!(legal(kind, Shipped, Returned), "{kind}");
            assert!(legal(kind, Pending, Cancelled), "{kind}");
            assert!(legal(kind, Accepted, Cancelled), "{kind}");
        }
    }

    #[test]
    fn nothing_moves_backwards_or_out_of_an_end() {
        for kind in ["backmarket", "refurbed", "woocommerce"] {
            assert!(!legal(kind, Shipped, Accepted), "{kind}");
            assert!(!legal(kind, Shipped, Cancelled), "{kind}");
            assert!(!legal(kind, Cancelled, Accepted), "{kind}");
            assert!(!legal(kind, Returned, Shipped), "{kind}");
            assert!(!legal(kind, Pending, Returned), "{kind}");
        }
    }

    #[test]
    fn only_woocommerce_skips_steps() {
        assert!(legal("woocommerce", Unpaid, Accepted));
        assert!(legal("woocommerce", Pending, Shipped));
        assert!(!legal("backmarket", Unpaid, Accepted));
        assert!(!legal("refurbed", Pending, Shipped));
    }

    #[test]
    fn the_same_status_unknown_ones_and_non_targets_are_refused() {
        assert!(matches!(
            check("refurbed", Some(Accepted), Accepted, false),
            Err(Refusal::Illegal(_))
        ));
        assert!(matches!(
            check("refurbed", None, Shipped, false),
            Err(Refusal::Illegal(_))
        ));
        assert!(matches!(
            check("woocommerce", Some(Accepted), Pending, false),
            Err(Refusal::Illegal(_))
        ));
    }

    #[test]
    fn back_market_ships_only_with_a_tracking_number() {
        assert_eq!(
            check("backmarket", Some(Accepted), Shipped, false),
            Err(Refusal::Missing {
                field: "tracking.number",
                reason: "Back Market ships an order only with a tracking number".to_owned()
            })
        );
        assert!(check("refurbed", Some(Accepted), Shipped, false).is_ok());
    }
}
