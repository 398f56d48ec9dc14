//! What the fleet accepts from outside (bus envelopes, API paths, queries and
//! bodies, webhook bodies, marketplace responses): one set of rules, each
//! naming the field it refuses. The edges call these; a refusal is a 4xx
//! `{"error", "field"}` over HTTP and a permanent dead letter on the bus.

use serde_json::Value;

/// A refused input: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The most days an order sync may look back (a year; the marketplaces keep
/// no longer order history worth a poll).
pub const MAX_DAYS_BACK: u32 = 366;

/// The default most units one stock row may list (`STOCK_LEVEL_MAX`).
pub const DEFAULT_MAX_STOCK_LEVEL: i32 = 1_000_000;

/// The longest text (an id, a SKU, a reason) taken from outside, in bytes.
pub const MAX_TEXT_LEN: usize = 4096;

/// A text field: no NUL (PostgreSQL refuses it in `text`), bounded length.
/// Rust strings are valid UTF-8 already; the decoders refuse invalid bytes.
pub fn text(field: &str, value: &str) -> Result<(), Invalid> {
    no_nul(field, value)?;
    if value.len() > MAX_TEXT_LEN {
        return Err(Invalid::new(
            field,
            format!("is {} bytes long; at most {MAX_TEXT_LEN}", value.len()),
        ));
    }
    Ok(())
}

/// The longest reason a pause or resume records, in characters.
pub const MAX_PAUSE_REASON_CHARS: usize = 500;

/// A pause's or resume's reason, trimmed: 1 to 500 characters, no NUL.
pub fn pause_reason<'a>(field: &str, value: &'a str) -> Result<&'a str, Invalid> {
    no_nul(field, value)?;
    let value = value.trim();
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_PAUSE_REASON_CHARS {
        return Err(Invalid::new(
            field,
            format!("is {chars} characters; give 1 to {MAX_PAUSE_REASON_CHARS}"),
        ));
    }
    Ok(value)
}

fn no_nul(field: &str, value: &str) -> Result<(), Invalid> {
    if value.contains('\0') {
        return Err(Invalid::new(field, "contains a NUL byte (\\u0000)"));
    }
    Ok(())
}

/// Every string (and key) of a JSON document, by [`text`]; the field named
/// is its path (`payload.items[0].sku`).
pub fn json_strings(path: &str, value: &Value) -> Result<(), Invalid> {
    each_string(path, value, &text)
}

/// No NUL in any string or key of `value` (PostgreSQL's jsonb refuses
/// `\u0000`); lengths are not bounded: a marketplace's own document may
/// carry long texts (a buyer's note) that we keep as they came.
pub fn no_nul_in_json(path: &str, value: &Value) -> Result<(), Invalid> {
    each_string(path, value, &no_nul)
}

fn each_string(
    path: &str,
    value: &Value,
    check: &dyn Fn(&str, &str) -> Result<(), Invalid>,
) -> Result<(), Invalid> {
    match value {
        Value::String(s) => check(path, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| each_string(&format!("{path}[{i}]"), item, check)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            check(&field, key)?;
            each_string(&field, item, check)
        }),
        _ => Ok(()),
    }
}

/// How many days an order sync may look back: 1 to [`MAX_DAYS_BACK`].
pub fn days_back(field: &str, days: u32) -> Result<u32, Invalid> {
    if (1..=MAX_DAYS_BACK).contains(&days) {
        Ok(days)
    } else {
        Err(Invalid::new(
            field,
            format!("{days} days: give 1 to {MAX_DAYS_BACK}"),
        ))
    }
}

/// A listed stock level: 0 to `max` units.
pub fn stock_level(field: &str, listed: i64, max: i32) -> Result<i32, Invalid> {
    match i32::try_from(listed) {
        Ok(listed) if (0..=max).contains(&listed) => Ok(listed),
        _ if listed < 0 => Err(Invalid::new(
            field,
            format!("listed stock cannot become negative (would be {listed})"),
        )),
        _ => Err(Invalid::new(
            field,
            format!("{listed} units is above the maximum of {max} per stock row (STOCK_LEVEL_MAX)"),
        )),
    }
}

