//! Message routes: enqueue one (raw body, attributes from headers), enqueue a JSON batch, peek.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, AppState, body_error, parse_json};
use crate::config::ApiLimits;
use crate::store::{Enqueued, Message, NewMessage};

const ATTR_PREFIX: &str = "sluice-attr-";

/// `POST /v1/queues/{queue}/messages`: the raw body is the message.
pub async fn enqueue_one(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let body = body.map_err(body_error)?;
    let mut attributes = Vec::new();
    for (name, value) in &headers {
        if let Some(attr) = name.as_str().strip_prefix(ATTR_PREFIX) {
            let value = value.to_str().map_err(|_| {
                ApiError::BadRequest(format!("header `{name}` must be visible ASCII"))
            })?;
            attributes.push((attr.to_owned(), value.to_owned()));
        }
    }
    let message = NewMessage {
        body: body.to_vec(),
        attributes,
        delay_ms: header_u64(&headers, "sluice-delay-ms")?.unwrap_or(0),
        dedup_id: header_str(&headers, "sluice-dedup-id")?,
    };
    check_message(&state.limits, &message, 0)?;
    let mut ids = state.store.enqueue(&queue, vec![message]).await?;
    metrics::counter!("sluice_enqueued_total", "queue" => queue).increment(1);
    let enqueued = ids
        .pop()
        .ok_or_else(|| ApiError::Internal("enqueue returned no id".into()))?;
    Ok((StatusCode::CREATED, Json(enqueued)))
}

/// One message of a batch enqueue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchMessage {
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
    #[serde(default)]
    delay_ms: u64,
    dedup_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    messages: Vec<BatchMessage>,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// The ids, in the order the messages were given.
    ids: Vec<String>,
    /// How many were duplicates of earlier messages (by dedup id) and so not added again.
    duplicates: usize,
}

/// `POST /v1/queues/{queue}/messages/batch`: many messages, committed together.
pub async fn enqueue_batch(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let body = body.map_err(body_error)?;
    let request: BatchRequest = parse_json(&body)?;
    let limits = &state.limits;
    if request.messages.is_empty() {
        return Err(ApiError::BadRequest(
            "`messages` is empty: send at least one".into(),
        ));
    }
    if request.messages.len() > limits.max_batch_messages {
        return Err(ApiError::BadRequest(format!(
            "{} messages in one batch; at most {} are allowed, split the batch",
            request.messages.len(),
            limits.max_batch_messages
        )));
    }
    let messages = request
        .messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| {
            let message = to_new_message(message, index)?;
            check_message(limits, &message, index)?;
            Ok(message)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let count = messages.len() as u64;
    let results = state.store.enqueue(&queue, messages).await?;
    metrics::counter!("sluice_enqueued_total", "queue" => queue).increment(count);
    let duplicates = results.iter().filter(|r| r.duplicate).count();
    let ids = results.into_iter().map(|r| r.id).collect();
    Ok((StatusCode::CREATED, Json(BatchResponse { ids, duplicates })))
}

fn to_new_message(message: BatchMessage, index: usize) -> Result<NewMessage, ApiError> {
    let at = |what: String| ApiError::BadRequest(format!("messages[{index}]: {what}"));
    let body = match (message.body, message.body_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => BASE64
            .decode(encoded.as_bytes())
            .map_err(|e| at(format!("`body_base64` is not valid base64: {e}")))?,
        (Some(_), Some(_)) => return Err(at("give `body` or `body_base64`, not both".into())),
        (None, None) => return Err(at("missing `body` (UTF-8 text) or `body_base64`".into())),
    };
    let attributes = message
        .attributes
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(value) => Ok((name, value)),
            other => Err(at(format!(
                "attribute `{name}` must be a string, got {other}"
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(NewMessage {
        body,
        attributes,
        delay_ms: message.delay_ms,
        dedup_id: message.dedup_id,
    })
}

/// Checks the limits that do not depend on the queue (the store checks the queue's own).
fn check_message(limits: &ApiLimits, message: &NewMessage, index: usize) -> Result<(), ApiError> {
    let at = |what: String| ApiError::BadRequest(format!("messages[{index}]: {what}"));
    if message.attributes.len() > limits.max_attributes {
        return Err(at(format!(
            "{} attributes; at most {} are allowed",
            message.attributes.len(),
            limits.max_attributes
        )));
    }
    for (name, value) in &message.attributes {
        if name.is_empty() {
            return Err(at("attribute names must not be empty".into()));
        }
        if name.len() > limits.max_attribute_bytes || value.len() > limits.max_attribute_bytes {
            return Err(at(format!(
                "attribute `{name}` is longer than {} bytes",
                limits.max_attribute_bytes
            )));
        }
    }
    if let Some(dedup) = &message.dedup_id
        && (dedup.is_empty() || dedup.len() > 128)
    {
        return Err(at("a dedup id must be 1 to 128 bytes".into()));
    }
    const MAX_DELAY_MS: u64 = 15 * 60 * 1000;
    if message.delay_ms > MAX_DELAY_MS {
        return Err(at(format!(
            "delay of {} ms; at most {MAX_DELAY_MS} ms (15 minutes)",
            message.delay_ms
        )));
    }
    Ok(())
}

fn header_str(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::BadRequest(format!("header `{name}` must be visible ASCII")))
        })
        .transpose()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    header_str(headers, name)?
        .map(|value| {
            value.trim().parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "header `{name}` must be a whole number, got `{value}`"
                ))
            })
        })
        .transpose()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeekQuery {
    limit: Option<usize>,
    /// Only messages with a greater id, for paging through a whole queue.
    after: Option<String>,
}

/// `GET /v1/queues/{queue}/messages?limit=N`: look without leasing.
pub async fn peek(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    query: Result<Query<PeekQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit` must be between 1 and 1000".into(),
        ));
    }
    let after = query
        .after
        .map(|after| {
            after.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("`after` must be a message id, got `{after}`"))
            })
        })
        .transpose()?;
    let messages = state.store.peek(&queue, limit, after).await?;
    let messages: Vec<Value> = messages.iter().map(message_json).collect();
    Ok(Json(json!({ "messages": messages })))
}

/// A message as the API shows it: the body as text when it is UTF-8, always as base64.
pub fn message_json(message: &Message) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": message.id,
        "queue": message.queue,
        "body": std::str::from_utf8(&message.body).ok(),
        "body_base64": BASE64.encode(&message.body),
        "attributes": attributes,
        "attempt": message.attempt,
        "enqueued_at_ms": message.enqueued_at_ms,
    })
}
