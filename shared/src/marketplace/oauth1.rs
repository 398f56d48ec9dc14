//! OAuth 1.0a one-legged request signing (RFC 5849 §3.4, HMAC-SHA256, no
//! token), which WooCommerce requires over plain HTTP: the oauth_*
//! parameters and the signature travel in the query string.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::Sha256;
use url::Url;

/// RFC 3986 §2.3: only unreserved characters go unencoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) struct OAuth1 {
    consumer_key: String,
    consumer_secret: String,
}

impl OAuth1 {
    pub fn new(consumer_key: &str, consumer_secret: &str) -> Self {
        OAuth1 {
            consumer_key: consumer_key.to_owned(),
            consumer_secret: consumer_secret.to_owned(),
        }
    }

    /// Signs `url` for one request: a fresh nonce and the current time.
    pub fn sign(&self, method: &str, url: &mut Url) {
        let nonce: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        self.sign_with(method, url, &nonce, Utc::now().timestamp());
    }

    fn sign_with(&self, method: &str, url: &mut Url, nonce: &str, timestamp: i64) {
        url.query_pairs_mut()
            .append_pair("oauth_consumer_key", &self.consumer_key)
            .append_pair("oauth_nonce", nonce)
            .append_pair("oauth_signature_method", "HMAC-SHA256")
            .append_pair("oauth_timestamp", &timestamp.to_string());
        // The key is `secret&` (no token), the secret as issued, as WooCommerce keys it.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(format!("{}&", self.consumer_secret).as_bytes())
                .expect("HMAC takes a key of any length");
        mac.update(base_string(method, url).as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        url.query_pairs_mut()
            .append_pair("oauth_signature", &signature);
    }
}

fn percent(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// RFC 5849 §3.4.1: method, base URI (no query, default port left out) and
/// the normalized parameters, each part percent-encoded, joined by `&`.
fn base_string(method: &str, url: &Url) -> String {
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| (percent(&name), percent(&value)))
        .collect();
    params.sort();
    let normalized = params
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let base_uri = format!("{}{}", url.origin().ascii_serialization(), url.path());
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent(&base_uri),
        percent(&normalized)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 5849 §3.4.1.1 (its form body moved to the query).
    #[test]
    fn base_string_of_rfc5849() {
        let url = Url::parse(
            "http://EXAMPLE.COM:80/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b&c2=&a3=2+q\
             &oauth_consumer_key=9djdj82h48djs9d2&oauth_token=kkk9d7dh3k39sjv7\
             &oauth_signature_method=HMAC-SHA1&oauth_timestamp=137131201&oauth_nonce=7d8f3e4a",
        )
        .unwrap();
        assert_eq!(
            base_string("post", &url),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }

    #[test]
    fn signature_goes_last_in_the_query_and_changes_with_the_nonce() {
        let signer = OAuth1::new("ck_1", "cs_1");
        let base = Url::parse("http://shop.test/wp-json/wc/v3/orders?page=1").unwrap();
        let (mut one, mut two) = (base.clone(), base);
        signer.sign_with("GET", &mut one, "nonce1", 1_700_000_000);
        signer.sign_with("GET", &mut two, "nonce2", 1_700_000_000);
        let last = |url: &Url| {
            url.query_pairs()
                .last()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
        };
        let (name, signature) = last(&one).unwrap();
        assert_eq!(name, "oauth_signature");
        assert_eq!(BASE64.decode(&signature).unwrap().len(), 32, "HMAC-SHA256");
        assert_ne!(Some((name, signature)), last(&two));
        assert!(
            one.as_str()
                .contains("oauth_consumer_key=ck_1&oauth_nonce=nonce1")
        );
    }
}
