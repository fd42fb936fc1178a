//! Queue routes: create, list, show (settings and live stats), change, delete, purge, redrive,
//! and the queues' series (one queue's, or many in one request).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use super::model::{QueueInfo, QueueSettings};
use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json, parse_optional_json};
use crate::series::Sample;

/// The body of `POST /v1/queues`: `name` and any of `QueueSettings` (the rest take their
/// defaults). Only documents the body, which `create` reads by hand so unknown settings are
/// refused by name; its schema is `QueueSettings`'s with `name` added, so the two cannot drift.
struct CreateQueue;

impl utoipa::PartialSchema for CreateQueue {
    fn schema() -> RefOr<Schema> {
        let mut schema = QueueSettings::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let name = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("1 to 80 characters of `A-Z a-z 0-9 _ -`"))
                .build();
            object.properties.insert("name".into(), name.into());
            object.required.insert(0, "name".into());
            object.description = Some("A queue's name and any of its settings".into());
        }
        schema
    }
}

impl ToSchema for CreateQueue {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <QueueSettings as ToSchema>::schemas(schemas);
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueueList {
    queues: Vec<QueueInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct Purged {
    /// How many messages were deleted.
    purged: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Redriven {
    /// How many messages were moved.
    moved: u64,
}

/// Create a queue.
#[utoipa::path(post, path = "/v1/queues", tag = "queues",
    request_body(content = CreateQueue, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = QueueInfo),
        (status = 400, description = "Invalid JSON, name or settings", body = ErrorBody),
        (status = 409, description = "A queue of that name exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<QueueInfo>), ApiError> {
    let body = body.map_err(body_error)?;
    let mut fields: serde_json::Map<String, Value> = parse_json(&body)?;
    let name = match fields.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(ApiError::BadRequest("`name` must be a string".into())),
        None => {
            return Err(ApiError::BadRequest(
                "missing `name`: the queue's name".into(),
            ));
        }
    };
    let settings = settings_from(Value::Object(fields))?;
    let settings = settings.into_store(Default::default())?;
    let info = state.store.create_queue(&name, settings).await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// List queues with their settings and live stats.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "Every queue", body = QueueList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let queues = state.store.list_queues().await?;
    Ok(Json(QueueList {
        queues: queues.into_iter().map(QueueInfo::from).collect(),
    }))
}

/// Show a queue: settings and live stats.
#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    responses(
        (status = 200, description = "The queue", body = QueueInfo),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.store.get_queue(&queue).await?.into()))
}

/// Change a queue: only the settings named in the body (a JSON merge patch of the current
/// settings; `null` clears `dead_letter_queue`).
#[utoipa::path(patch, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = QueueSettings, content_type = "application/json"),
    responses(
        (status = 200, description = "The changed queue", body = QueueInfo),
        (status = 400, description = "Invalid JSON or settings", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "The change conflicts with another queue", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<QueueInfo>, ApiError> {
    let body = body.map_err(body_error)?;
    let patch: Value = parse_json(&body)?;
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object of settings".into(),
        ));
    }
    let current = state.store.get_queue(&queue).await?.settings;
    // What other front ends keep with the queue (SQS tags, policy) survives an API change.
    let extensions = current.extensions.clone();
    let mut merged = serde_json::to_value(QueueSettings::from(current))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    merge(&mut merged, patch);
    let settings = settings_from(merged)?.into_store(extensions)?;
    let info = state.store.update_queue(&queue, settings).await?;
    state.dispatcher.refresh_queue(&queue).await;
    Ok(Json(info.into()))
}

/// Delete a queue and its messages. A deep queue's messages are deleted in chunks, each its
/// own commit, so other queues are not held up; the queue goes with the last chunk.
#[utoipa::path(delete, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "A trigger or another queue still uses it", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> Result<StatusCode, ApiError> {
    state.store.delete_queue(&queue).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete every message the queue holds when the purge begins (in flight too), in chunks that
/// each commit on their own, so other queues' writes are not held up. Messages enqueued while it
/// runs are kept.
#[utoipa::path(post, path = "/v1/queues/{queue}/purge", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    responses(
        (status = 200, description = "Purged", body = Purged),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn purge(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> Result<Json<Purged>, ApiError> {
    let purged = state.store.purge(&queue).await?;
    Ok(Json(Purged { purged }))
}

/// The most messages one redrive request may name.
const MAX_REDRIVE_IDS: usize = 1000;

/// The optional body of a redrive.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    /// Move to this queue instead of each message's source queue.
    to: Option<String>,
    /// Move at most this many.
    limit: Option<u64>,
    /// Move only these messages (ids as `peek` shows them, at most 1000); the others stay.
    ids: Option<Vec<String>>,
}

