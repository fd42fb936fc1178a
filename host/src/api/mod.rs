//! The HTTP API: one `router(state)` and one file per resource. Handlers translate HTTP to
//! calls on the store and the function registry; `ApiError` turns their failures into statuses.

mod body;
mod error;
mod functions;
mod invocations;
mod kv;
mod messages;
pub mod model;
mod openapi;
mod pull;
mod queues;
mod replies;
mod schedules;
mod tokens;
mod topics;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use body::{BodyError, BodyGuard, Routes, human_bytes, read_to_bytes};
pub use error::{ApiError, ErrorBody};

use crate::auth::Authorizer;
use crate::config::ApiLimits;
use crate::dispatch::Dispatcher;
use crate::functions::Functions;
use crate::series::Series;
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
    /// The last hour of every queue's stats.
    pub series: Series,
    /// Cancelled when the server shuts down: long-lived responses (event streams) end then.
    pub shutdown: CancellationToken,
}

/// The whole API, with its OpenAPI document served at `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let limits = state.limits.clone();
    let (router, document) = routes().split_for_parts();
    let document = openapi::finish(document);
    let document = Arc::new(openapi::Document(
        document.to_json().expect("the OpenAPI document serializes"),
    ));
    router
        .merge(crate::console::router())
        .fallback(not_found)
        .layer(Extension(document))
        // Bodies are limited, budgeted and timed by the HTTP front door (`body::BodyGuard`) as
        // they are read; authentication reads none, so a client without a token spends none
        // of the budget.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tokens::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(limits, json_errors))
        // The span names the path, not the query: an upload's query carries secret `env`
        // values, which must not reach the logs.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            },
        ))
        .with_state(state)
}

/// The API's OpenAPI document, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(routes().into_openapi())
}

/// Every route, each declared with its documentation (`#[utoipa::path]` on the handler), so the
/// document cannot drift from what is served.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::serve))
        .routes(routes!(queues::create, queues::list))
        .routes(routes!(queues::show, queues::update, queues::delete))
        .routes(routes!(messages::enqueue_one, messages::peek))
        .routes(routes!(messages::enqueue_batch))
        .routes(routes!(messages::delete_one))
        .routes(routes!(messages::dead_letter_reasons))
        .routes(routes!(replies::show))
        .routes(routes!(pull::receive))
        .routes(routes!(pull::ack))
        .routes(routes!(pull::retry))
        .routes(routes!(pull::dead_letter))
        .routes(routes!(pull::extend))
        .routes(routes!(queues::purge))
        .routes(routes!(queues::redrive))
        .routes(routes!(queues::series))
        .routes(routes!(queues::series_many))
        .routes(routes!(functions::list))
        .routes(routes!(functions::upload))
        .routes(routes!(functions::show, functions::delete))
        .routes(routes!(functions::rollback))
        .routes(routes!(functions::invoke))
        .routes(routes!(functions::put_trigger, functions::delete_trigger))
        .routes(routes!(invocations::list))
        .routes(routes!(invocations::stream))
        .routes(routes!(invocations::stats))
        .routes(routes!(schedules::list))
        .routes(routes!(schedules::put, schedules::show, schedules::delete))
        .routes(routes!(topics::create, topics::list))
        .routes(routes!(topics::show, topics::delete))
        .routes(routes!(topics::subscribe, topics::unsubscribe))
        .routes(routes!(topics::publish_one))
        .routes(routes!(topics::publish_batch))
        .routes(routes!(kv::list_buckets))
        .routes(routes!(kv::put_bucket, kv::get_bucket, kv::delete_bucket))
        .routes(routes!(kv::list_keys))
        .routes(routes!(kv::get_key, kv::put_key, kv::delete_key))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::whoami))
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
    // Commits of this host's store: beside the messages enqueued and settled, how well group
    // commit folds requests together.
    metrics::counter!("sluice_store_commits_total").absolute(state.store.commits());
    let text = state.metrics.render();
    (
        [("content-type", "text/plain; version=0.0.4")],
        without_deleted_queues(&text, |queue| state.store.queue_exists(queue)),
    )
}

/// The recorder keeps every series it has seen; samples labelled with a queue that no longer
/// exists are left out, so a deleted queue leaves `/metrics` with its last scrape.
fn without_deleted_queues(text: &str, exists: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let queue = (!line.starts_with('#'))
            .then(|| line.split_once('{'))
            .flatten()
            .and_then(|(_, labels)| {
                labels
                    .split_once("queue=\"")
                    .filter(|(before, _)| before.is_empty() || before.ends_with(','))
            })
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(queue, _)| queue);
        if queue.is_none_or(&exists) {
            out.push_str(line);
        }
    }
    out
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

/// Turns a failure to read the body into our error shape: the body guard's refusals (size,
/// budget, deadline) keep their status and message.
pub(crate) fn body_error(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if let Some(refusal) = BodyError::behind(&rejection) {
        return refusal.into();
    }
    ApiError::BadRequest(format!(
        "could not read request body: {}",
        rejection.body_text()
    ))
}

/// Every answer that is an error carries the JSON error body, including those that come from
/// axum rather than a handler (405 has none); and request targets past the limit get 414.
async fn json_errors(
    State(limits): State<Arc<ApiLimits>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |t| t.as_str().len());
    if target > limits.max_uri_bytes {
        return ApiError::UriTooLong(format!(
            "the request target is {target} bytes, longer than the {} the server accepts; \
             shorten the path and query, or start the server with a higher \
             `sluice serve --max-uri-bytes BYTES`",
            limits.max_uri_bytes
        ))
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Such bodies are axum's short plain-text rejections, when there is one at all.
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(axum::http::header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("see /openapi.json");
            format!("this route does not take this method; it takes: {allowed}")
        }
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    let mut fixed = ApiError::for_status(status, message).into_response();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    for (name, value) in fixed.headers() {
        parts.headers.insert(name, value.clone());
    }
    *fixed.headers_mut() = parts.headers;
    *fixed.status_mut() = status;
    fixed
}

#[cfg(test)]
mod tests {
    use super::without_deleted_queues;

    #[test]
    fn samples_of_deleted_queues_are_left_out() {
        let text = "# TYPE sluice_enqueued_total counter\n\
            sluice_enqueued_total{queue=\"gone\"} 3\n\
            sluice_enqueued_total{queue=\"kept\"} 4\n\
            sluice_invocations_total{function=\"f\",outcome=\"ok\"} 1\n\
            sluice_x{function=\"f\",queue=\"gone\"} 1\n\
            sluice_y{subqueue=\"gone\"} 1\n";
        let kept = without_deleted_queues(text, |q| q == "kept");
        assert_eq!(
            kept,
            "# TYPE sluice_enqueued_total counter\n\
            sluice_enqueued_total{queue=\"kept\"} 4\n\
            sluice_invocations_total{function=\"f\",outcome=\"ok\"} 1\n\
            sluice_y{subqueue=\"gone\"} 1\n"
        );
    }
}
