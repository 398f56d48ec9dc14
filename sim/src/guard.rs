//! What stands in front of every marketplace API: the request log, injected
//! faults, the rate limits, then each marketplace's authentication (auth.rs).

use crate::state::{Admission, Marketplace};
use crate::{Sim, api_error, auth};
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
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
    if let Err(rejection) = auth::authenticate(mp, &guard.sim, &request) {
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
        Admission::Outage { until } => api_error(
            mp,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            &format!("simulated outage until {until}"),
        ),
        _ => api_error(
            mp,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "simulated outage",
        ),
    }
}
