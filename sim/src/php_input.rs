//! How WooCommerce (PHP and WordPress) reads what a client sends: the query
//! string as PHP parses it into `$_GET`, and integer fields as WordPress's
//! REST schema validates them (`rest_is_integer`, then `(int)`).
//!
//! WooCommerce checks OAuth signatures and reads its parameters from the
//! same `$_GET`, so both must use [`query_pairs`] to agree.

use crate::pages::QueryPairs;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;
use std::convert::Infallible;

/// The query as PHP reads it: one value per key, the LAST occurrence
/// winning, keys in the order they first appear (a PHP array keeps a key's
/// place when it is assigned again). `+` and `%XX` are decoded as PHP does.
pub(crate) fn query_pairs(query: &str) -> QueryPairs {
    let mut pairs: QueryPairs = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()).into_owned() {
        match pairs.iter_mut().find(|(seen, _)| *seen == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key, value)),
        }
    }
    pairs
}

/// An extractor for WooCommerce handlers: the request's query as [`query_pairs`] reads it.
pub(crate) struct PhpQuery(pub QueryPairs);

impl<S: Send + Sync> FromRequestParts<S> for PhpQuery {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PhpQuery(query_pairs(parts.uri.query().unwrap_or_default())))
    }
}

/// An integer field as WordPress's REST API takes it: `rest_is_integer`
/// (`is_numeric` and a whole value) then `(int)`. So `7`, `7.0`, `"7"`,
/// `" 7"` and `"1e3"` are integers; `"7.5"`, `"abc"`, `""` and booleans are not.
pub(crate) fn rest_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().and_then(whole_number)),
        Value::String(text) => numeric_string(text),
        _ => None,
    }
}

/// PHP 8's `is_numeric` on a string (surrounding whitespace allowed, a sign,
/// a decimal or exponent form; no hex, no `inf`), if the value is whole.
fn numeric_string(text: &str) -> Option<i64> {
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    // Only these characters: Rust's float grammar then checks the form and
    // cannot meet `inf` or `nan`, which PHP does not take as numeric.
    let numeric_chars = trimmed
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if !numeric_chars {
        return None;
    }
    // An integer string is read exactly, beyond what a float holds.
    trimmed
        .parse::<i64>()
        .ok()
        .or_else(|| trimmed.parse::<f64>().ok().and_then(whole_number))
}

fn whole_number(value: f64) -> Option<i64> {
    // i64::MAX as f64 rounds up to 2^63, which no i64 holds: keep below it.
    let in_range = value.is_finite() && value.abs() < i64::MAX as f64;
    (in_range && value.fract() == 0.0).then_some(value as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_occurrence_of_a_key_wins_in_its_first_place() {
        let pairs = query_pairs("per_page=5&page=1&oauth_nonce=n&per_page=6&page=1&q=a+b");
        let expected = [
            ("per_page", "6"),
            ("page", "1"),
            ("oauth_nonce", "n"),
            ("q", "a b"),
        ];
        let expected: QueryPairs = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
        assert!(query_pairs("").is_empty());
    }

    #[test]
    fn integers_are_what_rest_is_integer_accepts() {
        let accepted = [
            (json!(7), 7),
            (json!(-3), -3),
            (json!(7.0), 7),
            (json!("7"), 7),
            (json!(" 7"), 7),
            (json!("7 "), 7),
            (json!("+7"), 7),
            (json!("7.0"), 7),
            (json!("1e3"), 1000),
            (json!("9007199254740993"), 9_007_199_254_740_993),
        ];
        for (value, integer) in accepted {
            assert_eq!(rest_integer(&value), Some(integer), "{value}");
        }
        let refused = [
            json!("7.5"),
            json!(7.5),
            json!("abc"),
            json!(""),
            json!(" "),
            json!("0x1A"),
            json!("inf"),
            json!("1e"),
            json!("7 apples"),
            json!(true),
            json!(null),
            json!([7]),
        ];
        for value in refused {
            assert_eq!(rest_integer(&value), None, "{value}");
        }
    }
}
