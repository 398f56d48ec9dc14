//! Back Market's states read as our statuses (an order's, each of its
//! lines'), and the line state a merchant sends to make a move.

use crate::domain::OrderStatus;

/// Orderline state → normalised status (docs/marketplaces.md).
pub(crate) fn line_status(state: i64) -> Option<OrderStatus> {
    match state {
        0 | 8 | 9 => Some(OrderStatus::Unpaid),
        1 => Some(OrderStatus::Pending),
        2 => Some(OrderStatus::Accepted),
        3 => Some(OrderStatus::Shipped),
        4 | 5 | 7 => Some(OrderStatus::Cancelled),
        6 => Some(OrderStatus::Returned),
        _ => None,
    }
}

/// Order state (derived by Back Market from its lines) → normalised status.
pub(crate) fn order_status(state: i64) -> Option<OrderStatus> {
    match state {
        0 | 10 => Some(OrderStatus::Unpaid),
        1 => Some(OrderStatus::Pending),
        3 => Some(OrderStatus::Accepted),
        8 => Some(OrderStatus::Cancelled),
        9 => Some(OrderStatus::Shipped),
        _ => None,
    }
}

/// The line state a merchant sends to move a line to `target`, given its
/// current state; None when Back Market has no such move.
pub(super) fn new_line_state(target: OrderStatus, current: Option<OrderStatus>) -> Option<i64> {
    match (target, current) {
        (OrderStatus::Accepted, _) => Some(2),
        (OrderStatus::Cancelled, Some(OrderStatus::Accepted)) => Some(5),
        (OrderStatus::Cancelled, _) => Some(4),
        (OrderStatus::Shipped, _) => Some(3),
        (OrderStatus::Returned, _) => Some(6),
        (OrderStatus::Unpaid | OrderStatus::Pending, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        use OrderStatus::*;
        let expected = [
            (0, Some(Unpaid)),
            (1, Some(Pending)),
            (2, Some(Accepted)),
            (3, Some(Shipped)),
            (4, Some(Cancelled)),
            (5, Some(Cancelled)),
            (6, Some(Returned)),
            (7, Some(Cancelled)),
            (8, Some(Unpaid)),
            (9, Some(Unpaid)),
            (10, None),
            (-1, None),
        ];
        for (state, status) in expected {
            assert_eq!(line_status(state), status, "line state {state}");
        }
        assert_eq!(order_status(0), Some(Unpaid));
        assert_eq!(order_status(10), Some(Unpaid));
        assert_eq!(order_status(1), Some(Pending));
        assert_eq!(order_status(3), Some(Accepted));
        assert_eq!(order_status(8), Some(Cancelled));
        assert_eq!(order_status(9), Some(Shipped));
        assert_eq!(order_status(2), None);
    }
}
