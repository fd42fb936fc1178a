//! Message routes: enqueue one (raw body, attributes from headers), enqueue a JSON batch, peek
//! (a dead-letter queue's by reason too), and the reasons a queue's dead letters died for.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use axum::response::{IntoResponse, Response};

use super::model::Enqueued;
use super::replies::{self, ReplyView};
use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json};
use crate::config::ApiLimits;
use crate::store::{self, Message, NewMessage, ReasonFilter};

const ATTR_PREFIX: &str = "sluice-attr-";

/// Enqueue one message: the raw request body, any content type. Attributes come from
/// `Sluice-Attr-NAME: VALUE` headers (at most 32; names and values of at most 1024 bytes).
/// Answers after commit.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages", tag = "messages",
    params(
        ("queue" = String, Path, description = "Queue name", example = "fuzz"),
        ("Sluice-Delay-Ms" = Option<u64>, Header, description = "Deliver no sooner than this many milliseconds from now (at most 900000)"),
        ("Sluice-Dedup-Id" = Option<String>, Header, description = "1 to 128 bytes; a second message with the same id within the queue's dedup window is not added"),
        ("Sluice-Priority" = Option<u8>, Header, description = "0 (lowest) to 9 (highest), default 4: a batch takes higher priorities first"),
        ("Sluice-Group" = Option<String>, Header, description = "1 to 128 bytes: messages of one group are delivered one at a time, in enqueue order"),
        ("Sluice-Reply-Timeout-Ms" = Option<u64>, Header, description = "1 to 60000: wait this long for the handler's reply and answer it (200), or 504 `reply_timeout` with the message id"),
    ),
    request_body(content = String, content_type = "application/octet-stream",
        description = "The message body, as is (any content type)"),
    responses(
        (status = 200, description = "The handler's reply (with `Sluice-Reply-Timeout-Ms`)", body = ReplyView),
        (status = 201, description = "Enqueued (or a duplicate of an earlier message)", body = Enqueued),
        (status = 400, description = "Invalid header, attribute, delay or dedup id", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "Larger than the queue's or the server's limit", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 504, description = "No reply within `Sluice-Reply-Timeout-Ms` (`reply_timeout`, with `message_id`): the message stays queued", body = ErrorBody),
    ))]
pub async fn enqueue_one(
    State(state): State<AppState>,
    Segment(queue): Segment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let wait = replies::requested_wait(&headers)?;
    let message = single_message(&state.limits, &headers, body)?;
    let mut ids = state.store.enqueue(&queue, vec![message]).await?;
    metrics::counter!("sluice_enqueued_total", "queue" => queue).increment(1);
    let enqueued = ids
        .pop()
        .ok_or_else(|| ApiError::Internal("enqueue returned no id".into()))?;
    match wait {
        Some(timeout) => Ok(replies::wait(&state, enqueued.id, timeout)
            .await?
            .into_response()),
        None => Ok((StatusCode::CREATED, Json(Enqueued::from(enqueued))).into_response()),
    }
}

/// One message from a raw request body and its `Sluice-*` headers (a queue's single enqueue,
/// and a topic's single publish).
pub(crate) fn single_message(
    limits: &ApiLimits,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<NewMessage, ApiError> {
    let body = body.map_err(body_error)?;
    let mut attributes = Vec::new();
    for (name, value) in headers {
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
        delay_ms: header_u64(headers, "sluice-delay-ms")?.unwrap_or(0),
        dedup_id: header_str(headers, "sluice-dedup-id")?,
        priority: header_priority(headers)?,
        group: header_str(headers, "sluice-group")?,
    };
    check_message(limits, &message, 0)?;
    Ok(message)
}

/// One message of a batch enqueue: exactly one of `body` and `body_base64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchMessage {
    /// The body as UTF-8 text.
    body: Option<String>,
    /// The body as standard base64, for binary bodies.
    body_base64: Option<String>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    attributes: serde_json::Map<String, Value>,
    /// Milliseconds to wait before delivery; at most 900000.
    #[serde(default)]
    delay_ms: u64,
    /// 1 to 128 bytes.
    dedup_id: Option<String>,
    /// 0 (lowest) to 9 (highest); default 4. A batch takes higher priorities first.
    priority: Option<u64>,
    /// 1 to 128 bytes. Messages of one group are delivered one at a time, in enqueue order.
    group: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// 1 to 1000 messages.
    messages: Vec<BatchMessage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// The ids, in the order the messages were given.
    ids: Vec<String>,
    /// How many were duplicates of earlier messages (by dedup id) and so not added again.
    duplicates: usize,
}

