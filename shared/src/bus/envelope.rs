//! The versioned message envelope of design §5.

use crate::domain::input::{self, Invalid};
use crate::domain::messages;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ENVELOPE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    pub marketplace: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported envelope version {0} (this build reads version {ENVELOPE_VERSION})")]
    UnsupportedVersion(u32),
    #[error("refused envelope: {0}")]
    Refused(#[from] Invalid),
}

impl Envelope {
    pub fn new(kind: &str, marketplace: &str, payload: &impl Serialize) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            version: ENVELOPE_VERSION,
            occurred_at: Utc::now(),
            marketplace: marketplace.to_owned(),
            payload: serde_json::to_value(payload).expect("payloads serialize to JSON"),
        }
    }

    /// Events are routed by `<type>.<marketplace>`.
    pub fn event_routing_key(&self) -> String {
        format!("{}.{}", self.kind, self.marketplace)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope: Envelope = serde_json::from_slice(bytes)?;
        if envelope.version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(envelope.version));
        }
        Ok(envelope)
    }

    /// Decodes a delivered envelope and checks it as every edge does: its
    /// `type` known and the one `routing_key` names, no string with a NUL.
    pub fn decode_routed(bytes: &[u8], routing_key: &str) -> Result<Self, EnvelopeError> {
        let envelope = Self::decode(bytes)?;
        input::text("type", &envelope.kind)?;
        input::text("marketplace", &envelope.marketplace)?;
        messages::check_route(&envelope.kind, &envelope.marketplace, routing_key)?;
        input::json_strings("payload", &envelope.payload)?;
        Ok(envelope)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes serialize to JSON")
    }

    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_version() {
        let envelope = Envelope::new("order.created", "backmarket", &serde_json::json!({"a": 1}));
        let decoded = Envelope::decode(&envelope.to_bytes()).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.event_routing_key(), "order.created.backmarket");

        let mut future = serde_json::to_value(&envelope).unwrap();
        future["version"] = 2.into();
        let bytes = serde_json::to_vec(&future).unwrap();
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            Envelope::decode(b"{not json"),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn delivered_envelopes_are_checked_against_their_route_and_for_nul() {
        let order = serde_json::json!({"order_id": "X\u{0}"});
        let envelope = Envelope::new("order.created", "backmarket", &order);
        let refused = Envelope::decode_routed(&envelope.to_bytes(), "order.created.backmarket");
        let Err(EnvelopeError::Refused(invalid)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(invalid.field, "payload.order_id");
        let exploded = Envelope::new("order.exploded", "backmarket", &serde_json::json!({}));
        assert!(Envelope::decode_routed(&exploded.to_bytes(), "order.created.backmarket").is_err());
        let good = Envelope::new(
            "order.created",
            "backmarket",
            &serde_json::json!({"a": "b"}),
        );
        assert!(Envelope::decode_routed(&good.to_bytes(), "order.created.backmarket").is_ok());
    }

    proptest::proptest! {
        /// The decoder and its edge checks never panic, whatever arrives.
        #[test]
        fn decoding_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            key in ".{0,40}",
        ) {
            let _ = Envelope::decode_routed(&body, &key);
        }

        #[test]
        fn any_payload_is_checked_without_panic(
            payload in crate::marketplace::wire_tests::arbitrary_json(),
            kind in "(order\\.created|stock\\.changed|sync\\.request|.{0,12})",
            key in "(order\\.created\\.bm|sync\\.bm\\.new|marketplace\\.bm\\..{0,8}|.{0,20})",
        ) {
            let envelope = Envelope::new(&kind, "bm", &payload);
            let decoded = Envelope::decode_routed(&envelope.to_bytes(), &key);
            if let Ok(decoded) = decoded {
                proptest::prop_assert!(!decoded.to_bytes().windows(6).any(|w| w == b"\\u0000"));
            }
        }
    }
}
