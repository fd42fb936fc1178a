//! Function routes: upload a component as a new version, list, show, delete, roll back, and
//! invoke the active version on a given batch without committing anything.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, body_error, parse_json};
use crate::dispatch::TriggerStatus;
use crate::functions::{FunctionConfig, InvocationRecord, now_ms};
use crate::store::{FunctionRecord, Message, TriggerRecord};

/// `PUT /v1/functions/{name}?timeout_ms=..&memory_mb=..&env=KEY=VALUE`: body is the component.
pub async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<FunctionRecord>), ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or_default();
        if !(content_type.starts_with("application/wasm")
            || content_type.starts_with("application/octet-stream"))
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "upload the component as `application/wasm`, not `{content_type}`"
            )));
        }
    }
    let body = body.map_err(body_error)?;
    if body.len() > state.limits.max_function_bytes {
        return Err(ApiError::TooLarge(format!(
            "component of {} bytes; at most {} are allowed",
            body.len(),
            state.limits.max_function_bytes
        )));
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "empty body: send the component's bytes".into(),
        ));
    }
    let config = config_from_query(query.as_deref().unwrap_or(""))?;
    let record = state.functions.upload(&name, body.to_vec(), config).await?;
    state.dispatcher.refresh(&name).await;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Reads the function config from the query string; `env` may repeat.
fn config_from_query(query: &str) -> Result<FunctionConfig, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let mut config = FunctionConfig::default();
    let number = |key: &str, value: &str| {
        value.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("`{key}` must be a whole number, got `{value}`"))
        })
    };
    for (key, value) in pairs {
        match key.as_str() {
            "timeout_ms" => config.timeout_ms = number(&key, &value)?,
            "memory_mb" => config.memory_mb = number(&key, &value)?,
            "max_sends" => config.max_sends = number(&key, &value)? as usize,
            "env" => {
                let (name, value) = value.split_once('=').ok_or_else(|| {
                    ApiError::BadRequest(format!("`env` must be NAME=VALUE, got `{value}`"))
                })?;
                config.env.insert(name.to_owned(), value.to_owned());
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter `{other}`; expected timeout_ms, memory_mb, max_sends or env"
                )));
            }
        }
    }
    Ok(config)
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "functions": state.functions.list().await? })))
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state.functions.get(&name).await?;
    let trigger = record.trigger.clone().map(|t| state.dispatcher.status(t));
    let mut value = serde_json::to_value(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["trigger"] =
        serde_json::to_value(trigger).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(value))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.functions.delete(&name).await?;
    state.dispatcher.stop(&name);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    version: Option<u32>,
}

pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FunctionRecord>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        parse_json(&body)?
    };
    let record = state.functions.rollback(&name, request.version).await?;
    state.dispatcher.refresh(&name).await;
    Ok(Json(record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeMessage {
    id: Option<String>,
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
    #[serde(default)]
    attempt: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeRequest {
    /// The queue the messages pretend to come from.
    #[serde(default)]
    queue: Option<String>,
    messages: Vec<InvokeMessage>,
}

/// `POST /v1/functions/{name}/invoke`: a dry run, like `aws lambda invoke`.
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InvocationRecord>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: InvokeRequest = parse_json(&body)?;
    if request.messages.len() > state.limits.max_batch_messages {
        return Err(ApiError::BadRequest(format!(
            "at most {} messages per invocation",
            state.limits.max_batch_messages
        )));
    }
    let queue = request.queue.unwrap_or_else(|| "invoke".to_owned());
    let now = now_ms();
    let batch = request
        .messages
        .into_iter()
        .enumerate()
        .map(|(index, m)| {
            let at = |what: String| ApiError::BadRequest(format!("messages[{index}]: {what}"));
            let body = match (m.body, m.body_base64) {
                (Some(text), None) => text.into_bytes(),
                (None, Some(encoded)) => BASE64
                    .decode(encoded.as_bytes())
                    .map_err(|e| at(format!("`body_base64` is not valid base64: {e}")))?,
                (None, None) => Vec::new(),
                (Some(_), Some(_)) => {
                    return Err(at("give `body` or `body_base64`, not both".into()));
                }
            };
            let attributes = m
                .attributes
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k, v)),
                    other => Err(at(format!("attribute `{k}` must be a string, got {other}"))),
                })
                .collect::<Result<_, _>>()?;
            Ok(Message {
                id: m.id.unwrap_or_else(|| format!("invoke-{}", index + 1)),
                queue: queue.clone(),
                body,
                attributes,
                attempt: m.attempt.unwrap_or(1),
                enqueued_at_ms: now,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(state.functions.invoke(&name, batch).await?))
}

/// A trigger as a client sends it; every field but `queue` has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    queue: String,
    #[serde(default = "default_batch_size")]
    batch_size: u32,
    #[serde(default)]
    max_wait_ms: u64,
    #[serde(default = "default_concurrency")]
    max_concurrency: u32,
    #[serde(default)]
    paused: bool,
}

fn default_batch_size() -> u32 {
    10
}

fn default_concurrency() -> u32 {
    4
}

/// `PUT /v1/functions/{name}/trigger`: bind the function to the queue it consumes.
pub async fn put_trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TriggerStatus>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: TriggerRequest = parse_json(&body)?;
    if !(1..=1000).contains(&request.batch_size) {
        return Err(ApiError::BadRequest(
            "`batch_size` must be between 1 and 1000".into(),
        ));
    }
    if request.max_wait_ms > 5 * 60 * 1000 {
        return Err(ApiError::BadRequest(
            "`max_wait_ms` must be at most 300000 (5 minutes)".into(),
        ));
    }
    if !(1..=1000).contains(&request.max_concurrency) {
        return Err(ApiError::BadRequest(
            "`max_concurrency` must be between 1 and 1000".into(),
        ));
    }
    let record = TriggerRecord {
        function: name.clone(),
        queue: request.queue,
        batch_size: request.batch_size,
        max_wait_ms: request.max_wait_ms,
        max_concurrency: request.max_concurrency,
        paused: request.paused,
    };
    let record = state.store.put_trigger(record).await?;
    state.dispatcher.refresh(&name).await;
    Ok(Json(state.dispatcher.status(record)))
}

/// `DELETE /v1/functions/{name}/trigger`: stop consuming; in-flight batches still settle.
pub async fn delete_trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_trigger(&name).await?;
    state.dispatcher.stop(&name);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvocationsQuery {
    limit: Option<usize>,
}

/// `GET /v1/functions/{name}/invocations`: the most recent invocations, newest first.
pub async fn invocations(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<InvocationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    state.functions.get(&name).await?;
    let mut recent = state.functions.recent(&name);
    recent.truncate(query.limit.unwrap_or(100));
    Ok(Json(json!({ "invocations": recent })))
}