/// A marketplace's API base URL: absolute http(s) with a host.
pub fn base_url(field: &str, value: &str) -> Result<(), Invalid> {
    text(field, value)?;
    let url = url::Url::parse(value)
        .map_err(|error| Invalid::new(field, format!("{value:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Invalid::new(
            field,
            format!("{value:?}: give an http:// or https:// URL with a host"),
        ));
    }
    Ok(())
}

/// The offset of a scheduled sync inside its interval: 0 to interval - 1 minutes.
pub fn sync_offset(field: &str, minutes: i32, interval_hours: i32) -> Result<(), Invalid> {
    let interval = interval_hours.saturating_mul(60);
    if (0..interval.max(1)).contains(&minutes) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "{minutes} minutes: the offset lies inside the {interval_hours} h interval, 0 to {}",
                interval.max(1) - 1
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_refuses_nul_and_huge_values() {
        assert!(text("sku", "A-1").is_ok());
        assert_eq!(text("sku", "X\0").unwrap_err().field, "sku");
        assert!(text("sku", &"x".repeat(MAX_TEXT_LEN + 1)).is_err());
    }

    #[test]
    fn json_strings_name_the_path_of_the_bad_string() {
        let ok = json!({"order_id": "1", "items": [{"sku": "A", "quantity": 1}]});
        assert!(json_strings("payload", &ok).is_ok());
        let bad = json!({"order_id": "1", "items": [{"sku": "A\u{0}"}]});
        assert_eq!(
            json_strings("payload", &bad).unwrap_err().field,
            "payload.items[0].sku"
        );
        let bad_key = json!({"a\u{0}": 1});
        assert_eq!(json_strings("", &bad_key).unwrap_err().field, "a\u{0}");
    }

    #[test]
    fn marketplace_documents_may_be_long_but_never_hold_a_nul() {
        let note = "x".repeat(MAX_TEXT_LEN * 2);
        assert!(no_nul_in_json("order", &json!({"note": note})).is_ok());
        let bad = json!({"lines": [{"imei": "35\u{0}"}]});
        assert_eq!(
            no_nul_in_json("order", &bad).unwrap_err().field,
            "order.lines[0].imei"
        );
    }

    #[test]
    fn a_pause_reason_is_short_text() {
        assert_eq!(pause_reason("reason", "  maintenance "), Ok("maintenance"));
        assert!(pause_reason("reason", " ").is_err());
        assert!(pause_reason("reason", "a\0").is_err());
        assert!(pause_reason("reason", &"é".repeat(500)).is_ok());
        assert!(pause_reason("reason", &"é".repeat(501)).is_err());
    }

    #[test]
    fn bounds() {
        assert_eq!(days_back("days_back", 7), Ok(7));
        assert!(days_back("days_back", 0).is_err());
        assert!(days_back("days_back", u32::MAX).is_err());
        assert_eq!(stock_level("set", 12, 100), Ok(12));
        assert!(
            stock_level("set", 101, 100)
                .unwrap_err()
                .reason
                .contains("maximum")
        );
        assert!(
            stock_level("set", -1, 100)
                .unwrap_err()
                .reason
                .contains("negative")
        );
        assert!(stock_level("adjust", i64::from(i32::MAX) + 5, 100).is_err());
        assert!(base_url("base_url", "https://api.example.com/v1").is_ok());
        assert!(base_url("base_url", "not a url").is_err());
        assert!(base_url("base_url", "ftp://x").is_err());
        assert!(sync_offset("sync_offset_minutes", 30, 24).is_ok());
        assert!(sync_offset("sync_offset_minutes", 1440, 24).is_err());
        assert!(sync_offset("sync_offset_minutes", -1, 24).is_err());
    }
}
