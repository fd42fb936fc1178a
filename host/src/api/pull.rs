//! Pull routes: receive a batch with receipts (long polling), then ack, retry, dead-letter or
//! extend by receipt. The rules live in [`crate::pull`]; this is their HTTP shape.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json, parse_optional_json};
use crate::pull::{self, Action, Outcome, ReceiveOptions};

/// The body of a receive; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiveRequest {
    /// How many messages at most, 1 to 1000 (default 10).
    #[schema(minimum = 1, maximum = 1000)]
    max_messages: Option<usize>,
    /// How long the messages stay leased to this consumer (default: the queue's
    /// `visibility_timeout_ms`; at most 12 hours).
    #[schema(maximum = 43200000)]
    visibility_timeout_ms: Option<u64>,
    /// How long to wait for a first message when none is visible, at most 20000 (default 0:
    /// answer at once). The wait ends as soon as one arrives.
    #[schema(maximum = 20000)]
    wait_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiveResponse {
    messages: Vec<ReceivedMessage>,
}

/// A leased message and the receipt that settles it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedMessage {
    id: String,
    /// Names this delivery: give it back to ack, retry, dead-letter or extend.
    receipt: String,
    /// The body as text when it is UTF-8, else null.
    body: Option<String>,
    /// The body as standard base64, always.
    body_base64: String,
    attributes: std::collections::BTreeMap<String, String>,
    /// Deliveries so far, this one included.
    attempt: u32,
    enqueued_at_ms: u64,
    /// 0 (lowest) to 9 (highest).
    priority: u8,
    /// The message's group, if it has one: the next message of the group is not delivered
    /// until this one is acked, dead-lettered or dropped.
    group: Option<String>,
}

/// Lease messages for a consumer outside WebAssembly.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/receive", tag = "pull",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = ReceiveRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Up to `max_messages` leased messages (none if the wait ran out)", body = ReceiveResponse),
        (status = 400, description = "Invalid JSON, limits or path", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "A trigger consumes this queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiveResponse>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: ReceiveRequest = parse_optional_json(&body)?;
    let options = ReceiveOptions {
        max_messages: request.max_messages.unwrap_or(10),
        visibility: request.visibility_timeout_ms.map(Duration::from_millis),
        wait: Duration::from_millis(request.wait_ms),
    };
    let received = tokio::select! {
        received = pull::receive(&state.store, &queue, options) => received?,
        // A long poll ends with the server: nothing was leased.
        () = state.shutdown.cancelled() => Vec::new(),
    };
    let messages = received
        .into_iter()
        .map(|r| ReceivedMessage {
            id: r.message.id,
            receipt: r.receipt,
            body: std::str::from_utf8(&r.message.body).ok().map(str::to_owned),
            body_base64: BASE64.encode(&r.message.body),
            attributes: r.message.attributes.into_iter().collect(),
            attempt: r.message.attempt,
            enqueued_at_ms: r.message.enqueued_at_ms,
            priority: r.message.priority,
            group: r.message.group,
        })
        .collect();
    Ok(Json(ReceiveResponse { messages }))
}

/// Receipts to ack.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// 1 to 1000 receipts, as receive gave them.
    receipts: Vec<String>,
    /// Replies to some of the acked messages (request-reply), committed with their acks.
    #[serde(default)]
    replies: Vec<PullReply>,
}

/// A pull consumer's reply to one message it acks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullReply {
    /// The receipt of the message answered; it must be among the ack's receipts.
    receipt: String,
    /// The body as UTF-8 text.
    body: Option<String>,
    /// The body as standard base64, for binary bodies.
    body_base64: Option<String>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

/// Receipts to deliver again later.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    receipts: Vec<String>,
    /// Deliver again after this long (default: the queue's backoff for the attempt).
    delay_ms: Option<u64>,
}

/// Receipts to dead-letter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterRequest {
    receipts: Vec<String>,
    /// Why, kept on the dead letter as `sluice-dead-letter-reason`.
    reason: String,
}

/// Receipts to keep leased longer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    receipts: Vec<String>,
    /// Keep them leased this long from now (at most 12 hours).
    visibility_timeout_ms: u64,
}

