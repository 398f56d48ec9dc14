//! What stands in front of every marketplace API: the request log, injected
//! faults, the rate limits, and each marketplace's authentication.

use crate::state::{Admission, Marketplace};
use crate::{Sim, api_error, oauth};
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, HOST, RETRY_AFTER, USER_AGENT, WWW_AUTHENTICATE,
};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::sync::Arc;

/// The header the fleet names its caller kind in (poller, publisher, cli).
const CALLER_HEADER: &str = "x-stockfleet-caller";

#[derive(Clone)]
struct Guard {
    sim: Arc<Sim>,
    mp: Marketplace,
}

pub(crate) fn layer(router: Router<Arc<Sim>>, sim: &Arc<Sim>, mp: Marketplace) -> Router<Arc<Sim>> {
    let guard = Guard {
        sim: sim.clone(),
        mp,
    };
    router.layer(middleware::from_fn_with_state(guard, guard_request))
}

async fn guard_request(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map(|uri| uri.0.to_string())
        .unwrap_or_else(|| request.uri().to_string());
    let listing_path = guard.mp.is_listing_path(request.uri().path());
    let caller = request
        .headers()
        .get(CALLER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let id = guard.sim.lock().begin_request(
        guard.mp,
        request.method().as_str(),
        &path,
        listing_path,
        caller,
    );
    let response = guarded(&guard, request, next).await;
    guard
        .sim
        .lock()
        .finish_request(id, response.status().as_u16());
    response
}

async fn guarded(guard: &Guard, request: Request, next: Next) -> Response {
    let mp = guard.mp;
    let path = request.uri().path();
    let listing_path = mp.is_listing_path(path);
    let quantity_write = mp.is_quantity_write(request.method().as_str(), path);
    let admission = guard.sim.lock().admit(mp, listing_path, quantity_write);
    let Admission::Pass {
        latency,
        answer_delay,
        hang,
        server_error,
        malformed,
        rate_headers,
    } = admission
    else {
        return refusal(mp, admission);
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
        return api_error(
            mp,
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "simulated timeout",
        );
    }
    if server_error {
        return api_error(
            mp,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "simulated server error",
        );
    }
    if let Err(rejection) = authenticate(mp, &guard.sim, &request) {
        return rejection;
    }
    let mut response = next.run(request).await;
    if !answer_delay.is_zero() {
        tokio::time::sleep(answer_delay).await;
    }
    if let Some((limit, remaining, reset)) = rate_headers {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    }
    if malformed && response.status().is_success() {
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from("{\"truncated\": [1, 2"));
    }
    response
}

fn refusal(mp: Marketplace, admission: Admission) -> Response {
    match admission {
        Admission::TooMany { retry_after_secs } => {
            let mut response = api_error(
                mp,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests, slow down",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        _ => api_error(
            mp,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "simulated outage",
        ),
    }
}

/// Each marketplace's auth, with its documented 401 bodies.
fn authenticate(mp: Marketplace, sim: &Sim, request: &Request) -> Result<(), Response> {
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
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
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
        return Err(match *request.method() {
            Method::GET | Method::HEAD => unauthorized(
                "woocommerce_rest_cannot_view",
                "Sorry, you cannot list resources.",
            ),
            _ => unauthorized(
                "woocommerce_rest_cannot_edit",
                "Sorry, you are not allowed to edit this resource.",
            ),
        });
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