/// Enqueue many messages, committed together; answers the ids in order after commit.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/batch", tag = "messages",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Enqueued", body = BatchResponse),
        (status = 400, description = "Invalid JSON, message, attribute, delay or dedup id", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "A message or the body is too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn enqueue_batch(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let messages = batch_messages(&state.limits, body)?;
    let count = messages.len() as u64;
    let results = state.store.enqueue(&queue, messages).await?;
    metrics::counter!("sluice_enqueued_total", "queue" => queue).increment(count);
    let duplicates = results.iter().filter(|r| r.duplicate).count();
    let ids = results.into_iter().map(|r| r.id).collect();
    Ok((StatusCode::CREATED, Json(BatchResponse { ids, duplicates })))
}

/// The messages of a JSON batch (a queue's batch enqueue, and a topic's batch publish).
pub(crate) fn batch_messages(
    limits: &ApiLimits,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<NewMessage>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: BatchRequest = parse_json(&body)?;
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
    Ok(messages)
}

fn to_new_message(message: BatchMessage, index: usize) -> Result<NewMessage, ApiError> {
    let place = format!("messages[{index}]");
    let body = decode_body(message.body, message.body_base64, &place)?.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "messages[{index}]: missing `body` (UTF-8 text) or `body_base64`"
        ))
    })?;
    Ok(NewMessage {
        body,
        attributes: decode_attributes(message.attributes, &place)?,
        delay_ms: message.delay_ms,
        dedup_id: message.dedup_id,
        priority: priority(message.priority)
            .map_err(|what| ApiError::BadRequest(format!("messages[{index}]: {what}")))?,
        group: message.group,
    })
}

/// A message's priority as given (`None`: the default), checked to be 0 to 9.
fn priority(given: Option<u64>) -> Result<u8, String> {
    match given {
        None => Ok(store::DEFAULT_PRIORITY),
        Some(p) if p <= u64::from(store::MAX_PRIORITY) => Ok(p as u8),
        Some(p) => Err(format!(
            "priority {p} is out of range; give 0 (lowest) to {} (highest), or leave it out \
             for {}",
            store::MAX_PRIORITY,
            store::DEFAULT_PRIORITY
        )),
    }
}

fn header_priority(headers: &HeaderMap) -> Result<u8, ApiError> {
    priority(header_u64(headers, "sluice-priority")?)
        .map_err(|what| ApiError::BadRequest(format!("header `Sluice-Priority`: {what}")))
}

/// A message body given as UTF-8 `body` or as `body_base64` (at most one); `None` when neither.
/// `place` names it in errors (`messages[3]`).
pub(crate) fn decode_body(
    body: Option<String>,
    body_base64: Option<String>,
    place: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let at = |what: String| ApiError::BadRequest(format!("{place}: {what}"));
    match (body, body_base64) {
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(encoded)) => BASE64
            .decode(encoded.as_bytes())
            .map(Some)
            .map_err(|e| at(format!("`body_base64` is not valid base64: {e}"))),
        (Some(_), Some(_)) => Err(at("give `body` or `body_base64`, not both".into())),
        (None, None) => Ok(None),
    }
}

/// Message attributes given as a JSON object of strings; `place` names them in errors.
/// Why a client may not set attribute `name`, when it is one of Sluice's own.
pub(crate) fn reserved(name: &str) -> Option<String> {
    store::is_reserved_attribute(name).then(|| {
        format!(
            "attribute `{name}` is reserved: names starting with `{}` are set by Sluice itself \
             (dead-letter reason, attempts, source); rename it or leave it out",
            store::RESERVED_ATTRIBUTE_PREFIX
        )
    })
}

