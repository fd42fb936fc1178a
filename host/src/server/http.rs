//! The HTTP front door of every listener (the API with the console, the SQS endpoint): accepts
//! connections under one cap shared by all listeners that fits the open-file limit, serves
//! each with hyper under idle and header deadlines, holds every request body to the body guard
//! before the router sees the request, makes room at the cap by closing connections that are
//! only waiting for a request, and keeps `/healthz` and `/readyz` answering when every served
//! connection is busy.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Method, Request, StatusCode};
use axum::response::IntoResponse;
use futures::task::AtomicWaker;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::api::{ApiError, BodyGuard, human_bytes};
use crate::config::ConnectionLimits;

/// File descriptors kept for everything but connections: the database, its WAL and shared
/// memory, components and compiled artifacts being read, the runtime's own.
const RESERVED_FDS: u64 = 128;
/// Connections served beyond the cap while every served one is busy with a request: they get
/// `/healthz` and `/readyz`, and a quick 503 for anything else. Past these, new connections
/// are closed as soon as they are accepted.
const OVERFLOW: usize = 32;
/// Idle and header deadline of an overflow connection, which answers one request.
const OVERFLOW_TIMEOUT: Duration = Duration::from_secs(2);
/// Failing accepts are logged at most once per interval.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long shutdown lets open connections finish the request they are serving.
pub(crate) const DRAIN: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard one and returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(err) => {
            tracing::warn!(%err, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The connections to serve at once: what was asked for, lowered to what the open-file limit
/// leaves after the host's own files and the overflow connections.
pub fn connection_cap(wanted: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else {
        return wanted.max(1);
    };
    let fits = open_files.saturating_sub(RESERVED_FDS + OVERFLOW as u64);
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    if fits < wanted {
        tracing::warn!(
            wanted,
            serving = fits.max(1),
            open_files,
            "--max-connections lowered to fit the open-file limit (raise it with `ulimit -n` or \
             systemd's LimitNOFILE)"
        );
    }
    wanted.min(fits).max(1)
}

/// The connection slots every listener of the host shares: one cap sized from the open-file
/// limit, one overflow, and the served connections to make room among, whichever listener
/// accepted them.
pub(crate) struct Gate {
    limits: ConnectionLimits,
    cap: usize,
    slots: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    registry: Registry,
    overflow_registry: Registry,
}

impl Gate {
    pub(crate) fn new(limits: ConnectionLimits, open_files: Option<u64>) -> Arc<Gate> {
        let cap = connection_cap(limits.max_connections, open_files);
        tracing::info!(max_connections = cap, "serving HTTP");
        Arc::new(Gate {
            limits,
            cap,
            slots: Arc::new(Semaphore::new(cap)),
            overflow: Arc::new(Semaphore::new(OVERFLOW)),
            registry: Registry::default(),
            overflow_registry: Registry::default(),
        })
    }
}

/// Serves `app` on `listener` through the shared `gate`, every request body held to `bodies`,
/// until `shutdown`; then lets open connections finish their request (for a bounded time).
/// Fails only when the listener itself is broken (see [`is_listener_error`]).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    bodies: BodyGuard,
    gate: Arc<Gate>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let front = Arc::new(Front {
        app,
        bodies,
        gate,
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    let mut accept_errors = Throttle::new(ACCEPT_ERROR_LOG_INTERVAL);
    let mut failure = Ok(());
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) if is_listener_error(&err) => {
                failure = Err(err);
                break;
            }
            Err(err) => {
                if let Some(suppressed) = accept_errors.should_log(Instant::now()) {
                    tracing::error!(
                        %err,
                        suppressed,
                        "cannot accept connections (logged at most once every {}s)",
                        ACCEPT_ERROR_LOG_INTERVAL.as_secs()
                    );
                }
                // Out of file descriptors, the listener stays ready and accept fails at once:
                // wait for one of ours to close, or a moment when the shortage is elsewhere.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = front.gate.registry.closed.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gate = &front.gate;
        // A free slot, or at the cap the slot of the oldest connection that is only waiting
        // for a request: it is closed and the new one is served in its place.
        let slot = match gate.slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => gate.registry.evict_one(),
        };
        if let Some(slot) = slot {
            let conn = gate.registry.add(slot);
            tracker.spawn(front.clone().serve(stream, conn, false));
            continue;
        }
        // Every slot busy with a request: a few more connections get one answer each. Past
        // those, the connection is closed at once: refused quickly, and the connections
        // being served keep their slots.
        // An overflow connection still waiting for its request makes room the same way.
        let overflow = match gate.overflow.clone().try_acquire_owned() {
            Ok(overflow) => Some(overflow),
            Err(_) => gate.overflow_registry.evict_one(),
        };
        if let Some(overflow) = overflow {
            let conn = gate.overflow_registry.add(overflow);
            tracker.spawn(front.clone().serve(stream, conn, true));
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!(
            "connections still open {}s after shutdown began; leaving them",
            DRAIN.as_secs()
        );
    }
    failure
}

/// Errors that say the listening socket itself is unusable, so accepting again cannot
/// succeed; anything else (a shortage of descriptors or memory, a network hiccup) passes.
fn is_listener_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Lets an event through at most once per interval, counting the ones held back.
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held back since the last one)` when this event may be logged.
    fn should_log(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One listener's side of the front door: what it serves, its bodies' limits, and the gate
/// it shares with the host's other listeners.
struct Front {
    app: Router,
    bodies: BodyGuard,
    gate: Arc<Gate>,
    shutdown: CancellationToken,
}

impl Front {
    /// Serves one connection until it closes, is evicted, or the server shuts down.
    /// An overflow connection answers one request: health checks, or 503.
    async fn serve(self: Arc<Self>, stream: TcpStream, conn: Arc<Conn>, overflow: bool) {
        let limits = &self.gate.limits;
        let (idle, header) = if overflow {
            (OVERFLOW_TIMEOUT, OVERFLOW_TIMEOUT)
        } else {
            (limits.idle_timeout, limits.header_read_timeout)
        };
        let io = TokioIo::new(TimedIo::new(
            stream,
            conn.clone(),
            idle,
            header,
            limits.max_header_bytes,
        ));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(64 * 1024))
            .keep_alive(!overflow);
        let app = self.app.clone();
        let bodies = self.bodies.clone();
        let cap = self.gate.cap;
        let tracked = conn.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::enter(tracked.clone());
            let app = app.clone();
            // Before the router (and authentication) sees the request: whoever reads the body
            // reads it through the guard.
            let (request, reservation) = bodies.wrap(request);
            async move {
                let response = if overflow && !is_health_check(&request) {
                    ApiError::Busy(format!(
                        "the server is serving its limit of {cap} connections, each busy with a \
                         request; retry after the time in `Retry-After`, or start the server \
                         with a higher `sluice serve --max-connections`"
                    ))
                    .into_response()
                } else {
                    let response = match app.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    drop(reservation);
                    response
                };
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let finished = tokio::select! {
            result = connection.as_mut() => Some(result),
            () = conn.evict.notified() => None,
            () = self.shutdown.cancelled() => None,
        };
        let result = match finished {
            Some(result) => result,
            // Evicted or shutting down while only waiting for a request: close at once
            // (hyper's graceful shutdown would wait for a first request that may never come).
            None if conn.in_flight.load(Ordering::Acquire) == 0 => Ok(()),
            // Serving a request: close after its answer.
            None => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        };
        if let Err(err) = result {
            tracing::debug!(%err, "connection closed");
        }
        // Give the slot back, unless an eviction handed it to a new connection already.
        let registry = if overflow {
            &self.gate.overflow_registry
        } else {
            &self.gate.registry
        };
        registry.remove(&conn);
    }
}

fn is_health_check<B>(request: &Request<B>) -> bool {
    (request.method() == Method::GET || request.method() == Method::HEAD)
        && matches!(request.uri().path(), "/healthz" | "/readyz")
}

/// What the accept loop knows of one served connection.
#[derive(Default)]
struct Conn {
    id: u64,
    /// Requests handed to the router whose answer is not yet written.
    in_flight: AtomicUsize,
    /// Answers written; each starts a new wait for a request.
    answered: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
    /// The connection's slot, taken by whoever evicts it.
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    /// The reader waiting while a request is served, woken when its answer is written so the
    /// idle deadline starts.
    reader: AtomicWaker,
}

/// Served connections, oldest first, so the cap can close one that only waits.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    /// Woken when a connection closes.
    closed: Notify,
}

impl Registry {
    /// Registers a connection as it is accepted, before it is served, so an eviction that
    /// follows at once can already choose it.
    fn add(&self, slot: OwnedSemaphorePermit) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            slot: Mutex::new(Some(slot)),
            ..Conn::default()
        });
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        conn
    }

    /// Forgets a closed connection and gives back its slot, if it still has it.
    fn remove(&self, conn: &Conn) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn.id);
        drop(conn.slot.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.closed.notify_waiters();
    }

    /// Asks the oldest connection that is waiting for a request (idle, or with its head
    /// partly sent) to close, and takes its slot; a connection serving a request is never
    /// chosen.
    fn evict_one(&self) -> Option<OwnedSemaphorePermit> {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for conn in conns.values() {
            if conn.in_flight.load(Ordering::Acquire) == 0
                && !conn.evicted.swap(true, Ordering::AcqRel)
            {
                let slot = conn.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                conn.evict.notify_one();
                if slot.is_some() {
                    return slot;
                }
            }
        }
        None
    }
}

/// Counts a request from the moment the router gets it until its answer is written.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn enter(conn: Arc<Conn>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.answered.fetch_add(1, Ordering::AcqRel);
            self.0.reader.wake();
        }
    }
}

/// A response body that keeps its request counted until hyper has written it and dropped it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, with the idle and header deadlines, and JSON bodies for the errors
/// hyper answers by itself.
///
/// While no request is being served, a connection must send a request's first byte within
/// `idle` (from when it opened or its last answer was written) and the rest of the head within
/// `header`; otherwise reading fails and hyper closes it. Once a request is handed to the
/// router, the body guard's deadline takes over.
///
/// hyper answers a request it cannot parse (400), a target too long (414) or a head too large
/// (431) itself, with an empty body that cannot be configured. Those answers are recognised as
/// they are written (a 4xx head with `content-length: 0`, which the API never sends since its
/// errors are JSON) and replaced by the same status with the JSON error body.
struct TimedIo {
    stream: TcpStream,
    conn: Arc<Conn>,
    idle: Duration,
    header: Duration,
    max_header_bytes: usize,
    answered_seen: u64,
    head_started: bool,
    deadline: Pin<Box<Sleep>>,
    /// The JSON answer written in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl TimedIo {
    fn new(
        stream: TcpStream,
        conn: Arc<Conn>,
        idle: Duration,
        header: Duration,
        max_header_bytes: usize,
    ) -> TimedIo {
        TimedIo {
            stream,
            conn,
            idle,
            header,
            max_header_bytes,
            answered_seen: 0,
            head_started: false,
            deadline: Box::pin(tokio::time::sleep(idle)),
            replacement: None,
        }
    }

    fn arm(&mut self, after: Duration) {
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    fn replace(&mut self, status: StatusCode) {
        let message = match status {
            StatusCode::URI_TOO_LONG => {
                "the request target is longer than the server accepts; shorten the path and query"
                    .to_owned()
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
                "the request head (request line and headers) is larger than {} or has more than \
                 100 headers; send fewer or smaller headers, or start the server with a higher \
                 `sluice serve --max-header-bytes BYTES`",
                human_bytes(self.max_header_bytes)
            ),
            _ => "the request is not valid HTTP/1.1: its request line, a header, or its framing \
                  (Content-Length, Transfer-Encoding) is malformed"
                .to_owned(),
        };
        let (status, body) = ApiError::for_status(status, message).status_and_body();
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            json.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&json);
        self.replacement = Some((bytes, 0));
    }

    /// Writes what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((bytes, written)) = &mut self.replacement else {
            return Poll::Ready(Ok(()));
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// The status of hyper's own error answer, if `buf` is one: a whole 4xx head with
/// `content-length: 0` and nothing after it.
fn automatic_error(buf: &[u8]) -> Option<StatusCode> {
    if !buf.starts_with(b"HTTP/1.1 4") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let status = StatusCode::from_bytes(buf.get(9..12)?).ok()?;
    let head = std::str::from_utf8(buf).ok()?.to_ascii_lowercase();
    head.contains("\r\ncontent-length: 0\r\n").then_some(status)
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let answered = this.conn.answered.load(Ordering::Acquire);
        if answered != this.answered_seen {
            this.answered_seen = answered;
            this.head_started = false;
            this.arm(this.idle);
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        let waiting = this.conn.in_flight.load(Ordering::Acquire) == 0;
        match poll {
            Poll::Ready(Ok(())) => {
                if waiting && !this.head_started && buf.filled().len() > before {
                    this.head_started = true;
                    this.arm(this.header);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if !waiting => {
                this.conn.reader.register(cx.waker());
                // The answer may have been written since `waiting` was read.
                if this.conn.in_flight.load(Ordering::Acquire) == 0 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    let what = if this.head_started {
                        "the request head did not arrive within the header-read timeout"
                    } else {
                        "no request within the idle timeout"
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacement.is_none()
            && let Some(status) = automatic_error(buf)
        {
            this.replace(status);
        }
        if this.replacement.is_some() {
            ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacement.is_none() {
            let mut written = bufs.iter().filter(|b| !b.is_empty());
            if let (Some(only), None) = (written.next(), written.next())
                && let Some(status) = automatic_error(only)
            {
                this.replace(status);
            }
        }
        if this.replacement.is_some() {
            ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(connection_cap(1024, Some(1_048_576)), 1024);
        assert_eq!(
            connection_cap(1024, Some(1024)),
            1024 - RESERVED_FDS as usize - OVERFLOW
        );
        assert_eq!(connection_cap(1024, Some(10)), 1, "never zero");
        assert_eq!(connection_cap(50, None), 50);
    }

    #[test]
    fn only_a_broken_listening_socket_stops_the_listener() {
        for errno in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            let err = io::Error::from_raw_os_error(errno);
            assert!(is_listener_error(&err), "{err}");
        }
        // Shortages and network hiccups pass: accepting again may succeed.
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EPROTO,
        ] {
            let err = io::Error::from_raw_os_error(errno);
            assert!(!is_listener_error(&err), "{err}");
        }
    }

    #[test]
    fn accept_errors_are_logged_once_per_interval_with_a_count_of_the_rest() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.should_log(start), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(throttle.should_log(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(
            throttle.should_log(start + Duration::from_secs(10)),
            Some(3)
        );
        assert_eq!(throttle.should_log(start + Duration::from_secs(11)), None);
    }

    #[test]
    fn only_hypers_empty_error_answers_are_replaced() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            automatic_error(hyper),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 57\r\n\r\n";
        assert_eq!(automatic_error(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert_eq!(automatic_error(with_body), None);
        assert_eq!(
            automatic_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
    }
}
