//! What every page shares: the head (a viewport meta, the style), the
//! navigation between the pages, and how a time is written. Tables scroll
//! inside themselves, so a page reads at 400 px.

use axum::http::StatusCode;
use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1rem;color:#222;max-width:100%}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
nav{margin-bottom:.6rem}nav a,nav b{margin-right:.8rem}
table{border-collapse:collapse;margin:.3rem 0;display:block;overflow-x:auto;max-width:100%}
td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left;white-space:nowrap}
th{background:#f4f4f4}.bad{color:#b00020;font-weight:600}.ok{color:#1b5e20}.num{text-align:right}
.totals span{display:inline-block;margin-right:1.4rem}form.inline{display:inline}
form label{display:inline-block;margin:.15rem .6rem .15rem 0}
.badge{padding:.05rem .4rem;border-radius:.6rem;font-size:.85em}
.locked{background:#fff3cd}.consumed{background:#d1e7dd}.released{background:#e2e3e5}
.pending{background:#cfe2ff}.done{background:#d1e7dd}.failed{background:#f8d7da}";

/// The pages in the navigation bar: (path, label).
const PAGES: [(&str, &str); 4] = [
    ("/", "Overview"),
    ("/orders", "Orders"),
    ("/locks", "Locks"),
    ("/stock", "Stock"),
];

/// A whole page: `title` in the head, the navigation (the current page in
/// bold), then `body`.
pub(in crate::api) fn page(title: &str, current: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · stockfleet" }
                    style { (maud::PreEscaped(STYLE)) }
                }
                body {
                    nav {
                        @for (path, label) in PAGES {
                            @if path == current { b { (label) } } @else { a href=(path) { (label) } }
                        }
                    }
                    (body)
                }
            }
        }
        .into_string(),
    )
}

/// A lock's or change's state as a coloured badge.
pub(in crate::api) fn badge(state: &str) -> Markup {
    html! { span.badge.(state) { (state) } }
}

pub(in crate::api) fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "–".into())
}

/// A refusal or failure as a small page of its own, with its status.
pub(in crate::api) fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = maud::html! {
        h1 { (title) }
        p { (message) }
    };
    page(&title, "", body)
}
