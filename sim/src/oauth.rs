//! WooCommerce's OAuth 1.0a one-legged check over plain HTTP, as
//! class-wc-rest-authentication.php does it: the oauth_* parameters in the
//! query string, HMAC-SHA1 or HMAC-SHA256 keyed with `secret&`, a timestamp
//! within 15 minutes, and a nonce used once per consumer key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::collections::HashMap;
use std::sync::Mutex;

/// WooCommerce's window for timestamps and remembered nonces.
const WINDOW_SECS: i64 = 15 * 60;
/// RFC 3986 unreserved characters stay; everything else is encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const REQUIRED: [&str; 5] = [
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
];

/// Nonces seen per consumer key, with their timestamps.
#[derive(Default)]
pub(crate) struct Nonces(Mutex<HashMap<(String, String), i64>>);

impl Nonces {
    /// Remembers `nonce`; false when it was used within the window.
    fn first_use(&self, key: &str, nonce: &str, timestamp: i64, now: i64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| *at >= now - WINDOW_SECS);
        seen.insert((key.to_owned(), nonce.to_owned()), timestamp)
            .is_none()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Why WooCommerce refuses an OAuth request: (code, message), answered 401.
pub(crate) type Refusal = (&'static str, String);

/// What the check needs from one request.
pub(crate) struct SignedRequest<'a> {
    pub method: &'a str,
    /// `http://host[:port]/path`, without the query.
    pub base_uri: String,
    /// The decoded query as PHP reads it (one value per key, the last
    /// occurrence winning: php_input.rs), oauth_* included.
    pub query: Vec<(String, String)>,
    pub now: i64,
}

/// Whether the request tries OAuth at all (any oauth_* parameter).
pub(crate) fn is_oauth(query: &[(String, String)]) -> bool {
    query.iter().any(|(k, _)| REQUIRED.contains(&k.as_str()))
}

/// Checks the signature with the consumer `secret` of `key`.
pub(crate) fn verify(
    request: &SignedRequest<'_>,
    key: &str,
    secret: &str,
    nonces: &Nonces,
) -> Result<(), Refusal> {
    let params: HashMap<&str, &str> = request
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|name| params.get(name).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err((
            "woocommerce_rest_authentication_missing_parameter",
            format!("Missing OAuth parameter(s) {}", missing.join(", ")),
        ));
    }
    let error = |message: &str| ("woocommerce_rest_authentication_error", message.to_owned());
    if params["oauth_consumer_key"] != key {
        return Err(error("Consumer key is invalid."));
    }
    let string_to_sign = string_to_sign(request);
    // Some clients leave '+' unencoded in the query; WooCommerce puts it back.
    let provided = params["oauth_signature"].replace(' ', "+");
    let provided = BASE64
        .decode(provided)
        .map_err(|_| error("Invalid signature - provided signature does not match."))?;
    let key_bytes = format!("{secret}&");
    let matches = match params["oauth_signature_method"] {
        "HMAC-SHA1" => verify_mac::<Hmac<sha1::Sha1>>(&key_bytes, &string_to_sign, &provided),
        "HMAC-SHA256" => verify_mac::<Hmac<sha2::Sha256>>(&key_bytes, &string_to_sign, &provided),
        _ => return Err(error("Invalid signature - signature method is invalid.")),
    };
    if !matches {
        return Err(error(
            "Invalid signature - provided signature does not match.",
        ));
    }
    let timestamp: i64 = params["oauth_timestamp"].parse().unwrap_or(0);
    if (timestamp - request.now).abs() > WINDOW_SECS {
        return Err(error("Invalid timestamp."));
    }
    if !nonces.first_use(key, params["oauth_nonce"], timestamp, request.now) {
        return Err(error("Invalid nonce - nonce has already been used."));
    }
    Ok(())
}

fn verify_mac<M: Mac + hmac::digest::KeyInit>(key: &str, text: &str, provided: &[u8]) -> bool {
    let Ok(mut mac) = <M as Mac>::new_from_slice(key.as_bytes()) else {
        return false;
    };
    mac.update(text.as_bytes());
    mac.verify_slice(provided).is_ok()
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, RFC3986).to_string()
}

/// METHOD & encoded base URI & the encoded, sorted `key=value` pairs joined
/// by `&` (every pair but the signature; keys and values encoded first).
fn string_to_sign(request: &SignedRequest<'_>) -> String {
    let mut pairs: Vec<(String, String)> = request
        .query
        .iter()
        .filter(|(k, _)| k != "oauth_signature")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    pairs.sort();
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| encode(&format!("{k}={v}")))
        .collect();
    format!(
        "{}&{}&{}",
        request.method.to_ascii_uppercase(),
        encode(&request.base_uri),
        joined.join("%26")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5849 §3.4.1.1's example base string (its body parameters here in the query).
    #[test]
    fn rfc5849_base_string() {
        let query = [
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            ("oauth_signature", "ignored"),
            ("c2", ""),
            ("a3", "2 q"),
        ];
        let request = SignedRequest {
            method: "POST",
            base_uri: "http://example.com/request".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            now: 0,
        };
        assert_eq!(
            string_to_sign(&request),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }
}
