//! Request bodies on every listener, before any handler (or authentication) reads them: the
//! route's size limit (413 naming the flag that raises it), one budget for the bytes all
//! requests of all listeners together may have buffered (503 with `Retry-After` past it, before
//! a byte is read), and the deadline for a body to arrive (408). The HTTP front door wraps
//! every request's body; nothing is counted until a handler reads it, so a request refused
//! before its body is read costs nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Method, Request, header};
use bytes::BytesMut;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use super::ApiError;
use crate::config::ApiLimits;

/// Which routes a listener serves, for their body limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routes {
    /// The HTTP API and the console: component uploads have their own limit.
    Api,
    /// The SQS endpoint: every request has the message routes' limit.
    Sqs,
}

/// The limits and the budget every listener's bodies are held to; clones share the budget.
#[derive(Clone)]
pub(crate) struct BodyGuard {
    limits: Arc<ApiLimits>,
    budget: Arc<Budget>,
    routes: Routes,
}

impl BodyGuard {
    /// A guard with a budget of its own, for the API's routes.
    pub(crate) fn new(limits: Arc<ApiLimits>) -> BodyGuard {
        let budget = Arc::new(Budget {
            capacity: limits.max_buffered_body_bytes,
            used: AtomicUsize::new(0),
        });
        BodyGuard {
            limits,
            budget,
            routes: Routes::Api,
        }
    }

    /// The same budget, for a listener serving `routes`.
    pub(crate) fn for_routes(&self, routes: Routes) -> BodyGuard {
        BodyGuard {
            routes,
            ..self.clone()
        }
    }

    /// Wraps a request's body so that it is limited, budgeted and timed as it is read, and
    /// returns the request's share of the budget, to keep until the request is answered (the
    /// handler may hold the buffered bytes until then).
    pub(crate) fn wrap<B>(&self, request: Request<B>) -> (Request<Body>, Option<Arc<Reservation>>)
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if request.body().is_end_stream() {
            return (request.map(Body::new), None);
        }
        let (limit, flag) = match self.routes {
            Routes::Api => route_limit(&self.limits, request.method(), request.uri().path()),
            Routes::Sqs => (self.limits.max_body_bytes, "--max-body-bytes"),
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let reservation = Arc::new(Reservation {
            budget: self.budget.clone(),
            bytes: AtomicUsize::new(0),
        });
        let timeout = self.limits.body_read_timeout;
        let request = request.map(|inner| {
            Body::new(GuardedBody {
                inner: Body::new(inner),
                limit,
                flag,
                declared,
                started: false,
                read: 0,
                reserved: 0,
                reservation: reservation.clone(),
                timeout,
                deadline: Box::pin(tokio::time::sleep(timeout)),
            })
        });
        (request, Some(reservation))
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
pub(crate) struct Reservation {
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
    #[error("{}", too_large(*limit, flag, *declared))]
    TooLarge {
        limit: usize,
        flag: &'static str,
        /// The `Content-Length` the request declared, when that is what was too large.
        declared: Option<u64>,
    },
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

impl BodyError {
    /// The guard's refusal behind a failure to read a body, if that is what it is.
    pub(crate) fn behind<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        let mut source = Some(err);
        while let Some(error) = source {
            if let Some(refusal) = error.downcast_ref::<BodyError>() {
                return Some(refusal);
            }
            source = error.source();
        }
        None
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

/// A request body that counts what arrives against the route's limit and the budget, and
/// fails when the deadline passes first.
struct GuardedBody {
    inner: Body,
    limit: usize,
    flag: &'static str,
    /// The declared `Content-Length`, checked and reserved when the body is first read.
    declared: Option<u64>,
    started: bool,
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
        if !this.started {
            this.started = true;
            if let Some(length) = this.declared {
                if length > this.limit as u64 {
                    return this.fail(BodyError::TooLarge {
                        limit: this.limit,
                        flag: this.flag,
                        declared: Some(length),
                    });
                }
                // Reserved whole before a byte is read: past the budget, the client is
                // refused at once instead of after sending its body.
                let length = length as usize;
                if !this.reservation.take(length) {
                    return this.fail(BodyError::Busy {
                        capacity: this.reservation.budget.capacity,
                    });
                }
                this.reserved = length;
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len();
                    if this.read > this.limit {
                        return this.fail(BodyError::TooLarge {
                            limit: this.limit,
                            flag: this.flag,
                            declared: None,
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

/// Reads a whole body (at most `limit` bytes) into one buffer sized from its declared length,
/// so a body costs its length once: collecting the frames and joining them at the end, as
/// `axum::body::to_bytes` does, holds it twice for a moment.
pub(crate) async fn read_to_bytes(mut body: Body, limit: usize) -> Result<Bytes, axum::Error> {
    let hint = body.size_hint();
    let expected = hint.exact().unwrap_or(hint.lower()).min(limit as u64);
    let expected = usize::try_from(expected).unwrap_or(limit);
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            // Allocated once the first bytes are in, so the guard has admitted the body.
            if bytes.capacity() == 0 {
                bytes.reserve(expected.max(data.len()));
            }
            if bytes.len() + data.len() > limit {
                return Err(axum::Error::new(BodyError::TooLarge {
                    limit,
                    flag: "--max-body-bytes",
                    declared: None,
                }));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
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

    #[tokio::test]
    async fn a_body_costs_nothing_until_read_and_one_past_the_budget_is_refused_unread() {
        let limits = Arc::new(ApiLimits {
            max_buffered_body_bytes: 100,
            ..ApiLimits::default()
        });
        let guard = BodyGuard::new(limits).for_routes(Routes::Sqs);
        let used = || guard.budget.used.load(Ordering::Acquire);
        let request = |n: usize| {
            Request::post("/")
                .header(header::CONTENT_LENGTH, n)
                .body(http_body_util::Full::new(Bytes::from(vec![b'x'; n])))
                .unwrap()
        };
        let (first, held) = guard.wrap(request(80));
        let (second, _) = guard.wrap(request(80));
        assert_eq!(used(), 0, "nothing read, nothing reserved");
        let read = read_to_bytes(first.into_body(), 1000).await.unwrap();
        assert_eq!((read.len(), used()), (80, 80));
        let refused = read_to_bytes(second.into_body(), 1000).await.unwrap_err();
        assert!(
            matches!(
                BodyError::behind(&refused),
                Some(BodyError::Busy { capacity: 100 })
            ),
            "{refused}"
        );
        drop(held);
        assert_eq!(
            used(),
            0,
            "the share comes back once the request is answered"
        );
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
