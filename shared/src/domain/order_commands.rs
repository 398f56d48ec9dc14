//! What a refused order command means, given where the item stands now.
//!
//! A marketplace refuses a status write it cannot make (400, "item 2409 cannot
//! go from 2 to 2"). The refusal alone does not say whether the command was
//! already carried out (a redelivery after the publisher died between the
//! marketplace's answer and the acknowledgement), can no longer happen (the
//! buyer cancelled first), or is wrong. The item's current status does:
//! only the last is for an operator to act on.

use super::OrderStatus;

/// The reading of one refused command on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The item already has the status asked for, or has gone past it.
    AlreadyDone,
    /// The item's order ended another way first (cancelled before it could be
    /// accepted or shipped): nothing to do, but worth recording.
    Moot,
    /// The move is impossible for another reason: the refusal stands.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::AlreadyDone => "already_done",
            Outcome::Moot => "moot",
            Outcome::Refused => "refused",
        }
    }
}

/// Where a status sits on the forward path of an item's life; Cancelled is
/// off it (an end reached instead of shipping).
fn progress(status: OrderStatus) -> Option<u8> {
    match status {
        OrderStatus::Unpaid => Some(0),
        OrderStatus::Pending => Some(1),
        OrderStatus::Accepted => Some(2),
        OrderStatus::Shipped => Some(3),
        OrderStatus::Returned => Some(4),
        OrderStatus::Cancelled => None,
    }
}

/// The outcome of a refused request to move an item to `requested`, given its
/// status now (None: a raw status we cannot read, so the refusal stands).
pub fn after_refusal(requested: OrderStatus, current: Option<OrderStatus>) -> Outcome {
    let Some(current) = current else {
        return Outcome::Refused;
    };
    if current == requested {
        return Outcome::AlreadyDone;
    }
    match (progress(requested), progress(current)) {
        (Some(asked), Some(now)) if now > asked => Outcome::AlreadyDone,
        // Cancelled before it could be accepted, shipped or returned.
        (Some(_), None) => Outcome::Moot,
        // Not yet where the move starts (accept an unpaid line, ship an
        // unaccepted one), or a cancel of a unit already with the buyer:
        // an operator decides.
        _ => Outcome::Refused,
    }
}

/// The outcome of a command over several items: the one that needs most
/// attention (a refusal of any item stands; a moot item is recorded).
pub fn combine(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    outcomes.into_iter().max().unwrap_or(Outcome::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;
    use Outcome::*;

    #[test]
    fn accepting_again_or_after_shipping_is_done() {
        assert_eq!(after_refusal(Accepted, Some(Accepted)), AlreadyDone);
        assert_eq!(after_refusal(Accepted, Some(Shipped)), AlreadyDone);
        assert_eq!(after_refusal(Accepted, Some(Returned)), AlreadyDone);
    }

    #[test]
    fn accepting_a_line_the_buyer_cancelled_is_moot() {
        assert_eq!(after_refusal(Accepted, Some(Cancelled)), Moot);
        assert_eq!(after_refusal(Shipped, Some(Cancelled)), Moot);
        assert_eq!(after_refusal(Returned, Some(Cancelled)), Moot);
    }

    #[test]
    fn moves_not_yet_possible_are_refused() {
        assert_eq!(after_refusal(Accepted, Some(Unpaid)), Refused);
        assert_eq!(after_refusal(Accepted, Some(Pending)), Refused);
        assert_eq!(after_refusal(Shipped, Some(Pending)), Refused);
        assert_eq!(after_refusal(Returned, Some(Accepted)), Refused);
        assert_eq!(after_refusal(Accepted, None), Refused);
    }

    #[test]
    fn cancelling_follows_the_same_rules() {
        assert_eq!(after_refusal(Cancelled, Some(Cancelled)), AlreadyDone);
        // The unit is with the buyer: that takes a return, not a cancel.
        assert_eq!(after_refusal(Cancelled, Some(Shipped)), Refused);
        assert_eq!(after_refusal(Cancelled, Some(Returned)), Refused);
    }

    #[test]
    fn shipping_again_or_after_a_return_is_done() {
        assert_eq!(after_refusal(Shipped, Some(Shipped)), AlreadyDone);
        assert_eq!(after_refusal(Shipped, Some(Returned)), AlreadyDone);
    }

    #[test]
    fn asking_for_the_status_an_item_has_is_always_done() {
        for status in OrderStatus::ALL {
            assert_eq!(after_refusal(status, Some(status)), AlreadyDone);
        }
    }

    #[test]
    fn the_item_needing_most_attention_decides() {
        assert_eq!(combine([AlreadyDone, AlreadyDone]), AlreadyDone);
        assert_eq!(combine([AlreadyDone, Moot]), Moot);
        assert_eq!(combine([Moot, Refused, AlreadyDone]), Refused);
        assert_eq!(combine([]), Refused);
    }
}
