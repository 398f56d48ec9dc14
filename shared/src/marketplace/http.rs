//! The HTTP plumbing every adapter shares: one client with auth headers and a
//! timeout, URL building under the base URL, and the classification of
//! failures into [`MarketplaceError`] kinds with credentials scrubbed.

use super::budget::EndpointClass;
use super::{Budget, MarketplaceConfig, MarketplaceError};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The request header naming the kind of process that sent a call
/// (`poller`, `publisher`, `cli`); the simulator counts requests by it.
pub(crate) const CALLER_HEADER: &str = "x-stockfleet-caller";
/// Used when a 429 carries neither Retry-After nor X-RateLimit-Reset: Back
/// Market documents a 10 s block, the others are silent.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Error bodies can be whole HTML pages; keep messages readable.
const MAX_MESSAGE_CHARS: usize = 300;

pub(crate) struct HttpClient {
    code: String,
    client: reqwest::Client,
    base: Url,
    /// Strings that must never reach an error message or a log line.
    secrets: Vec<String>,
    budget: Option<Arc<Budget>>,
    /// The adapter's endpoint classes, by request path.
    classify: fn(&str) -> EndpointClass,
}

/// A successful response: status, headers and the raw body.
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpClient {
    /// `headers` are sent on every call; auth headers are marked sensitive
    /// so that reqwest never prints them. `classify` names each path's
    /// endpoint class, whose budget the call takes its permit from.
    pub fn new(
        config: &MarketplaceConfig,
        mut headers: HeaderMap,
        secrets: Vec<String>,
        classify: fn(&str) -> EndpointClass,
    ) -> Result<Self, MarketplaceError> {
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| MarketplaceError::invalid(format!("invalid base URL: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(MarketplaceError::invalid("invalid base URL: not a base"));
        }
        for value in headers.values_mut() {
            value.set_sensitive(true);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| MarketplaceError::invalid(format!("cannot build HTTP client: {e}")))?;
        Ok(HttpClient {
            code: config.code.clone(),
            client,
            base,
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            budget: config.budget.clone(),
            classify,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base URL can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// A header value that is checked here so adapters need not unwrap.
    pub fn header_value(value: &str) -> Result<HeaderValue, MarketplaceError> {
        HeaderValue::from_str(value)
            .map_err(|_| MarketplaceError::invalid("credential or header has invalid characters"))
    }

    /// Sends a request; anything but a 2xx becomes a classified error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, MarketplaceError> {
        // The caller kind rides along so the simulator (and an audit) can
        // count each kind's requests against the marketplace's limits.
        let request = match &self.budget {
            Some(budget) => request.header(CALLER_HEADER, budget.caller()),
            None => request,
        };
        let request = request
            .build()
            .map_err(|e| self.scrubbed_invalid(error_chain(&e)))?;
        let (method, path) = (request.method().clone(), request.url().path().to_owned());
        let class = (self.classify)(&path);
        if let Some(budget) = &self.budget {
            budget.acquire(class).await;
        }
        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(e) => {
                let message = self.scrub(&error_chain(&e.without_url()));
                tracing::debug!(marketplace = %self.code, %method, %path, error = %message, "marketplace call failed");
                return Err(MarketplaceError::Transient { message });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| MarketplaceError::Transient {
                message: self.scrub(&error_chain(&e.without_url())),
            })?;
        tracing::debug!(marketplace = %self.code, %method, %path, status = status.as_u16(), "marketplace call");
        if status.is_success() {
            return Ok(Reply {
                headers,
                body: body.to_vec(),
            });
        }
        let error = self.classify(status, &headers, &body);
        if let (Some(budget), Some(wait)) = (&self.budget, error.retry_after()) {
            budget.rate_limited(class, wait).await;
        }
        Err(error)
    }

    /// The error a call answered with `status`, `headers` and `body` gives
    /// (also used for one failed item of a batch answer).
    pub fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> MarketplaceError {
        let message = self.scrub(&format!(
            "HTTP {}: {}",
            status.as_u16(),
            error_message(body)
        ));
        if status == StatusCode::TOO_MANY_REQUESTS {
            MarketplaceError::RateLimited {
                retry_after: retry_after(headers, Utc::now()),
                message,
            }
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            MarketplaceError::Transient { message }
        } else {
            MarketplaceError::Permanent {
                status: Some(status.as_u16()),
                message,
            }
        }
    }

    fn scrubbed_invalid(&self, message: String) -> MarketplaceError {
        MarketplaceError::invalid(self.scrub(&message))
    }

    /// Removes every credential from a message.
    fn scrub(&self, message: &str) -> String {
        self.secrets
            .iter()
            .fold(message.to_owned(), |acc, secret| acc.replace(secret, "***"))
    }
}

/// An error and its sources ("error sending request: … Connection refused"):
/// reqwest's own Display hides the cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The marketplace's own message from an error body. Covers the three shapes
/// the marketplaces use: Back Market `{"error":{code,message}}`, a bare JSON
/// string (Back Market listing writes), Cloudflare `{"errors":[…]}`, and
/// Refurbed/WooCommerce `{"code","message"}`.
pub(crate) fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(value) => {
            let inner = [&value["error"], &value["errors"][0], &value]
                .into_iter()
                .find(|v| v.get("message").is_some());
            match inner {
                Some(inner) => {
                    let message = inner["message"].as_str().unwrap_or_default();
                    match &inner["code"] {
                        serde_json::Value::Null => message.to_owned(),
                        serde_json::Value::String(code) => format!("{code}: {message}"),
                        code => format!("{code}: {message}"),
                    }
                }
                None => value.to_string(),
            }
        }
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    if text.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text
    }
}

/// How long a 429 asks us to wait: Retry-After (seconds or HTTP date), else
/// Refurbed's X-RateLimit-Reset (unix time), else the documented 10 s.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Duration {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(value) = header(RETRY_AFTER.as_str()) {
        if let Ok(seconds) = value.parse::<f64>()
            && seconds.is_finite()
            && seconds >= 0.0
        {
            return Duration::from_secs_f64(seconds.min(86_400.0));
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(value) {
            return (at.with_timezone(&Utc) - now).to_std().unwrap_or_default();
        }
    }
    if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok())
        && let Some(at) = DateTime::from_timestamp(reset, 0)
    {
        return (at - now).to_std().unwrap_or_default();
    }
    DEFAULT_RETRY_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_reset() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT")]),
                now
            ),
            Duration::from_secs(30)
        );
        let reset = (now.timestamp() + 12).to_string();
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", &reset)]), now),
            Duration::from_secs(12)
        );
        assert_eq!(retry_after(&HeaderMap::new(), now), DEFAULT_RETRY_AFTER);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "soon")]), now),
            DEFAULT_RETRY_AFTER
        );
    }

    #[test]
    fn error_messages_from_every_shape() {
        assert_eq!(
            error_message(
                br#"{"error":{"code":"not-found","message":"No order"},"requestId":"r"}"#
            ),
            "not-found: No order"
        );
        assert_eq!(
            error_message(br#""parameter catalog not found""#),
            "parameter catalog not found"
        );
        assert_eq!(
            error_message(br#"{"errors":[{"code":"bot-need-challenge","message":"Forbidden"}]}"#),
            "bot-need-challenge: Forbidden"
        );
        assert_eq!(
            error_message(br#"{"code":5,"message":"order not found","details":[]}"#),
            "5: order not found"
        );
        assert_eq!(
            error_message(
                br#"{"code":"rest_no_route","message":"No route","data":{"status":404}}"#
            ),
            "rest_no_route: No route"
        );
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(b""), "(empty body)");
        assert!(
            error_message("x".repeat(1000).as_bytes()).chars().count() <= MAX_MESSAGE_CHARS + 1
        );
    }
}
