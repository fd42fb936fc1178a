//! The HTTP API: one `router(state)` and one file per resource. Handlers translate HTTP to
//! calls on the store and the function registry; `ApiError` turns their failures into statuses.

mod error;
mod functions;
mod messages;
mod queues;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

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

/// The whole API.
pub fn router(state: AppState) -> Router {
    let limits = state.limits.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/queues", post(queues::create).get(queues::list))
        .route(
            "/v1/queues/{queue}",
            get(queues::show)
                .patch(queues::update)
                .delete(queues::delete),
        )
        .route(
            "/v1/queues/{queue}/messages",
            post(messages::enqueue_one).get(messages::peek),
        )
        .route(
            "/v1/queues/{queue}/messages/batch",
            post(messages::enqueue_batch),
        )
        .route("/v1/queues/{queue}/purge", post(queues::purge))
        .route("/v1/queues/{queue}/redrive", post(queues::redrive))
        .route("/v1/functions", get(functions::list))
        .route(
            "/v1/functions/{name}",
            put(functions::upload)
                .layer(DefaultBodyLimit::max(limits.max_function_bytes))
                .get(functions::show)
                .delete(functions::delete),
        )
        .route("/v1/functions/{name}/rollback", post(functions::rollback))
        .route("/v1/functions/{name}/invoke", post(functions::invoke))
        .route(
            "/v1/functions/{name}/trigger",
            put(functions::put_trigger).delete(functions::delete_trigger),
        )
        .route(
            "/v1/functions/{name}/invocations",
            get(functions::invocations),
        )
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tokens::authenticate,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.list_queues().await?;
    Ok("ready")
}

/// Prometheus text. Queue depths are read at scrape time, so they are never stale.
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

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /openapi.json for the API".into())
}

/// Reads a request body that must be JSON, with a useful error when it is not.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
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
