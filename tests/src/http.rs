//! HTTP from a test: JSON and text GETs, readiness probes, and a free port
//! for a process that must be told its address before it starts.

use std::time::Duration;

/// GETs `url` (with a bearer token when given) and parses its JSON body.
pub async fn get_json(url: &str, token: Option<&str>) -> serde_json::Value {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answered");
    response.json().await.expect("a JSON body")
}

/// The body of a GET of `url` as text (a `/metrics` page).
pub async fn get_text(url: &str) -> String {
    reqwest::get(url)
        .await
        .and_then(|response| response.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A TCP port free on this machine a moment ago, for a process that must be
/// told its address before it starts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `/readyz`'s status and body, or None when the port does not answer.
pub async fn readiness(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}
