//! `ApiError`: the one place where failures become HTTP statuses and the JSON error body
//! `{"error": {"code", "message"}}`. Server faults are logged; client mistakes are not.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{executor, functions, store};

/// A failed request, with what the client can do about it in the message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A pull consumer's receipt whose lease was lost: 409 `stale_receipt`.
    #[error("{0}")]
    StaleReceipt(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// The queue is at its maximum depth: 429 with `Retry-After`.
    #[error("{0}")]
    QueueFull(String),
    /// The server is at a limit of its own (request bodies buffered, connections): 503 with
    /// `Retry-After`.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    Internal(String),
    /// A request-reply enqueue whose reply did not come in time: 504 `reply_timeout`, naming
    /// the message (it stays queued; its reply can be fetched later).
    #[error("{message}")]
    ReplyTimeout { message: String, message_id: String },
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `request_timeout`, `conflict`, `stale_receipt`, `payload_too_large`,
    /// `uri_too_long`, `unsupported_media_type`, `invalid_component`, `queue_full`,
    /// `headers_too_large`, `storage_unavailable`, `server_busy`, `reply_timeout`, `internal`.
    pub code: String,
    /// What went wrong and what to do about it, for people.
    pub message: String,
    /// The message enqueued, when its reply did not come in time (`reply_timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::StaleReceipt(_) => (StatusCode::CONFLICT, "stale_receipt"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            ApiError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "server_busy"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::ReplyTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "reply_timeout"),
        }
    }

    /// The error for a `status` that something other than a handler chose (axum's router, the
    /// HTTP parser), with `message` for people.
    pub fn for_status(status: StatusCode, message: String) -> ApiError {
        match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(message),
            StatusCode::FORBIDDEN => ApiError::Forbidden(message),
            StatusCode::NOT_FOUND => ApiError::NotFound(message),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(message),
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout(message),
            StatusCode::CONFLICT => ApiError::Conflict(message),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(message),
            StatusCode::URI_TOO_LONG => ApiError::UriTooLong(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(message),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(message),
            StatusCode::TOO_MANY_REQUESTS => ApiError::QueueFull(message),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge(message),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Busy(message),
            status if status.is_server_error() => ApiError::Internal(message),
            _ => ApiError::BadRequest(message),
        }
    }

    /// The status and the JSON body this error is answered with.
    pub fn status_and_body(&self) -> (StatusCode, ErrorBody) {
        let (status, code) = self.parts();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                message_id: match self {
                    ApiError::ReplyTimeout { message_id, .. } => Some(message_id.clone()),
                    _ => None,
                },
            },
        };
        (status, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        if status.is_server_error()
            && !matches!(self, ApiError::Busy(_) | ApiError::ReplyTimeout { .. })
        {
            tracing::error!(%status, error = %self, "request failed");
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> Self {
        use store::Error as E;
        let msg = err.to_string();
        match err {
            E::QueueNotFound(_)
            | E::FunctionNotFound(_)
            | E::VersionNotFound { .. }
            | E::TokenNotFound(_)
            | E::ScheduleNotFound(_)
            | E::TopicNotFound(_)
            | E::SubscriptionNotFound { .. }
            | E::BucketNotFound(_) => ApiError::NotFound(msg),
            E::InvalidCursor(_) | E::InvalidStatsQuery(_) => ApiError::BadRequest(msg),
            // The function's version names a component no host stored: a broken catalog.
            E::ComponentNotFound(_) => ApiError::Internal(msg),
            E::QueueExists(_)
            | E::QueueInUse { .. }
            | E::QueueHasConsumer { .. }
            | E::QueueScheduled { .. }
            | E::TopicExists(_)
            | E::QueueSubscribed { .. }
            | E::StateConflict(_) => ApiError::Conflict(msg),
            E::InvalidName { .. }
            | E::InvalidSettings(_)
            | E::InvalidMessage(_)
            | E::InvalidTopic(_)
            | E::InvalidKv(_) => ApiError::BadRequest(msg),
            E::MessageTooLarge { .. } => ApiError::TooLarge(msg),
            E::Unavailable(_) => ApiError::Unavailable(msg),
            E::QueueFull { .. } => ApiError::QueueFull(msg),
            E::Corrupt { .. } | E::NewerSchema { .. } => ApiError::Internal(msg),
        }
    }
}

impl From<executor::Error> for ApiError {
    fn from(err: executor::Error) -> Self {
        match err {
            executor::Error::Invalid(msg) => ApiError::Unprocessable(msg),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<functions::Error> for ApiError {
    fn from(err: functions::Error) -> Self {
        match err {
            functions::Error::Store(e) => e.into(),
            functions::Error::Executor(e) => e.into(),
            err @ functions::Error::InvalidConfig(_) => ApiError::BadRequest(err.to_string()),
            err @ functions::Error::InvalidName(_) => ApiError::BadRequest(err.to_string()),
        }
    }
}

impl From<crate::pull::Error> for ApiError {
    fn from(err: crate::pull::Error) -> Self {
        use crate::pull::Error as E;
        match err {
            E::Store(err) => err.into(),
            E::HasTrigger { .. } => ApiError::Conflict(err.to_string()),
            E::Invalid(message) => ApiError::BadRequest(message),
        }
    }
}
