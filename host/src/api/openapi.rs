//! The OpenAPI document: its fixed parts (info, the bearer scheme), the responses every
//! authenticated route shares, and the `/openapi.json` route. Each operation is described on its
//! handler, next to the code it documents.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

use super::ErrorBody;

/// The serialized document, built once when the router is.
pub(crate) struct Document(pub String);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "Durable queues that run WebAssembly components as consumers. Errors are \
            `{\"error\": {\"code\", \"message\"}}`; every route but `/healthz`, `/readyz` and \
            `/openapi.json` needs `Authorization: Bearer TOKEN`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document"),
        (name = "queues", description = "Queues, their settings and live stats"),
        (name = "messages", description = "Enqueue and peek"),
        (name = "functions", description = "Components, versions, triggers and invocations"),
        (name = "tokens", description = "API tokens and their scopes"),
        (name = "kv", description = "Key-value buckets handlers keep state in, and their keys"),
    )
)]
struct Base;

/// The document before any route is added.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// Adds the bearer scheme, makes it the default, and adds to every operation the answers the
/// HTTP layer (414) and, where it needs one, the authentication middleware (401, 403) give
/// before any handler runs.
pub(crate) fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            // The HTTP layer refuses an over-long request target on every route, before any
            // handler runs.
            add_error(
                operation,
                "414",
                "The request target (path and query) is longer than `--max-uri-bytes`",
            );
            // Operations that declare their own security (`security(())`) are open.
            if operation.security.is_some() {
                continue;
            }
            add_error(
                operation,
                "401",
                "Missing or invalid token (with `WWW-Authenticate: Bearer`)",
            );
            add_error(
                operation,
                "403",
                "The token lacks the scope this route needs",
            );
        }
    }
    doc
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert(response.into());
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI document of this API",
        body = Object, content_type = "application/json")))]
pub(crate) async fn serve(Extension(doc): Extension<Arc<Document>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.clone())
}
