//! Reply routes (request-reply): a handler's answer to one message, as the waiting producer
//! gets it from `POST /v1/queues/{queue}/messages` with `Sluice-Reply-Timeout-Ms`, and
//! `GET /v1/replies/{message_id}` for one that came after the wait.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody, Segment};
use crate::auth::{Denied, Need};
use crate::store::{self, Reply};

/// The request header that makes a single enqueue wait for the handler's reply.
pub const REPLY_TIMEOUT_HEADER: &str = "sluice-reply-timeout-ms";

/// A handler's reply to one message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyView {
    /// The message answered.
    message_id: String,
    /// The queue it was on.
    queue: String,
    /// The body as text when it is UTF-8, else null.
    body: Option<String>,
    /// The body as standard base64, always.
    body_base64: String,
    attributes: std::collections::BTreeMap<String, String>,
    /// When the reply was committed (with the message's ack), in ms since the Unix epoch.
    replied_at_ms: u64,
}

impl From<Reply> for ReplyView {
    fn from(reply: Reply) -> Self {
        ReplyView {
            body: std::str::from_utf8(&reply.body).ok().map(str::to_owned),
            body_base64: BASE64.encode(&reply.body),
            attributes: reply.attributes.into_iter().collect(),
            message_id: reply.message_id,
            queue: reply.queue,
            replied_at_ms: reply.replied_at_ms,
        }
    }
}

/// The wait a request asks for with `Sluice-Reply-Timeout-Ms`, if it asks for one.
pub(crate) fn requested_wait(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(value) = headers.get(REPLY_TIMEOUT_HEADER) else {
        return Ok(None);
    };
    let max = store::MAX_REPLY_WAIT.as_millis() as u64;
    let ms = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| (1..=max).contains(ms))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "header `Sluice-Reply-Timeout-Ms` must be a whole number of milliseconds from 1 \
                 to {max}, got `{}`",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })?;
    Ok(Some(Duration::from_millis(ms)))
}

/// Waits for the reply to `message_id`: 200 with it, or 504 `reply_timeout` naming the
/// message, which stays queued (its reply can be fetched later with `GET /v1/replies/{id}`).
pub(crate) async fn wait(
    state: &AppState,
    message_id: String,
    timeout: Duration,
) -> Result<Json<ReplyView>, ApiError> {
    match state.store.wait_reply(&message_id, timeout).await? {
        Some(reply) => Ok(Json(reply.into())),
        None => Err(ApiError::ReplyTimeout {
            message: format!(
                "no reply to message `{message_id}` within {} ms; the message stays queued and \
                 its reply can be fetched for an hour after it comes with \
                 `GET /v1/replies/{message_id}`",
                timeout.as_millis()
            ),
            message_id,
        }),
    }
}

/// A handler's reply to a message, kept for an hour after it was committed. Readable with the
/// `read` scope, or with `produce` to the message's queue.
#[utoipa::path(get, path = "/v1/replies/{message_id}", tag = "messages",
    params(("message_id" = String, Path, description = "The id the enqueue answered", example = "1")),
    responses(
        (status = 200, description = "The reply", body = ReplyView),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 403, description = "The token may neither read nor produce to the message's queue", body = ErrorBody),
        (status = 404, description = "No reply (yet, or any more)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Segment(message_id): Segment,
    headers: HeaderMap,
) -> Result<Json<ReplyView>, ApiError> {
    let Some(reply) = state.store.reply(&message_id).await? else {
        return Err(ApiError::NotFound(format!(
            "no reply to message `{message_id}`: its handler has not answered it yet, or the \
             reply expired (replies are kept for an hour)"
        )));
    };
    let bearer = super::tokens::bearer(&headers);
    let produce = Need::Produce(reply.queue.clone());
    match (
        state.auth.check(bearer, &Need::Read),
        state.auth.check(bearer, &produce),
    ) {
        (Ok(()), _) | (_, Ok(())) => Ok(Json(reply.into())),
        (Err(Denied::Unauthenticated), _) => {
            Err(ApiError::Unauthorized("missing or invalid token".into()))
        }
        _ => Err(ApiError::Forbidden(format!(
            "this token lacks the scope this reply needs (read, produce or produce:{})",
            reply.queue
        ))),
    }
}
