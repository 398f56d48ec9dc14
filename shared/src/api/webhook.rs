//! WooCommerce order webhooks: `POST /webhooks/woocommerce/{marketplace}`.
//!
//! The body is checked against `X-WC-Webhook-Signature` (base64 of the
//! HMAC-SHA256 of the raw body, keyed with the webhook's secret from the
//! environment variable `WEBHOOK_SECRET_<CODE>`), then the order is stored
//! exactly as the poller stores a fetched one: same upsert, same events in
//! the same transaction. A webhook is therefore only a faster poll; the
//! poller's modified sync still catches anything a webhook missed.
//!
//! WooCommerce disables a webhook after more than 5 failed deliveries in a
//! row, so only a bad signature, an unusable body or an order we could not
//! store from a poll either is refused; topics we do not act on are
//! acknowledged. Limits are by field ([`store::storable`]): identifiers,
//! SKUs and statuses at most 4,096 bytes, free text (a buyer's note, an
//! address, a product name, meta values) only by the 2 MiB body limit.

use super::{Api, ApiError};
use crate::marketplace::{MarketplaceKind, parse_webhook_order};
use crate::poller::store;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub(super) fn router() -> axum::Router<Api> {
    Router::new().route("/webhooks/woocommerce/{marketplace}", post(receive))
}

/// The environment variable holding a marketplace's webhook secret.
pub fn secret_env(marketplace: &str) -> String {
    format!("WEBHOOK_SECRET_{}", marketplace.to_ascii_uppercase())
}

/// Whether `signature` is WooCommerce's signature of `body` under `secret`.
fn signed(body: &[u8], signature: &str, secret: &str) -> bool {
    let Ok(expected) = BASE64.decode(signature.trim()) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok() // constant time
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

async fn receive(
    State(api): State<Api>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let marketplace = api
        .marketplaces
        .get(&code)
        .await?
        .filter(|row| row.kind.parse() == Ok(MarketplaceKind::WooCommerce))
        .ok_or_else(|| ApiError::NotFound(format!("no WooCommerce marketplace {code:?}")))?;
    // WooCommerce's ping on creating a webhook: a form body, unsigned.
    if header(&headers, "x-wc-webhook-topic").is_none() && body.starts_with(b"webhook_id=") {
        return Ok(Json(json!({ "ping": true })));
    }
    let secret_env = secret_env(&code);
    let secret = std::env::var(&secret_env).map_err(|_| {
        tracing::error!(marketplace = %code, "webhook received but {secret_env} is not set");
        ApiError::Unavailable(format!("set {secret_env} to this webhook's secret"))
    })?;
    let signature = header(&headers, "x-wc-webhook-signature");
    if !signature.is_some_and(|signature| signed(&body, signature, &secret)) {
        metrics::counter!("stockfleet_webhooks_rejected_total", "marketplace" => code.clone(), "reason" => "signature", "field" => "").increment(1);
        tracing::warn!(marketplace = %code, "webhook with a bad signature refused");
        return Err(ApiError::Unsigned(match signature {
            None => format!(
                "X-WC-Webhook-Signature is missing: sign the body with the webhook's secret ({secret_env})"
            ),
            Some(_) => format!(
                "X-WC-Webhook-Signature does not match the body: the webhook's secret in WooCommerce and {secret_env} differ, or the body was changed"
            ),
        }));
    }
    let topic = header(&headers, "x-wc-webhook-topic").unwrap_or_default();
    let delivery = header(&headers, "x-wc-webhook-delivery-id").unwrap_or_default();
    if !matches!(topic, "order.created" | "order.updated") {
        tracing::info!(marketplace = %code, topic, delivery, "webhook topic ignored");
        return Ok(Json(json!({ "ignored": topic })));
    }
    // A NUL in any string is refused before the parser or the database sees
    // it; lengths are bounded by field below (a buyer's note is free text).
    if let Ok(document) = serde_json::from_slice::<Value>(&body) {
        crate::domain::input::no_nul_in_json("", &document)
            .map_err(|invalid| refused_field(&code, invalid))?;
    }
    let order = parse_webhook_order(&body).map_err(|error| {
        metrics::counter!("stockfleet_webhooks_rejected_total", "marketplace" => code.clone(), "reason" => "body", "field" => "").increment(1);
        tracing::warn!(marketplace = %code, topic, delivery, %error, "webhook body refused");
        ApiError::BadRequest(format!("not a WooCommerce order: {error}"))
    })?;
    store::storable(&order).map_err(|invalid| refused_field(&code, invalid))?;
    let counts = store::store_orders(&api.db, &marketplace, std::slice::from_ref(&order)).await?;
    metrics::counter!("stockfleet_webhooks_received_total", "marketplace" => code.clone(), "topic" => topic.to_owned()).increment(1);
    tracing::info!(marketplace = %code, topic, delivery, order = %order.external_id,
        created = counts.created, updated = counts.updated, events = counts.events, "webhook stored");
    Ok(Json(json!({
        "order": order.external_id,
        "created": counts.created,
        "updated": counts.updated,
        "events": counts.events,
    })))
}

/// A signed order with a field we cannot keep (a NUL, an identifier past
/// its bound): refused naming the field, and counted with it. The poll
/// would refuse it too, so a failed delivery loses nothing it could take.
fn refused_field(code: &str, invalid: crate::domain::input::Invalid) -> ApiError {
    metrics::counter!("stockfleet_webhooks_rejected_total", "marketplace" => code.to_owned(),
        "reason" => "field", "field" => invalid.field.clone())
    .increment(1);
    tracing::warn!(marketplace = %code, field = %invalid.field, reason = %invalid.reason, "webhook order refused");
    ApiError::Malformed(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_base64_hmac_sha256_of_the_raw_body() {
        // echo -n '{"id":1}' | openssl dgst -sha256 -hmac secret -binary | base64
        let body = br#"{"id":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let good = BASE64.encode(mac.finalize().into_bytes());
        assert!(signed(body, &good, "secret"));
        assert!(!signed(body, &good, "other secret"));
        assert!(!signed(br#"{"id":2}"#, &good, "secret"));
        assert!(!signed(body, "not base64!", "secret"));
        assert!(!signed(body, "", "secret"));
    }

    #[test]
    fn the_secret_is_named_after_the_marketplace() {
        assert_eq!(secret_env("woo_shop"), "WEBHOOK_SECRET_WOO_SHOP");
    }
}