/// Move a dead-letter queue's messages back to their source queues (or `to`), attempts reset.
#[utoipa::path(post, path = "/v1/queues/{queue}/redrive", tag = "queues",
    params(("queue" = String, Path, description = "The dead-letter queue", example = "fuzz-dlq")),
    request_body(content = Option<RedriveRequest>, content_type = "application/json",
        description = "Optional; an empty body moves everything to its source"),
    responses(
        (status = 200, description = "Moved", body = Redriven),
        (status = 400, description = "Invalid JSON or path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn redrive(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Redriven>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: RedriveRequest = parse_optional_json(&body)?;
    let moved = match request.ids {
        Some(ids) => {
            if request.limit.is_some() {
                return Err(ApiError::BadRequest(
                    "give `ids` or `limit`, not both".into(),
                ));
            }
            // One commit moves them all: keep it short, like the chunks of a whole redrive.
            if ids.len() > MAX_REDRIVE_IDS {
                return Err(ApiError::BadRequest(format!(
                    "at most {MAX_REDRIVE_IDS} `ids` per request"
                )));
            }
            state
                .store
                .redrive_messages(&queue, request.to.as_deref(), ids)
                .await?
        }
        None => {
            state
                .store
                .redrive(&queue, request.to.as_deref(), request.limit)
                .await?
        }
    };
    Ok(Json(Redriven { moved }))
}

fn settings_from(value: Value) -> Result<QueueSettings, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid queue settings: {e}")))
}

/// JSON merge patch (RFC 7386): objects merge recursively, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.insert(key, Value::Null);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patches_nested_objects_and_replaces_scalars() {
        let mut target = json!({"a": 1, "backoff": {"initial_ms": 10, "jitter": true}, "dlq": "x"});
        merge(
            &mut target,
            json!({"a": 2, "backoff": {"initial_ms": 5}, "dlq": null}),
        );
        assert_eq!(
            target,
            json!({"a": 2, "backoff": {"initial_ms": 5, "jitter": true}, "dlq": null})
        );
    }
}

/// The last hour of a queue's stats, oldest first.
#[derive(Serialize, ToSchema)]
pub struct QueueSeries {
    /// How often samples are taken.
    interval_ms: u64,
    /// Oldest first; the last one is the queue right now.
    samples: Vec<Sample>,
}

/// A queue's depth, in flight, delayed, oldest age and enqueue, ack and dead-letter rates over
/// the last hour, as the console charts them.
#[utoipa::path(get, path = "/v1/queues/{queue}/series", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    responses(
        (status = 200, description = "The samples", body = QueueSeries),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn series(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> Result<Json<QueueSeries>, ApiError> {
    let info = state.store.get_queue(&queue).await?;
    let samples = state
        .series
        .get(&queue, Some((state.store.now_ms(), &info.stats)));
    Ok(Json(QueueSeries {
        interval_ms: u64::try_from(state.series.interval().as_millis()).unwrap_or(u64::MAX),
        samples,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Comma-separated queue names; every queue when absent. Names of queues that do not
    /// exist (deleted a moment ago, say) are left out of the answer.
    #[param(example = "orders,emails")]
    queues: Option<String>,
    /// Only each queue's most recent samples, the live one included (1: depth and rates right
    /// now). Absent: the whole hour.
    #[param(minimum = 1)]
    last: Option<usize>,
}

/// Many queues' series at once, by queue name.
#[derive(Serialize, ToSchema)]
pub struct QueuesSeries {
    /// How often samples are taken.
    interval_ms: u64,
    /// Each queue's samples, oldest first; the last one is the queue right now.
    queues: std::collections::BTreeMap<String, Vec<Sample>>,
}

/// Several queues' series in one request (the console's queue list asks for its page's
/// queues every refresh): as `/v1/queues/{queue}/series` gives one queue's, with `last` to
/// send only the most recent samples.
#[utoipa::path(get, path = "/v1/series", tag = "queues",
    params(SeriesQuery),
    responses(
        (status = 200, description = "The samples, by queue", body = QueuesSeries),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn series_many(
    State(state): State<AppState>,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<QueuesSeries>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let wanted: Option<Vec<&str>> = query.queues.as_deref().map(|names| {
        names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect()
    });
    if query.last == Some(0) {
        return Err(ApiError::BadRequest(
            "`last` must be at least 1 (1 is the live sample alone)".into(),
        ));
    }
    // One read of every queue's live stats serves every series asked for.
    let now = state.store.now_ms();
    let queues = state
        .store
        .list_queues()
        .await?
        .into_iter()
        .filter(|q| wanted.as_ref().is_none_or(|w| w.contains(&q.name.as_str())))
        .map(|q| {
            let mut samples = state.series.get(&q.name, Some((now, &q.stats)));
            if let Some(last) = query.last {
                samples.drain(..samples.len().saturating_sub(last));
            }
            (q.name, samples)
        })
        .collect();
    Ok(Json(QueuesSeries {
        interval_ms: u64::try_from(state.series.interval().as_millis()).unwrap_or(u64::MAX),
        queues,
    }))
}
