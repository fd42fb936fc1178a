//! The HTTP API: one `router(state)` and one file per resource. Handlers translate HTTP to
//! calls on the store and the function registry; `ApiError` turns their failures into statuses.

mod error;
mod functions;
mod messages;
mod openapi;
mod queues;
mod tokens;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};

use crate::auth::Authorizer;
use crate::config::ApiLimits;
use crate::dispatch::Dispatcher;
use crate::functions::Functions;
use crate::store::Store;

/// What every request handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub functions: Functions,
    pub dispatcher: Dispatcher,
    pub auth: Authorizer,
    pub limits: Arc<ApiLimits>,
    pub metrics: PrometheusHandle,
}

/// The whole API, with its OpenAPI document served at `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let limits = state.limits.clone();
    let (router, document) = routes(&limits).split_for_parts();
    let document = openapi::finish(document);
    let document = Arc::new(openapi::Document(
        document.to_json().expect("the OpenAPI document serializes"),
    ));
    router
        .fallback(not_found)
        .layer(Extension(document))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tokens::authenticate,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The API's OpenAPI document, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(routes(&ApiLimits::default()).into_openapi())
}

/// Every route, each declared with its documentation (`#[utoipa::path]` on the handler), so the
/// document cannot drift from what is served.
fn routes(limits: &ApiLimits) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::serve))
        .routes(routes!(queues::create, queues::list))
        .routes(routes!(queues::show, queues::update, queues::delete))
        .routes(routes!(messages::enqueue_one, messages::peek))
        .routes(routes!(messages::enqueue_batch))
        .routes(routes!(queues::purge))
        .routes(routes!(queues::redrive))
        .routes(routes!(functions::list))
        // Uploads alone may be as large as a component.
        .routes(routes!(functions::upload).layer(DefaultBodyLimit::max(limits.max_function_bytes)))
        .routes(routes!(functions::show, functions::delete))
        .routes(routes!(functions::rollback))
        .routes(routes!(functions::invoke))
        .routes(routes!(functions::put_trigger, functions::delete_trigger))
        .routes(routes!(functions::invocations))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The server is up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "The store is open", body = String, content_type = "text/plain"),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    // A cheap read proves the database answers; queue stats would count every row.
    state.store.list_triggers().await?;
    Ok("ready")
}

/// Prometheus text. Queue depths are read at scrape time, so they are never stale.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.list_queues().await {
        Ok(queues) => {
            for queue in queues {
                let stats = &queue.stats;
                let name = queue.name;
                metrics::gauge!("sluice_queue_visible", "queue" => name.clone())
                    .set(stats.visible as f64);
                metrics::gauge!("sluice_queue_delayed", "queue" => name.clone())
                    .set(stats.delayed as f64);
                metrics::gauge!("sluice_queue_in_flight", "queue" => name.clone())
                    .set(stats.in_flight as f64);
                let age = stats.oldest_age_ms.unwrap_or(0) as f64 / 1000.0;
                metrics::gauge!("sluice_queue_oldest_age_seconds", "queue" => name).set(age);
            }
        }
        Err(err) => tracing::warn!(%err, "queue depths left out of /metrics"),
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// A path segment (a queue, function or token name), refused with our error shape when it is
/// not valid UTF-8 once percent-decoded, rather than with axum's plain-text rejection.
pub(crate) struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(segment) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))?;
        Ok(Segment(segment))
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /openapi.json for the API".into())
}

/// Reads a request body that must be JSON, with a useful error when it is not.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads an optional JSON body: an empty (or blank) body means all defaults.
pub(crate) fn parse_optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// Turns axum's body-reading failure (usually the size limit) into our error shape.
pub(crate) fn body_error(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("request body too large: {}", rejection.body_text()))
    } else {
        ApiError::BadRequest(format!(
            "could not read request body: {}",
            rejection.body_text()
        ))
    }
}