/// What a settle or extend did. When no receipt succeeded the answer is an error instead
/// (409 `stale_receipt`, or 400 for receipts this queue never gave out).
#[derive(Debug, Serialize, ToSchema)]
pub struct SettleResponse {
    /// Receipts applied.
    succeeded: usize,
    /// Receipts that changed nothing, with why.
    failed: Vec<FailedReceipt>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedReceipt {
    receipt: String,
    /// `stale_receipt` (the lease was lost: the message expired and was leased again, or was
    /// settled already) or `invalid_receipt`.
    code: &'static str,
    message: String,
}

/// The answer for the outcomes of `receipts`.
fn answer(receipts: Vec<String>, outcomes: Vec<Outcome>) -> Result<Json<SettleResponse>, ApiError> {
    let mut succeeded = 0;
    let mut failed = Vec::new();
    for (receipt, outcome) in receipts.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Done => succeeded += 1,
            Outcome::Stale => failed.push(FailedReceipt {
                receipt,
                code: "stale_receipt",
                message: "the lease behind this receipt was lost (its visibility timeout \
                          passed and the message was received again, or it was settled \
                          already); nothing changed: settle with the newest receipt"
                    .into(),
            }),
            Outcome::Invalid(message) => failed.push(FailedReceipt {
                receipt,
                code: "invalid_receipt",
                message,
            }),
        }
    }
    if succeeded == 0 {
        let first = &failed[0];
        let message = if failed.len() == 1 {
            first.message.clone()
        } else {
            format!(
                "none of the {} receipts was applied; the first: {}",
                failed.len(),
                first.message
            )
        };
        return Err(if failed.iter().any(|f| f.code == "stale_receipt") {
            ApiError::StaleReceipt(message)
        } else {
            ApiError::BadRequest(message)
        });
    }
    Ok(Json(SettleResponse { succeeded, failed }))
}

async fn settle(
    state: &AppState,
    queue: &str,
    receipts: Vec<String>,
    action: Action,
) -> Result<Json<SettleResponse>, ApiError> {
    let outcomes = pull::settle(&state.store, queue, &receipts, &action).await?;
    answer(receipts, outcomes)
}

/// Acknowledge (delete) received messages.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/ack", tag = "pull",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = AckRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (some receipts may be listed as failed)", body = SettleResponse),
        (status = 400, description = "Invalid JSON, path or receipts", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "No receipt's lease is held any more", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn ack(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettleResponse>, ApiError> {
    let request: AckRequest = parse_json(&body.map_err(body_error)?)?;
    // The request body's limit bounds the replies too.
    let mut replies = std::collections::HashMap::new();
    for (index, reply) in request.replies.into_iter().enumerate() {
        let place = format!("replies[{index}]");
        let at = |what: &str| ApiError::BadRequest(format!("{place}: {what}"));
        if !request.receipts.contains(&reply.receipt) {
            return Err(at("its `receipt` is not one of the `receipts` acked"));
        }
        let body = super::messages::decode_body(reply.body, reply.body_base64, &place)?
            .unwrap_or_default();
        let attributes = super::messages::decode_attributes(reply.attributes, &place)?;
        if let Some(why) = attributes
            .iter()
            .find_map(|(name, _)| super::messages::reserved(name))
        {
            return Err(at(&why));
        }
        let answer = pull::ReplyBody { body, attributes };
        if replies.insert(reply.receipt, answer).is_some() {
            return Err(at(
                "a second reply to the same receipt; give one per message",
            ));
        }
    }
    settle(&state, &queue, request.receipts, Action::Ack { replies }).await
}

/// Deliver received messages again later; after a message's last attempt it is
/// dead-lettered instead (or dropped without a dead-letter queue), as for triggers.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/retry", tag = "pull",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = RetryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (some receipts may be listed as failed)", body = SettleResponse),
        (status = 400, description = "Invalid JSON, path or receipts", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "No receipt's lease is held any more", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettleResponse>, ApiError> {
    let request: RetryRequest = parse_json(&body.map_err(body_error)?)?;
    const MAX_DELAY_MS: u64 = 12 * 60 * 60 * 1000;
    if request.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
        return Err(ApiError::BadRequest(format!(
            "`delay_ms` must be at most {MAX_DELAY_MS} (12 hours)"
        )));
    }
    let delay = request.delay_ms.map(Duration::from_millis);
    settle(&state, &queue, request.receipts, Action::Retry { delay }).await
}

/// Move received messages to the queue's dead-letter queue with a reason.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/dead-letter", tag = "pull",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = DeadLetterRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (some receipts may be listed as failed)", body = SettleResponse),
        (status = 400, description = "Invalid JSON, path or receipts", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "No receipt's lease is held any more", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn dead_letter(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettleResponse>, ApiError> {
    let request: DeadLetterRequest = parse_json(&body.map_err(body_error)?)?;
    if request.reason.trim().is_empty() || request.reason.len() > 1024 {
        return Err(ApiError::BadRequest(
            "`reason` must be 1 to 1024 bytes saying why".into(),
        ));
    }
    let action = Action::DeadLetter {
        reason: request.reason,
    };
    settle(&state, &queue, request.receipts, action).await
}

/// Keep received messages leased longer (a heartbeat for slow work).
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/extend", tag = "pull",
    params(("queue" = String, Path, description = "Queue name", example = "fuzz")),
    request_body(content = ExtendRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (some receipts may be listed as failed)", body = SettleResponse),
        (status = 400, description = "Invalid JSON, path, limits or receipts", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 409, description = "No receipt's lease is held any more", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn extend(
    State(state): State<AppState>,
    Segment(queue): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettleResponse>, ApiError> {
    let request: ExtendRequest = parse_json(&body.map_err(body_error)?)?;
    let visibility = Duration::from_millis(request.visibility_timeout_ms);
    let outcomes = pull::extend(&state.store, &queue, &request.receipts, visibility).await?;
    answer(request.receipts, outcomes)
}
