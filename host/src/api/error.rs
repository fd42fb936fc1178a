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
    #[error("{0}")]
    Internal(String),
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `invalid_component`,
    /// `storage_unavailable`, `internal`.
    pub code: String,
    /// What went wrong and what to do about it, for people.
    pub message: String,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            ApiError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status.is_server_error() {
            tracing::error!(%status, error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
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
            | E::TokenNotFound(_) => ApiError::NotFound(msg),
            E::QueueExists(_) | E::QueueInUse { .. } | E::QueueHasConsumer { .. } => {
                ApiError::Conflict(msg)
            }
            E::InvalidName { .. } | E::InvalidSettings(_) => ApiError::BadRequest(msg),
            E::MessageTooLarge { .. } => ApiError::TooLarge(msg),
            E::Unavailable(_) => ApiError::Unavailable(msg),
            E::QueueFull { .. } => ApiError::QueueFull(msg),
            E::Corrupt { .. } => ApiError::Internal(msg),
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
            functions::Error::InvalidConfig(msg) => ApiError::BadRequest(msg),
            functions::Error::InvalidName(msg) => ApiError::BadRequest(msg),
            functions::Error::Blob(e) => ApiError::Unavailable(format!("component storage: {e}")),
        }
    }
}
