//! Who is calling: a bearer token, or for reads only the dashboard's cookie.
//! The cookie is never accepted for writes, so a page elsewhere cannot make
//! a signed-in browser change anything (no CSRF surface).

use super::{Api, ApiError};
use crate::admin::tokens::{self, Caller, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

/// The dashboard's cookie, holding the token the operator signed in with.
pub(super) const COOKIE: &str = "stockfleet_token";

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        let token = bearer(&parts.headers)
            .or_else(|| reading.then(|| cookie(&parts.headers)).flatten())
            .ok_or(ApiError::Unauthenticated)?;
        tokens::authenticate(&api.db, token)
            .await?
            .ok_or(ApiError::Unauthenticated)
    }
}

/// The proof a dashboard form carries that it was rendered for this
/// session: a digest of the signed-in token, which a page elsewhere cannot
/// read, so it cannot forge the form.
pub(super) fn form_proof(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("stockfleet form:{token}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The caller of a dashboard form: its cookie's token, if the form's
/// `proof` was made from that token ([`form_proof`]).
pub(super) async fn form_caller(
    api: &Api,
    headers: &HeaderMap,
    proof: &str,
) -> Result<Caller, ApiError> {
    let token = cookie(headers).ok_or(ApiError::Unauthenticated)?;
    if form_proof(token) != proof {
        return Err(ApiError::Unauthenticated);
    }
    tokens::authenticate(&api.db, token)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

/// Refuses a caller whose role is below `role`.
pub(super) fn require(caller: &Caller, role: Role) -> Result<(), ApiError> {
    if caller.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden(role))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(super) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, token)| token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_token_is_read_from_the_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer sft_x"),
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; stockfleet_token=sft_y"),
        );
        assert_eq!(bearer(&headers), Some("sft_x"));
        assert_eq!(cookie(&headers), Some("sft_y"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
