//! SQS's errors: each code with the names both protocols use for it (the JSON protocol's
//! `__type` and the query protocol's code, which JSON answers repeat in `x-amzn-query-error`),
//! its status and whose fault it is; and how Sluice's own errors map onto them.

use crate::api::BodyError;
use crate::{pull, store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    MessageNotInflight,
    BatchEntryIdsNotDistinct,
    EmptyBatchRequest,
    TooManyEntriesInBatchRequest,
    InvalidBatchEntryId,
    InvalidParameterValue,
    MissingParameter,
    InvalidAttributeName,
    InvalidAttributeValue,
    BatchRequestTooLong,
    ResourceNotFound,
    InvalidAction,
    UnsupportedOperation,
    AccessDenied,
    MissingAuthenticationToken,
    IncompleteSignature,
    InvalidClientTokenId,
    SignatureDoesNotMatch,
    OverLimit,
    InternalError,
    ServiceUnavailable,
    RequestTimeout,
}

impl Code {
    /// The JSON protocol's `__type` (after `com.amazonaws.sqs#`).
    pub fn json_type(self) -> &'static str {
        match self {
            Code::QueueDoesNotExist => "QueueDoesNotExist",
            Code::QueueNameExists => "QueueNameExists",
            Code::ReceiptHandleIsInvalid => "ReceiptHandleIsInvalid",
            Code::MessageNotInflight => "MessageNotInflight",
            Code::BatchEntryIdsNotDistinct => "BatchEntryIdsNotDistinct",
            Code::EmptyBatchRequest => "EmptyBatchRequest",
            Code::TooManyEntriesInBatchRequest => "TooManyEntriesInBatchRequest",
            Code::InvalidBatchEntryId => "InvalidBatchEntryId",
            Code::UnsupportedOperation => "UnsupportedOperation",
            Code::BatchRequestTooLong => "BatchRequestTooLong",
            Code::ResourceNotFound => "ResourceNotFoundException",
            Code::OverLimit => "OverLimit",
            other => other.query_code(),
        }
    }

    /// The query protocol's code.
    pub fn query_code(self) -> &'static str {
        match self {
            Code::QueueDoesNotExist => "AWS.SimpleQueueService.NonExistentQueue",
            Code::QueueNameExists => "QueueAlreadyExists",
            Code::ReceiptHandleIsInvalid => "ReceiptHandleIsInvalid",
            Code::MessageNotInflight => "AWS.SimpleQueueService.MessageNotInflight",
            Code::BatchEntryIdsNotDistinct => "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            Code::EmptyBatchRequest => "AWS.SimpleQueueService.EmptyBatchRequest",
            Code::TooManyEntriesInBatchRequest => {
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
            }
            Code::InvalidBatchEntryId => "AWS.SimpleQueueService.InvalidBatchEntryId",
            Code::InvalidParameterValue => "InvalidParameterValue",
            Code::MissingParameter => "MissingParameter",
            Code::InvalidAttributeName => "InvalidAttributeName",
            Code::InvalidAttributeValue => "InvalidAttributeValue",
            Code::BatchRequestTooLong => "AWS.SimpleQueueService.BatchRequestTooLong",
            Code::ResourceNotFound => "ResourceNotFoundException",
            Code::InvalidAction => "InvalidAction",
            Code::UnsupportedOperation => "AWS.SimpleQueueService.UnsupportedOperation",
            Code::AccessDenied => "AccessDenied",
            Code::MissingAuthenticationToken => "MissingAuthenticationToken",
            Code::IncompleteSignature => "IncompleteSignature",
            Code::InvalidClientTokenId => "InvalidClientTokenId",
            Code::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Code::OverLimit => "OverLimit",
            Code::InternalError => "InternalError",
            Code::ServiceUnavailable => "ServiceUnavailable",
            Code::RequestTimeout => "RequestTimeout",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Code::ReceiptHandleIsInvalid | Code::ResourceNotFound => 404,
            Code::AccessDenied
            | Code::MissingAuthenticationToken
            | Code::InvalidClientTokenId
            | Code::SignatureDoesNotMatch
            | Code::OverLimit => 403,
            Code::InternalError => 500,
            Code::ServiceUnavailable => 503,
            Code::RequestTimeout => 408,
            _ => 400,
        }
    }

    /// `Sender` (the client's fault) or `Receiver` (ours).
    pub fn fault(self) -> &'static str {
        match self {
            Code::InternalError | Code::ServiceUnavailable => "Receiver",
            _ => "Sender",
        }
    }
}

/// An error as SQS clients understand it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqsError {
    pub code: Code,
    pub message: String,
}

impl SqsError {
    pub fn new(code: Code, message: impl Into<String>) -> SqsError {
        SqsError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> SqsError {
        SqsError::new(Code::InvalidParameterValue, message)
    }
    /// SQS's answer for a queue that does not exist, worded as SQS words it: clients and
    /// scripts written against SQS match on it.
    pub fn no_queue() -> SqsError {
        SqsError::new(
            Code::QueueDoesNotExist,
            "The specified queue does not exist.",
        )
    }
    /// A body that could not be read: the body guard's refusals (size, budget, deadline) keep
    /// their message, which says what to do.
    pub(crate) fn unreadable_body(err: &axum::Error) -> SqsError {
        let Some(refusal) = BodyError::behind(err) else {
            return SqsError::invalid(format!("the request body could not be read: {err}"));
        };
        let code = match refusal {
            BodyError::TooLarge { .. } => Code::InvalidParameterValue,
            BodyError::Busy { .. } => Code::ServiceUnavailable,
            BodyError::TimedOut { .. } => Code::RequestTimeout,
        };
        SqsError::new(code, refusal.to_string())
    }
    pub fn missing(name: &str) -> SqsError {
        SqsError::new(
            Code::MissingParameter,
            format!("The request must contain the parameter {name}."),
        )
    }
}

impl From<store::Error> for SqsError {
    fn from(err: store::Error) -> SqsError {
        let message = err.to_string();
        let code = match err {
            store::Error::QueueNotFound(_) => return SqsError::no_queue(),
            store::Error::QueueExists(_) => Code::QueueNameExists,
            store::Error::InvalidName { .. }
            | store::Error::InvalidSettings(_)
            | store::Error::InvalidMessage(_)
            | store::Error::QueueInUse { .. }
            | store::Error::QueueHasConsumer { .. }
            | store::Error::MessageTooLarge { .. } => Code::InvalidParameterValue,
            store::Error::QueueFull { .. } => Code::OverLimit,
            store::Error::Unavailable(_) => Code::ServiceUnavailable,
            _ => Code::InternalError,
        };
        if code == Code::InternalError {
            tracing::error!(%err, "SQS request failed");
        }
        SqsError::new(code, message)
    }
}

impl From<pull::Error> for SqsError {
    fn from(err: pull::Error) -> SqsError {
        match err {
            pull::Error::Store(e) => e.into(),
            e @ pull::Error::HasTrigger { .. } => {
                SqsError::new(Code::UnsupportedOperation, e.to_string())
            }
            pull::Error::Invalid(m) => SqsError::invalid(m),
        }
    }
}
