//! Refurbed's order listings by sync kind. Refurbed has no modified-since
//! filter, so the modified walk is two listings chained by the page token:
//! the orders released since the cursor, in any state, then the open ones
//! (NEW, ACCEPTED) released before it. Every open order comes by, a page of
//! 100 at a time, with its items' states; an order the poller holds as open
//! that the walk did not bring has left the open states, and
//! [`closed_filter`] finds those a page at a time as well, instead of one
//! `GetOrder` each.

use super::super::{OrderQuery, PageToken};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

const OPEN_STATES: [&str; 2] = ["NEW", "ACCEPTED"];
/// Tokens of the modified walk's second listing carry this prefix; the
/// prefix alone starts it.
const OPEN_PREFIX: &str = "open:";

/// Which listing a page belongs to, and so how its next token is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// A listing of its own (new, incomplete, closed orders).
    Single,
    /// The modified walk's orders released since the cursor.
    Released,
    /// The modified walk's open orders released before the cursor.
    Open,
}

impl Listing {
    /// The token for the page after this one, from the listing's own cursor.
    pub(super) fn next(self, cursor: Option<PageToken>) -> Option<PageToken> {
        match (self, cursor) {
            (Listing::Released, None) => Some(PageToken(OPEN_PREFIX.to_owned())),
            (Listing::Open, Some(PageToken(id))) => Some(PageToken(format!("{OPEN_PREFIX}{id}"))),
            (_, cursor) => cursor,
        }
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    // Whole seconds, as both halves of the modified walk split on the same
    // instant: `ge` it in the first, `lt` it in the second.
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The filter of one page of `query`, the listing it belongs to, and the
/// listing's own cursor (the page token without the walk's prefix).
pub(super) fn order_filter(
    query: &OrderQuery,
    page: Option<PageToken>,
) -> (Value, Listing, Option<PageToken>) {
    match query {
        OrderQuery::New => (json!({"state": {"any_of": ["NEW"]}}), Listing::Single, page),
        OrderQuery::Incomplete => (
            json!({"state": {"any_of": ["ACCEPTED"]}}),
            Listing::Single,
            page,
        ),
        OrderQuery::ModifiedSince(since) => {
            match page
                .as_ref()
                .and_then(|token| token.0.strip_prefix(OPEN_PREFIX))
            {
                Some(cursor) => (
                    json!({"state": {"any_of": OPEN_STATES}, "released_at": {"lt": rfc3339(*since)}}),
                    Listing::Open,
                    (!cursor.is_empty()).then(|| PageToken(cursor.to_owned())),
                ),
                None => (
                    json!({"released_at": {"ge": rfc3339(*since)}}),
                    Listing::Released,
                    page,
                ),
            }
        }
    }
}

/// The orders released in `[from, before)` that left the open states.
/// `before` is the modified walk's cursor, split on the same second as the
/// walk's first listing (which brought every order released since).
pub(super) fn closed_filter(from: DateTime<Utc>, before: DateTime<Utc>) -> Value {
    json!({
        "state": {"none_of": OPEN_STATES},
        "released_at": {"ge": rfc3339(from), "lt": rfc3339(before)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn token(text: &str) -> Option<PageToken> {
        Some(PageToken(text.to_owned()))
    }

    #[test]
    fn the_modified_walk_lists_the_released_orders_then_the_older_open_ones() {
        let since = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap()
            + chrono::Duration::milliseconds(750);
        let query = OrderQuery::ModifiedSince(since);

        let (filter, listing, cursor) = order_filter(&query, None);
        assert_eq!(
            filter,
            json!({"released_at": {"ge": "2026-12-03T10:00:00Z"}})
        );
        assert_eq!((listing, cursor), (Listing::Released, None));
        assert_eq!(
            listing.next(token("41")),
            token("41"),
            "more released pages"
        );
        assert_eq!(listing.next(None), token("open:"), "then the open orders");

        let (filter, listing, cursor) = order_filter(&query, token("open:"));
        assert_eq!(
            filter,
            json!({"state": {"any_of": ["NEW", "ACCEPTED"]}, "released_at": {"lt": "2026-12-03T10:00:00Z"}})
        );
        assert_eq!((listing, cursor), (Listing::Open, None));
        assert_eq!(listing.next(token("7")), token("open:7"));
        assert_eq!(listing.next(None), None, "the walk ends");

        let (_, listing, cursor) = order_filter(&query, token("open:7"));
        assert_eq!((listing, cursor), (Listing::Open, token("7")));
    }

    #[test]
    fn other_listings_keep_their_cursor_as_it_is() {
        for query in [OrderQuery::New, OrderQuery::Incomplete] {
            let (_, listing, cursor) = order_filter(&query, token("open:3"));
            assert_eq!(
                (listing, cursor.clone()),
                (Listing::Single, token("open:3"))
            );
            assert_eq!(listing.next(None), None);
            assert_eq!(listing.next(token("9")), token("9"));
        }
    }

    #[test]
    fn the_closed_listing_leaves_the_open_states_out() {
        let from = Utc.with_ymd_and_hms(2026, 12, 3, 9, 59, 59).unwrap();
        let cursor = Utc.with_ymd_and_hms(2026, 12, 3, 10, 5, 0).unwrap();
        assert_eq!(
            closed_filter(from, cursor + chrono::Duration::milliseconds(400)),
            json!({
                "state": {"none_of": ["NEW", "ACCEPTED"]},
                "released_at": {"ge": "2026-12-03T09:59:59Z", "lt": "2026-12-03T10:05:00Z"},
            })
        );
    }
}