pub(crate) fn decode_attributes(
    attributes: serde_json::Map<String, Value>,
    place: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    attributes
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(value) => Ok((name, value)),
            other => Err(ApiError::BadRequest(format!(
                "{place}: attribute `{name}` must be a string, got {other}"
            ))),
        })
        .collect()
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
        if let Some(why) = reserved(name) {
            return Err(at(why));
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
    if let Some(group) = &message.group
        && (group.is_empty() || group.len() > store::MAX_GROUP_BYTES)
    {
        return Err(at(format!(
            "a group key must be 1 to {} bytes",
            store::MAX_GROUP_BYTES
        )));
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeekQuery {
    /// How many, 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only messages with a greater id, for paging through a whole queue.
    after: Option<String>,
    /// Only dead letters that died for this reason (their `sluice-dead-letter-reason`, as
    /// `/dead-letter-reasons` lists them); paging with `after` stays within it.
    reason: Option<String>,
    /// `true`: only messages with no dead-letter reason (put in the queue by hand). Not with
    /// `reason`.
    no_reason: Option<bool>,
}

impl PeekQuery {
    /// The reason filter the query asks for, if any.
    fn filter(&self) -> Result<Option<ReasonFilter>, ApiError> {
        match (&self.reason, self.no_reason) {
            (Some(_), Some(true)) => Err(ApiError::BadRequest(
                "give `reason` (dead letters that died for it) or `no_reason=true` (messages \
                 with none), not both"
                    .into(),
            )),
            (Some(reason), _) => Ok(Some(ReasonFilter::Reason(reason.clone()))),
            (None, Some(true)) => Ok(Some(ReasonFilter::NoReason)),
            (None, _) => Ok(None),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Peeked {
    messages: Vec<PeekedMessage>,
}

/// A message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeekedMessage {
    id: String,
    queue: String,
    /// The body as text when it is UTF-8, else null.
    body: Option<String>,
    /// The body as standard base64, always.
    body_base64: String,
    attributes: std::collections::BTreeMap<String, String>,
    attempt: u32,
    enqueued_at_ms: u64,
    /// 0 (lowest) to 9 (highest).
    priority: u8,
    group: Option<String>,
}

/// Peek at a queue's next messages without leasing them; in a dead-letter queue, optionally
/// only those that died for one reason.
#[utoipa::path(get, path = "/v1/queues/{queue}/messages", tag = "messages",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz"), PeekQuery),
    responses(
        (status = 200, description = "The next messages, in order", body = Peeked),
        (status = 400, description = "Invalid query, cursor or path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn peek(
    State(state): State<AppState>,
    Segment(queue): Segment,
    query: Result<Query<PeekQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Peeked>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit` must be between 1 and 1000".into(),
        ));
    }
    let after = query.after.as_deref();
    let messages = match query.filter()? {
        None => state.store.peek(&queue, limit, after).await?,
        Some(filter) => {
            state
                .store
                .peek_by_reason(&queue, &filter, limit, after)
                .await?
        }
    };
    let messages = messages.iter().map(PeekedMessage::from).collect();
    Ok(Json(Peeked { messages }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReasonsQuery {
    /// List at most this many reasons, the most frequent, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The reasons a queue's dead letters died for, across the whole queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterReasons {
    /// The most frequent reasons, most first (ties by reason), at most `limit`.
    reasons: Vec<ReasonTally>,
    /// How many distinct reasons the queue holds: more than `reasons` lists when capped.
    distinct_reasons: u64,
    /// Messages of the queue with no reason (put in by hand; `no_reason=true` peeks them).
    without_reason: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonTally {
    /// As the dead letters' `sluice-dead-letter-reason` says; peek them with `reason`.
    reason: String,
    /// How many of the queue's messages died for it.
    count: u64,
}

/// The reasons a queue's messages were dead-lettered for, each with how many, counted over
/// the whole queue (not a page of it).
#[utoipa::path(get, path = "/v1/queues/{queue}/dead-letter-reasons", tag = "messages",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz"), ReasonsQuery),
    responses(
        (status = 200, description = "The reasons, most frequent first", body = DeadLetterReasons),
        (status = 400, description = "Invalid query or path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn dead_letter_reasons(
    State(state): State<AppState>,
    Segment(queue): Segment,
    query: Result<Query<ReasonsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLetterReasons>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=store::MAX_REASONS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {}",
            store::MAX_REASONS
        )));
    }
    let counts = state.store.dead_letter_reasons(&queue, limit).await?;
    Ok(Json(DeadLetterReasons {
        reasons: counts
            .reasons
            .into_iter()
            .map(|r| ReasonTally {
                reason: r.reason,
                count: r.count,
            })
            .collect(),
        distinct_reasons: counts.distinct,
        without_reason: counts.without_reason,
    }))
}

impl From<&Message> for PeekedMessage {
    fn from(message: &Message) -> Self {
        PeekedMessage {
            id: message.id.clone(),
            queue: message.queue.clone(),
            body: std::str::from_utf8(&message.body).ok().map(str::to_owned),
            body_base64: BASE64.encode(&message.body),
            attributes: message.attributes.iter().cloned().collect(),
            attempt: message.attempt,
            enqueued_at_ms: message.enqueued_at_ms,
            priority: message.priority,
            group: message.group.clone(),
        }
    }
}

/// Delete one message, in flight or not (a dead letter not worth redriving, say).
#[utoipa::path(delete, path = "/v1/queues/{queue}/messages/{id}", tag = "messages",
    params(
        ("queue" = String, Path, description = "Queue name", example = "fuzz"),
        ("id" = String, Path, description = "Message id, as peek shows it", example = "1"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such queue or message", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete_one(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<axum::http::StatusCode, ApiError> {
    let axum::extract::Path((queue, id)) =
        path.map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))?;
    match state
        .store
        .delete_messages(&queue, vec![id.clone()])
        .await?
    {
        0 => Err(ApiError::NotFound(format!(
            "queue `{queue}` has no message `{id}` (ids are as peek shows them)"
        ))),
        _ => Ok(axum::http::StatusCode::NO_CONTENT),
    }
}
