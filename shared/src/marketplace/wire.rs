//! Lenient decoding shared by the adapters: ids that come as numbers or
//! strings, the marketplaces' timestamp formats, and bodies that fail to
//! parse turned into a clear permanent error (never a panic).

use super::MarketplaceError;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Decodes a response body; a body that does not fit is the marketplace's
/// fault and retrying will not fix it.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, MarketplaceError> {
    serde_json::from_slice(body).map_err(malformed)
}

/// Like [`decode`], from an already parsed value (kept raw alongside).
pub(crate) fn from_value<T: DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, MarketplaceError> {
    T::deserialize(value).map_err(malformed)
}

fn malformed(error: serde_json::Error) -> MarketplaceError {
    MarketplaceError::Permanent {
        status: None,
        message: format!("malformed response body: {error}"),
    }
}

/// An id sent as a JSON number or string (Refurbed int64s are strings,
/// Back Market and WooCommerce ids are numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Signed(i64),
            Unsigned(u64),
        }
        Ok(Id(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Signed(n) => n.to_string(),
            Raw::Unsigned(n) => n.to_string(),
        }))
    }
}

/// A timestamp in any format the marketplaces use: RFC3339, Back Market's
/// `YYYY-MM-DD HH:MM:SS`, WooCommerce's zone-less `*_gmt` fields (UTC).
/// Unparseable or absent → None: a timestamp is informative, the raw order
/// keeps the original.
pub(crate) fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let text = text?.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .into_iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

/// An RFC3339 timestamp the way query strings want it (`…Z`, whole seconds).
pub(crate) fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Field names the adapters look at, so that generated objects reach
    /// deep into the parsers instead of failing on the first missing field.
    const KEYS: &[&str] = &[
        "order_id",
        "state",
        "date_creation",
        "date_modification",
        "delivery_note",
        "orderlines",
        "id",
        "listing",
        "quantity",
        "next",
        "results",
        "orderline",
        "orders",
        "order",
        "items",
        "sku",
        "has_more",
        "released_at",
        "labels",
        "returns",
        "order_item_id",
        "return_initiated_at",
        "offer",
        "stock",
        "status",
        "line_items",
        "date_created_gmt",
        "date_modified_gmt",
        "date_completed_gmt",
        "stock_quantity",
        "manage_stock",
        "parent_id",
        "message",
        "code",
        "error",
    ];

    /// Arbitrary JSON, biased towards the marketplaces' field names.
    pub(crate) fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (0u32..12).prop_map(Value::from),
            "[a-zA-Z0-9_:. -]{0,12}".prop_map(Value::from),
            Just(Value::from("2026-03-01T10:20:30Z")),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..8).prop_map(
                    |fields| {
                        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    }
                ),
            ]
        })
    }

    #[test]
    fn ids_accept_numbers_and_strings() {
        let ids: Vec<Id> = serde_json::from_str(r#"[12, "34", 18446744073709551615]"#).unwrap();
        assert_eq!(ids[0].0, "12");
        assert_eq!(ids[1].0, "34");
        assert_eq!(ids[2].0, "18446744073709551615");
        assert!(serde_json::from_str::<Id>("1.5").is_err());
        assert!(serde_json::from_str::<Id>("null").is_err());
    }

    #[test]
    fn times_in_every_marketplace_format() {
        let expected = "2026-03-01T10:20:30Z";
        for text in [
            "2026-03-01T10:20:30Z",
            "2026-03-01T11:20:30+01:00",
            "2026-03-01 10:20:30",
            "2026-03-01T10:20:30",
        ] {
            assert_eq!(
                parse_time(Some(text)).map(format_time).as_deref(),
                Some(expected),
                "{text}"
            );
        }
        assert_eq!(parse_time(Some("yesterday")), None);
        assert_eq!(parse_time(None), None);
    }

    #[test]
    fn malformed_bodies_are_permanent() {
        let error = decode::<Vec<u32>>(b"{\"truncated").unwrap_err();
        assert_eq!(error.kind(), "permanent");
        assert!(error.message().starts_with("malformed response body"));
    }
}
