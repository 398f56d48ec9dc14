//! AMQP headers that stockfleet reads and writes.

use chrono::Utc;
use lapin::types::{AMQPValue, FieldTable, LongString};

pub const TRACEPARENT: &str = "traceparent";
pub const ATTEMPTS: &str = "x-attempts";
/// Times a message was deferred (waiting, not failing; see `HandlerError::Deferred`).
pub const DEFERRALS: &str = "x-deferrals";
pub const ERROR: &str = "x-error";
pub const ERROR_KIND: &str = "x-error-kind";
pub const FIRST_FAILURE: &str = "x-first-failure";
pub const LAST_FAILURE: &str = "x-last-failure";
pub const ORIGINAL_EXCHANGE: &str = "x-original-exchange";
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
/// `x-attempts` when the message was last replayed from its dead letters:
/// the count goes on (a letter that failed twice fails a third time after
/// its replay), the retry ladder starts again from here.
pub const REPLAYED_AT_ATTEMPT: &str = "x-replayed-at-attempt";

pub fn get_str(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

pub fn get_u32(headers: &FieldTable, key: &str) -> Option<u32> {
    let value = match headers.inner().get(key)? {
        AMQPValue::LongLongInt(v) => *v,
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::ShortShortInt(v) => i64::from(*v),
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        _ => return None,
    };
    u32::try_from(value).ok()
}

pub fn set_str(headers: &mut FieldTable, key: &str, value: &str) {
    headers.insert(
        key.into(),
        AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
    );
}

pub fn set_u32(headers: &mut FieldTable, key: &str, value: u32) {
    headers.insert(key.into(), AMQPValue::LongLongInt(i64::from(value)));
}

/// The failure record of design §5 added to a message's headers: error, kind,
/// attempts, first and last failure, and where the message was first routed.
pub fn record_failure(
    headers: &mut FieldTable,
    error: &str,
    kind: &str,
    attempts: u32,
    exchange: &str,
    routing_key: &str,
) {
    let now = Utc::now().to_rfc3339();
    if get_str(headers, FIRST_FAILURE).is_none() {
        set_str(headers, FIRST_FAILURE, &now);
    }
    if get_str(headers, ORIGINAL_EXCHANGE).is_none() {
        set_str(headers, ORIGINAL_EXCHANGE, exchange);
        set_str(headers, ORIGINAL_ROUTING_KEY, routing_key);
    }
    set_str(headers, LAST_FAILURE, &now);
    set_str(headers, ERROR, error);
    set_str(headers, ERROR_KIND, kind);
    set_u32(headers, ATTEMPTS, attempts);
}

/// Failures since the last replay, out of `attempts` in all: what the retry
/// ladder and `MAX_ATTEMPTS` go by.
pub fn attempts_since_replay(headers: &FieldTable, attempts: u32) -> u32 {
    attempts.saturating_sub(get_u32(headers, REPLAYED_AT_ATTEMPT).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keeps_first_failure_and_original_route() {
        let mut headers = FieldTable::default();
        record_failure(
            &mut headers,
            "db down",
            "transient",
            1,
            "p.events",
            "order.created.bm",
        );
        let first = get_str(&headers, FIRST_FAILURE).unwrap();
        record_failure(&mut headers, "still down", "transient", 2, "", "p.locker");
        assert_eq!(get_str(&headers, FIRST_FAILURE).unwrap(), first);
        assert_eq!(get_str(&headers, ORIGINAL_EXCHANGE).unwrap(), "p.events");
        assert_eq!(
            get_str(&headers, ORIGINAL_ROUTING_KEY).unwrap(),
            "order.created.bm"
        );
        assert_eq!(get_str(&headers, ERROR).unwrap(), "still down");
        assert_eq!(get_u32(&headers, ATTEMPTS), Some(2));
    }

    #[test]
    fn a_replay_keeps_the_count_and_restarts_the_ladder() {
        let mut headers = FieldTable::default();
        record_failure(&mut headers, "down", "transient", 6, "p.events", "k");
        assert_eq!(attempts_since_replay(&headers, 6), 6);
        set_u32(&mut headers, REPLAYED_AT_ATTEMPT, 6);
        assert_eq!(attempts_since_replay(&headers, 7), 1);
        assert_eq!(attempts_since_replay(&headers, 12), 6);
    }
}
