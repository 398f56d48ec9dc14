//! The API's edge, before and after any route: a path or query with bytes no
//! field can hold (a NUL, invalid UTF-8) is refused with 400 before a handler
//! sees it; and every refusal the framework makes itself (no such route, a
//! method the route does not take, an oversized body, an extractor's
//! complaint) is answered like the API's own errors: JSON under `/api/` and
//! `/webhooks/` (413 everywhere), a small page elsewhere.

use super::ApiError;
use crate::domain::input::{self, Invalid};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The largest request body any route takes, in bytes.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Refuses a path or query that decodes to a NUL or to invalid UTF-8.
pub(super) async fn refuse_malformed_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let parts = [("path", Some(uri.path())), ("query", uri.query())];
    for (field, part) in parts {
        if let Some(part) = part
            && let Err(invalid) = decoded_text(field, part)
        {
            return ApiError::Malformed(invalid).into_response();
        }
    }
    next.run(request).await
}

/// A percent-encoded URI part, checked as every text field is.
fn decoded_text(field: &str, part: &str) -> Result<(), Invalid> {
    let bytes = part.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(decoded)
        .map_err(|_| Invalid::new(field, "is not valid UTF-8 once percent-decoded"))?;
    input::text(field, &text)
}

/// Gives the framework's own refusals (empty or plain-text bodies) the API's shape.
pub(super) async fn error_bodies(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !status.is_client_error() || is_json || is_html {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND => format!("no such endpoint: {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{method} is not allowed on {path}; allowed: {}",
            allow
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .unwrap_or("none")
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than the {BODY_LIMIT} bytes this endpoint takes")
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("refused").to_owned(),
        _ => text,
    };
    let machine = path.starts_with("/api/") || path.starts_with("/webhooks/");
    let mut answer = if machine || status == StatusCode::PAYLOAD_TOO_LARGE {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (status, super::pages::layout::error_page(status, &message)).into_response()
    };
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoded_nul_and_invalid_utf8_are_refused() {
        assert!(decoded_text("path", "/api/v1/stock/A-1").is_ok());
        assert!(decoded_text("path", "/api/v1/stock/%2500").is_ok());
        assert!(decoded_text("path", "/api/v1/stock/%C3%A9").is_ok());
        assert_eq!(
            decoded_text("path", "/api/v1/stock/%00x")
                .unwrap_err()
                .field,
            "path"
        );
        assert!(decoded_text("query", "sku=%ff").is_err());
        assert!(decoded_text("query", "sku=%").is_ok());
    }

    proptest::proptest! {
        /// Any path or query decodes without a panic; a NUL is always refused.
        #[test]
        fn any_uri_part_is_checked_without_panic(part in "[%0-9a-fA-F/?=&x\\u{0}-\\u{ff}]{0,40}") {
            let result = decoded_text("path", &part);
            if part.contains("%00") {
                proptest::prop_assert!(result.is_err());
            }
        }
    }
}
