//! Server-rendered pages beyond the overview, one file each, readable
//! without JavaScript and laid out by [`layout`]: [`orders`] (`/orders`),
//! [`order`] (`/orders/{marketplace}/{order_id}`, with the operators'
//! status-change form), [`locks`] (`/locks`) and [`stock`] (`/stock`, and
//! `/stock/{sku}`: one listing). Signed in with the dashboard's cookie; a
//! refusal is answered as a page, not JSON.

pub(super) mod layout;
mod locks;
mod order;
mod orders;
mod stock;

use super::{Api, ApiError};
use crate::domain::input::Invalid;
use crate::domain::listing::{self, Window};
use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};

pub(super) fn router() -> Router<Api> {
    Router::new()
        .route("/orders", get(orders::page))
        .route(
            "/orders/{marketplace}/{order_id}",
            get(order::page).post(order::change_status),
        )
        .route("/locks", get(locks::page))
        .route("/stock", get(stock::list))
        .route("/stock/{sku}", get(stock::listing))
}

/// A page's answer to a failure: to the sign-in page when there is no
/// valid token, else the error as a small page with its status.
pub(super) fn refusal(error: ApiError) -> Response {
    if matches!(error, ApiError::Unauthenticated) {
        return Redirect::to("/login").into_response();
    }
    let status = error.status();
    let message = match &error {
        ApiError::Internal(_) => "internal error; the api's log has the details".to_owned(),
        other => other.to_string(),
    };
    if let ApiError::Internal(cause) = &error {
        tracing::error!(error = format!("{cause:#}"), "page failed");
    }
    (status, layout::error_page(status, &message)).into_response()
}

/// `?name=value&…` of the non-empty pairs, percent-encoded.
pub(super) fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

/// "first–last of total" and the links to the previous and next pages;
/// `link(offset)` is the same page from another offset.
fn pager(total: i64, shown: usize, window: Window, link: impl Fn(i64) -> String) -> Markup {
    let first = (window.offset + 1).min(total);
    let last = (window.offset + shown as i64).min(total);
    let previous = (window.offset > 0).then(|| (window.offset - window.limit).max(0));
    let next = (window.offset + window.limit < total).then_some(window.offset + window.limit);
    html! {
        p.pager {
            @if total > 0 { (first) "–" (last) " of " } (total) " "
            @if let Some(offset) = previous { a href=(link(offset)) { "← previous" } " " }
            @if let Some(offset) = next { a href=(link(offset)) { "next →" } }
        }
    }
}

/// A filter form's marketplace choice: any, or one the caller sees.
pub(super) fn marketplace_choice(codes: &[String], chosen: Option<&str>) -> Markup {
    html! {
        label { "marketplace "
            select name="marketplace" {
                option value="" { "any" }
                @for code in codes {
                    option value=(code) selected[chosen == Some(code.as_str())] { (code) }
                }
            }
        }
    }
}

/// A filter form's SKU field: part of a SKU, any case.
pub(super) fn sku_field(value: Option<&str>) -> Markup {
    html! {
        label { "SKU " input name="sku" value=(value.unwrap_or_default()) placeholder="part of a SKU"; }
    }
}

/// A number typed in a form: empty is none, anything else must be a whole number.
fn number(field: &str, text: &Option<String>) -> Result<Option<i64>, Invalid> {
    match listing::given(text) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| Invalid::new(field, format!("{text:?} is not a whole number"))),
    }
}

/// What a path segment keeps as is: letters, digits and `-._~` (RFC 3986's unreserved).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded (order ids and SKUs are the marketplace's).
pub(super) fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_only_the_filters_given_and_encode_them() {
        assert_eq!(query_string(&[("a", None), ("b", Some(""))]), "");
        assert_eq!(
            query_string(&[("search", Some("A&B 1")), ("sort", Some("total"))]),
            "?search=A%26B+1&sort=total"
        );
        assert_eq!(segment("A-1/2 x"), "A-1%2F2%20x");
    }
}
