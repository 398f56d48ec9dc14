//! Each marketplace's authentication, with its documented refusals: Back
//! Market's token (and Cloudflare's 403 without a User-Agent), Refurbed's
//! token, WooCommerce's OAuth 1.0a or Basic auth and its permission checks.

use crate::state::Marketplace;
use crate::{Sim, api_error, oauth, php_input};
use axum::extract::{OriginalUri, Request};
use axum::http::header::{AUTHORIZATION, HOST, USER_AGENT, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Each marketplace's auth, with its documented 401 bodies.
pub(crate) fn authenticate(mp: Marketplace, sim: &Sim, request: &Request) -> Result<(), Response> {
    let credentials = &sim.credentials;
    let headers = request.headers();
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let unauthorized = |code, message| api_error(mp, StatusCode::UNAUTHORIZED, code, message);
    match mp {
        Marketplace::BackMarket => {
            if authorization != format!("Basic {}", credentials.backmarket_token) {
                return Err(unauthorized("unauthorized", "Invalid or missing token"));
            }
            if !headers.contains_key(USER_AGENT) {
                // What Cloudflare answers in front of Back Market.
                let body = serde_json::json!({"errors": [{"code": "bot-need-challenge", "message": "Forbidden"}]});
                return Err((StatusCode::FORBIDDEN, axum::Json(body)).into_response());
            }
        }
        Marketplace::Refurbed => {
            if authorization != format!("Plain {}", credentials.refurbed_token) {
                return Err(unauthorized("unauthenticated", "invalid or missing token"));
            }
        }
        Marketplace::WooCommerce => woo_authenticate(sim, request, authorization)?,
    }
    Ok(())
}

/// WooCommerce: OAuth 1.0a when the query carries oauth_* parameters, else
/// Basic auth or `consumer_key`/`consumer_secret` in the query (which
/// WooCommerce takes over HTTPS only; the simulator takes it on plain HTTP).
/// No or an unknown key is an anonymous visitor: refused reading or writing.
fn woo_authenticate(sim: &Sim, request: &Request, authorization: &str) -> Result<(), Response> {
    let credentials = &sim.credentials;
    let unauthorized = |code, message: &str| {
        api_error(
            Marketplace::WooCommerce,
            StatusCode::UNAUTHORIZED,
            code,
            message,
        )
    };
    let uri = original_uri(request);
    // As PHP reads it into $_GET, which WooCommerce signs and serves from.
    let query = php_input::query_pairs(uri.query().unwrap_or_default());
    if oauth::is_oauth(&query) {
        let host = request
            .headers()
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let signed = oauth::SignedRequest {
            method: request.method().as_str(),
            base_uri: format!("http://{host}{}", uri.path()),
            query,
            now: chrono::Utc::now().timestamp(),
        };
        return oauth::verify(
            &signed,
            &credentials.woocommerce_key,
            &credentials.woocommerce_secret,
            &sim.oauth_nonces,
        )
        .map_err(|(code, message)| unauthorized(code, &message));
    }
    let (key, secret) = woo_credentials(authorization, &query);
    if key.as_deref() != Some(credentials.woocommerce_key.as_str()) {
        let (code, message) = anonymous_refusal(request.method(), request.uri().path());
        return Err(unauthorized(code, message));
    }
    if secret.as_deref() != Some(credentials.woocommerce_secret.as_str()) {
        let mut response = unauthorized(
            "woocommerce_rest_authentication_error",
            "Consumer secret is invalid.",
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"WooCommerce API. Use a consumer key in the username field and a consumer secret in the password field\""),
        );
        return Err(response);
    }
    Ok(())
}

/// What WooCommerce's permission checks answer a visitor without a valid
/// key: reading a collection (`get_items_permissions_check`) "cannot list",
/// reading one item (`get_item_permissions_check`, routes ending in a
/// numeric id) "cannot view", a batch "cannot batch", other writes "cannot edit".
fn anonymous_refusal(method: &Method, path: &str) -> (&'static str, &'static str) {
    let last_segment = path.trim_end_matches('/').rsplit('/').next();
    let one_item = last_segment.is_some_and(|segment| segment.parse::<u64>().is_ok());
    match *method {
        Method::GET | Method::HEAD if one_item => (
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot view this resource.",
        ),
        Method::GET | Method::HEAD => (
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        ),
        _ if last_segment == Some("batch") => (
            "woocommerce_rest_cannot_batch",
            "Sorry, you are not allowed to batch manipulate this resource.",
        ),
        _ => (
            "woocommerce_rest_cannot_edit",
            "Sorry, you are not allowed to edit this resource.",
        ),
    }
}

/// The URI as the client sent it (before `nest` stripped `/woocommerce`).
fn original_uri(request: &Request) -> Uri {
    request
        .extensions()
        .get::<OriginalUri>()
        .map(|uri| uri.0.clone())
        .unwrap_or_else(|| request.uri().clone())
}

/// The consumer key and secret from Basic auth, else from the query string.
fn woo_credentials(
    authorization: &str,
    query: &[(String, String)],
) -> (Option<String>, Option<String>) {
    let basic = authorization
        .strip_prefix("Basic ")
        .and_then(|encoded| BASE64.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    if let Some((key, secret)) = basic.as_deref().and_then(|pair| pair.split_once(':')) {
        return (Some(key.to_owned()), Some(secret.to_owned()));
    }
    let find = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    (find("consumer_key"), find("consumer_secret"))
}
