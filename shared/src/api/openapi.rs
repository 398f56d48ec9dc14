//! The OpenAPI 3.1 document, generated from the handlers' own annotations
//! (`#[utoipa::path]`) and types (`ToSchema`, `IntoParams`).
//!
//! Each route module returns an [`OpenApiRouter`]; registering a handler with
//! `routes!(handler)` both routes it and documents it, so the document cannot
//! list a route the API lacks, nor miss one registered that way. To add a
//! module: annotate its handlers, return `OpenApiRouter<Api>` from its
//! `router()`, and merge it in [`documented`].
//!
//! The document is served at `/api/v1/openapi.json` without a token: it holds
//! no data, and a client generator or fuzzer needs it before it has a token.
//! It is checked into docs/openapi.json and kept equal by the test below
//! (regenerate with `UPDATE_OPENAPI=1 cargo test -p stockfleet --lib openapi`).

use super::Api;
use super::error::ErrorBody;
use axum::Json;
use std::sync::LazyLock;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stockfleet",
        description = "The operators' REST API: stock, locks, orders, syncs, queues and dead letters \
                       (docs/api.md). Every call but this document takes `Authorization: Bearer <token>`."
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Every documented route of the API, with the document they make.
pub(super) fn documented() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .merge(super::orders::router())
        .merge(super::sync::router())
        .merge(super::dead_letters::router())
        .merge(super::ops::router())
        .merge(super::pauses::router())
        .merge(super::routes::router())
        .merge(super::pools::router())
}

/// The routes and the finished document.
pub(super) fn split() -> (axum::Router<Api>, utoipa::openapi::OpenApi) {
    let (router, mut document) = documented().split_for_parts();
    finish(&mut document);
    (router, document)
}

/// The document as the API serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    split().1
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(document);

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}

/// The bearer scheme as the default of every operation, and the refusals
/// any operation may answer (the edge's, the extractors' and the roles').
fn finish(document: &mut utoipa::openapi::OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("a token from `stockfleet token create`"))
                .build(),
        ),
    );
    document.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_refusals(operation);
        }
    }
}

const REFUSALS: [(&str, &str); 8] = [
    (
        "400",
        "bytes no field can hold (a NUL, invalid UTF-8), or an unknown filter, sort or choice value",
    ),
    ("401", "no valid token"),
    ("403", "the token's role is too small"),
    (
        "404",
        "no such resource (or one outside the token's marketplaces)",
    ),
    ("405", "a method the path does not take"),
    ("413", "a body over 2 MiB"),
    (
        "422",
        "a value out of its bounds, a missing or unknown field",
    ),
    ("503", "the database or broker did not answer within 30 s"),
];

fn add_refusals(operation: &mut Operation) {
    let public = operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.iter().all(is_anonymous));
    for (status, description) in REFUSALS {
        if public && matches!(status, "401" | "403" | "404" | "422") {
            continue;
        }
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
    operation
        .responses
        .responses
        .entry("500".to_owned())
        .or_insert_with(|| error_response("an internal error (the api's log has the cause)"));
}

fn is_anonymous(requirement: &SecurityRequirement) -> bool {
    requirement == &SecurityRequirement::default()
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

    #[test]
    fn the_checked_in_openapi_document_is_what_the_code_generates() {
        let generated = document().to_pretty_json().expect("serialises") + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).expect("write docs/openapi.json");
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json differs from what the handlers generate; regenerate it with \
             `UPDATE_OPENAPI=1 cargo test -p stockfleet --lib openapi` and commit it"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_api_route_is_in_it() {
        let document = document();
        let json = serde_json::to_value(&document).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/api/v1/orders",
            "/api/v1/orders/{marketplace}/{order_id}",
            "/api/v1/sync/runs",
            "/api/v1/dlq",
            "/api/v1/openapi.json",
        ] {
            assert!(document.paths.paths.contains_key(path), "{path} missing");
        }
        let public = &json["paths"]["/api/v1/openapi.json"]["get"];
        assert_eq!(public["security"], serde_json::json!([{}]));
        assert!(public["responses"].get("401").is_none());
    }
}
