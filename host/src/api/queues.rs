//! Queue routes: create, list, show (settings and live stats), change, delete, purge, redrive.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, body_error, parse_json};
use crate::store::{QueueInfo, QueueSettings};

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
    let info = state.store.create_queue(&name, settings).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let queues = state.store.list_queues().await?;
    Ok(Json(json!({ "queues": queues })))
}

pub async fn show(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.store.get_queue(&queue).await?))
}

/// Changes only the settings named in the body (a JSON merge of the current settings).
pub async fn update(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<QueueInfo>, ApiError> {
    let body = body.map_err(body_error)?;
    let patch: Value = parse_json(&body)?;
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object of settings".into(),
        ));
    }
    let current = state.store.get_queue(&queue).await?;
    let mut merged =
        serde_json::to_value(&current.settings).map_err(|e| ApiError::Internal(e.to_string()))?;
    merge(&mut merged, patch);
    let settings = settings_from(merged)?;
    let info = state.store.update_queue(&queue, settings).await?;
    state.dispatcher.refresh_queue(&queue).await;
    Ok(Json(info))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_queue(&queue).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn purge(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let purged = state.store.purge(&queue).await?;
    Ok(Json(json!({ "purged": purged })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    /// Move to this queue instead of each message's source queue.
    to: Option<String>,
    /// Move at most this many.
    limit: Option<u64>,
}

pub async fn redrive(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: RedriveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RedriveRequest::default()
    } else {
        parse_json(&body)?
    };
    let moved = state
        .store
        .redrive(&queue, request.to.as_deref(), request.limit)
        .await?;
    Ok(Json(json!({ "moved": moved })))
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
