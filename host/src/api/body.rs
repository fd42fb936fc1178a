//! Request bodies before any handler reads them: the route's size limit (413 naming the flag
//! that raises it), one budget for the bytes all requests together may have buffered (503 with
//! `Retry-After` past it, before a byte is read), and the deadline for a body to arrive (408).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::ApiError;
use crate::config::ApiLimits;

/// What the body guard needs: the limits and the shared budget.
pub(crate) struct BodyGuard {
    limits: Arc<ApiLimits>,
    budget: Arc<Budget>,
}

impl BodyGuard {
    pub(crate) fn new(limits: Arc<ApiLimits>) -> BodyGuard {
        let budget = Arc::new(Budget {
            capacity: limits.max_buffered_body_bytes,
            used: AtomicUsize::new(0),
        });
        BodyGuard { limits, budget }
    }
}

/// Bytes of request bodies buffered by all requests together, against a capacity.
struct Budget {
    capacity: usize,
    used: AtomicUsize,
}

impl Budget {
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.capacity)
            })
            .is_ok()
    }
}

/// One request's share of the budget, given back when the request is answered and its body
/// dropped (the handler may hold the buffered bytes until it answers).
struct Reservation {
    budget: Arc<Budget>,
    bytes: AtomicUsize,
}

impl Reservation {
    fn take(&self, bytes: usize) -> bool {
        let taken = self.budget.try_take(bytes);
        if taken {
            self.bytes.fetch_add(bytes, Ordering::AcqRel);
        }
        taken
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .used
            .fetch_sub(*self.bytes.get_mut(), Ordering::AcqRel);
    }
}

/// Why a body was refused while it was being read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("{}", too_large(*limit, flag, None))]
    TooLarge { limit: usize, flag: &'static str },
    #[error("{}", busy(*capacity))]
    Busy { capacity: usize },
    #[error("{}", timed_out(*timeout))]
    TimedOut { timeout: Duration },
}

impl From<&BodyError> for ApiError {
    fn from(err: &BodyError) -> ApiError {
        match err {
            BodyError::TooLarge { .. } => ApiError::TooLarge(err.to_string()),
            BodyError::Busy { .. } => ApiError::Busy(err.to_string()),
            BodyError::TimedOut { .. } => ApiError::RequestTimeout(err.to_string()),
        }
    }
}

/// Bytes in a form people read: `16 MiB`, `1500 bytes`.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The 413 message: the limit, and the flag that raises it.
pub(crate) fn too_large(limit: usize, flag: &str, declared: Option<u64>) -> String {
    let size = declared.map_or_else(String::new, |n| format!(" ({n} bytes)"));
    format!(
        "the request body{size} is larger than this route's limit of {} ({limit} bytes); send \
         less, or start the server with a higher `sluice serve {flag} BYTES`",
        human_bytes(limit)
    )
}

fn busy(capacity: usize) -> String {
    format!(
        "the server is already buffering its limit of {} of request bodies; retry after the \
         time in `Retry-After`, or start the server with a higher `sluice serve \
         --max-buffered-body-bytes BYTES`",
        human_bytes(capacity)
    )
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "the request body did not arrive within {}; send it faster, or start the server with a \
         longer `sluice serve --body-read-timeout`",
        humantime::format_duration(timeout)
    )
}

/// The route's body limit and the flag that sets it: component uploads may be larger.
fn route_limit(limits: &ApiLimits, method: &Method, path: &str) -> (usize, &'static str) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if *method == Method::PUT && matches!(segments.as_slice(), ["v1", "functions", _]) {
        (limits.max_function_bytes, "--max-function-bytes")
    } else {
        (limits.max_body_bytes, "--max-body-bytes")
    }
}

/// Checks the declared size against the route's limit and reserves it from the budget before
/// anything is read; the body is then counted as it arrives (a chunked body reserves as it
/// grows) and must arrive before the deadline.
pub(crate) async fn guard(
    State(guard): State<Arc<BodyGuard>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.body().is_end_stream() {
        return Ok(next.run(request).await);
    }
    let (limit, flag) = route_limit(&guard.limits, request.method(), request.uri().path());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return Err(ApiError::TooLarge(too_large(limit, flag, Some(length))));
    }
    let reservation = Arc::new(Reservation {
        budget: guard.budget.clone(),
        bytes: AtomicUsize::new(0),
    });
    let reserved = declared.unwrap_or(0) as usize;
    if !reservation.take(reserved) {
        return Err(ApiError::Busy(busy(guard.budget.capacity)));
    }
    let timeout = guard.limits.body_read_timeout;
    let request = request.map(|inner| {
        Body::new(GuardedBody {
            inner,
            limit,
            flag,
            read: 0,
            reserved,
            reservation: reservation.clone(),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        })
    });
    let response = next.run(request).await;
    drop(reservation);
    Ok(response)
}

/// A request body that counts what arrives against the route's limit and the budget, and
/// fails when the deadline passes first.
struct GuardedBody {
    inner: Body,
    limit: usize,
    flag: &'static str,
    read: usize,
    reserved: usize,
    reservation: Arc<Reservation>,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl GuardedBody {
    fn fail(&self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Poll::Ready(Some(Err(axum::Error::new(error))))
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let timed_out = BodyError::TimedOut {
            timeout: this.timeout,
        };
        if Instant::now() >= this.deadline.deadline() {
            return this.fail(timed_out);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len();
                    if this.read > this.limit {
                        return this.fail(BodyError::TooLarge {
                            limit: this.limit,
                            flag: this.flag,
                        });
                    }
                    if this.read > this.reserved {
                        let more = this.read - this.reserved;
                        if !this.reservation.take(more) {
                            return this.fail(BodyError::Busy {
                                capacity: this.reservation.budget.capacity,
                            });
                        }
                        this.reserved = this.read;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return this.fail(timed_out);
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_what_would_pass_its_capacity_and_takes_back_what_is_dropped() {
        let budget = Arc::new(Budget {
            capacity: 100,
            used: AtomicUsize::new(0),
        });
        let first = Reservation {
            budget: budget.clone(),
            bytes: AtomicUsize::new(0),
        };
        assert!(first.take(60));
        let second = Reservation {
            budget: budget.clone(),
            bytes: AtomicUsize::new(0),
        };
        assert!(!second.take(41), "60 + 41 > 100");
        assert!(second.take(40));
        drop(first);
        assert_eq!(budget.used.load(Ordering::Acquire), 40);
        drop(second);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }

    #[test]
    fn uploads_have_their_own_limit_and_flag() {
        let limits = ApiLimits::default();
        let (limit, flag) = route_limit(&limits, &Method::PUT, "/v1/functions/f");
        assert_eq!(
            (limit, flag),
            (limits.max_function_bytes, "--max-function-bytes")
        );
        let (limit, flag) = route_limit(&limits, &Method::PUT, "/v1/functions/f/trigger");
        assert_eq!((limit, flag), (limits.max_body_bytes, "--max-body-bytes"));
        let message = too_large(16 * 1024 * 1024, "--max-body-bytes", Some(20_000_000));
        assert!(
            message.contains("16 MiB") && message.contains("--max-body-bytes"),
            "{message}"
        );
    }
}
