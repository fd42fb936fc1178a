//! Outbound HTTP for handlers (`wasi:http/outgoing-handler`): the one host-wide client with its
//! connection pool and cap, and, per invocation, the hooks `wasmtime-wasi-http` sends every
//! request through: the function's allow-list ([`allow`]), the SSRF guard on resolved
//! addresses, the limits (concurrent requests, response bytes, time to the response head, the
//! invocation's deadline), and a line in the invocation's log plus metrics for each request.
//!
//! Requests run on the tokio runtime while the instance waits on its fiber, holding no thread.
//! Redirects are never followed by the host: a 3xx goes back to the handler as it came.

pub mod allow;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::sandbox::Logs;
pub use allow::AllowList;
use allow::{Denial, Reach};

/// How long a connection may take to establish (TCP and TLS), unless the handler asks for less.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight across the whole host, every function together: the cap on the pool's
/// open connections. A request beyond it waits for one to finish (within its own limits).
pub const MAX_HOST_CONNECTIONS: usize = 1024;
/// Idle pooled connections kept per upstream host, and for how long.
const IDLE_PER_HOST: usize = 64;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A function version's outbound HTTP settings.
#[derive(Debug, Clone)]
pub struct OutboundLimits {
    /// The function's name, for metrics.
    pub function: Arc<str>,
    /// Where its handler may send requests: nowhere when empty.
    pub allow: Arc<AllowList>,
    /// Requests one invocation may have in flight at once; more wait for one to finish.
    pub max_concurrent: usize,
    /// Response body bytes one request may read; past it the body fails with
    /// `HTTP-response-body-size`.
    pub max_response_bytes: u64,
    /// From sending a request to its response head (connecting included).
    pub timeout: Duration,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            function: Arc::from(""),
            allow: Arc::new(AllowList::default()),
            max_concurrent: 16,
            max_response_bytes: 16 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

type Pool<R> = HyperClient<HttpsConnector<HttpConnector<R>>, WasiBody>;

/// The host-wide HTTP client: one pool for requests that may reach only public addresses and
/// one for requests to hosts a pattern names exactly, so a connection opened for one is never
/// reused for the other. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    public: Pool<PublicResolver>,
    named: Pool<GaiResolver>,
    connections: Arc<Semaphore>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// TLS trusts the Mozilla root store compiled into the binary (webpki-roots), so it does
    /// not depend on the machine's certificate files.
    pub fn new() -> Result<Client, String> {
        Ok(Client {
            public: pool(PublicResolver)?,
            named: pool(GaiResolver::new())?,
            connections: Arc::new(Semaphore::new(MAX_HOST_CONNECTIONS)),
        })
    }
}

fn pool<R>(resolver: R) -> Result<Pool<R>, String>
where
    R: tower::Service<Name> + Clone + Send + Sync + 'static,
    R::Response: Iterator<Item = SocketAddr>,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R::Future: Send,
{
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    // ring, the provider wasmtime-wasi-http builds already; rustls now nudges towards aws-lc-rs
    // for post-quantum key exchange, which would add a C and CMake build to every build.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| format!("TLS setup: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .build(tls))
}

/// Resolves names like the system resolver, keeping only public addresses: a wildcard pattern
/// lets a request reach a name, never a private network behind it.
#[derive(Clone, Copy, Debug)]
struct PublicResolver;

/// A name that resolved only to addresses a wildcard pattern may not reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{name}` resolves only to non-public addresses ({addresses}), which only a pattern naming that exact host may reach"
)]
struct PrivateName {
    name: String,
    addresses: String,
}

impl tower::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| allow::is_public(a.ip()))
                .collect();
            if public.is_empty() && !all.is_empty() {
                let addresses: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(PrivateName {
                    name: name.as_str().to_owned(),
                    addresses: addresses.join(", "),
                }) as Self::Error);
            }
            Ok(public.into_iter())
        })
    }
}

/// The `wasi:http` hooks of one invocation.
pub(super) struct Hooks {
    client: Client,
    limits: OutboundLimits,
    in_flight: Arc<Semaphore>,
    logs: Logs,
    deadline: Option<Instant>,
}

impl Hooks {
    pub(super) fn new(
        client: Client,
        limits: OutboundLimits,
        logs: Logs,
        deadline: Option<Instant>,
    ) -> Hooks {
        Hooks {
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            client,
            limits,
            logs,
            deadline,
        }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let started = Instant::now();
        let call = Call::of(&request, &self.limits.function, self.logs.clone());
        let reach = match self.check(request.uri()) {
            Ok(reach) => reach,
            Err(denial) => {
                call.finish(started, Err(("denied", denial.to_string())));
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        let client = self.client.clone();
        let in_flight = self.in_flight.clone();
        let max_bytes = self.limits.max_response_bytes;
        // The time to the response head: the function's limit, shortened by what the handler
        // asked for and by what is left of the invocation.
        let mut timeout = self.limits.timeout;
        if let Some(options) = options {
            let asked = options.connect_timeout.unwrap_or(Duration::ZERO)
                + options.first_byte_timeout.unwrap_or(timeout);
            timeout = timeout.min(asked);
        }
        if let Some(deadline) = self.deadline {
            timeout = timeout.min(deadline.saturating_duration_since(started));
        }
        Box::new(async move {
            let sent = async {
                let invocation = in_flight.acquire_owned().await.ok();
                let host = client.connections.clone().acquire_owned().await.ok();
                let response = match reach {
                    Reach::Public => client.public.request(request).await,
                    Reach::Named => client.named.request(request).await,
                };
                (response, invocation, host)
            };
            let (response, invocation, host) = match tokio::time::timeout(timeout, sent).await {
                Ok(sent) => sent,
                Err(_) => {
                    call.finish(
                        started,
                        Err((
                            "timeout",
                            format!("no response within {timeout:?} (the function's outbound_timeout_ms, or what was left of its timeout_ms)"),
                        )),
                    );
                    return Err(HttpError::ConnectionReadTimeout);
                }
            };
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    let (code, outcome, message) = classify(&error);
                    call.finish(started, Err((outcome, message)));
                    return Err(code);
                }
            };
            call.finish(started, Ok(response.status().as_u16()));
            let response = response.map(|incoming| {
                CappedBody {
                    inner: incoming,
                    left: max_bytes,
                    max: max_bytes,
                    call,
                    _permits: (invocation, host),
                }
                .boxed_unsync()
            });
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

impl Hooks {
    fn check(&self, uri: &http::Uri) -> Result<Reach, Denial> {
        let unsupported = || Denial::Unsupported {
            url: uri.to_string(),
        };
        let scheme = uri.scheme_str().ok_or_else(unsupported)?;
        let scheme = scheme.to_ascii_lowercase();
        let port = match uri.port_u16() {
            Some(port) => port,
            None => allow::default_port(&scheme).ok_or_else(unsupported)?,
        };
        let host = uri.host().ok_or_else(unsupported)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.limits
            .allow
            .check(&scheme, &host.to_ascii_lowercase(), port)
    }
}

/// What the host reports of one request: a line in the invocation's log, a metric, a trace.
struct Call {
    method: http::Method,
    /// Scheme, host, port and path; never the query, which may carry secrets.
    target: String,
    function: Arc<str>,
    logs: Logs,
}

impl Call {
    fn of(request: &http::Request<WasiBody>, function: &Arc<str>, logs: Logs) -> Call {
        let uri = request.uri();
        let target = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map(|a| a.as_str()).unwrap_or("?"),
            uri.path()
        );
        Call {
            method: request.method().clone(),
            target,
            function: function.clone(),
            logs,
        }
    }

    /// Records the request's end: its status, or `(outcome, why)` when it got none.
    fn finish(&self, started: Instant, result: Result<u16, (&'static str, String)>) {
        let took = started.elapsed();
        let millis = took.as_secs_f64() * 1000.0;
        let (outcome, line) = match &result {
            Ok(status) => (
                status_class(*status),
                format!(
                    "[sluice] outbound {} {} -> {status} in {millis:.1} ms",
                    self.method, self.target
                ),
            ),
            Err((outcome, why)) => (
                *outcome,
                format!(
                    "[sluice] outbound {} {} -> {outcome} after {millis:.1} ms: {why}",
                    self.method, self.target
                ),
            ),
        };
        tracing::debug!(target: "sluice::outbound", method = %self.method, target = %self.target, outcome, ?took);
        self.logs.note(&line);
        let function = self.function.to_string();
        metrics::counter!("sluice_outbound_requests_total", "function" => function.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("sluice_outbound_request_duration_seconds", "function" => function)
            .record(took.as_secs_f64());
    }

    fn note(&self, why: &str) {
        self.logs.note(&format!(
            "[sluice] outbound {} {}: {why}",
            self.method, self.target
        ));
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The WASI error a failed request gives the handler, the metric's outcome and the log's words.
fn classify(error: &hyper_util::client::legacy::Error) -> (HttpError, &'static str, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut chain = Vec::new();
    while let Some(cause) = source {
        if let Some(private) = cause.downcast_ref::<PrivateName>() {
            return (
                HttpError::DestinationIpProhibited,
                "denied",
                private.to_string(),
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => {
                    return (
                        HttpError::ConnectionTimeout,
                        "timeout",
                        format!("connecting took longer than {CONNECT_TIMEOUT:?}"),
                    );
                }
                std::io::ErrorKind::ConnectionRefused => {
                    return (
                        HttpError::ConnectionRefused,
                        "error",
                        "connection refused".to_owned(),
                    );
                }
                _ => {}
            }
        }
        chain.push(cause.to_string());
        source = cause.source();
    }
    let message = if chain.is_empty() {
        error.to_string()
    } else {
        chain.join(": ")
    };
    let code = if message.contains("dns error") || message.contains("failed to lookup") {
        HttpError::DnsError {
            rcode: Some(message.clone()),
            info_code: None,
        }
    } else if error.is_connect() {
        if message.contains("certificate") || message.contains("tls") {
            HttpError::TlsCertificateError
        } else {
            HttpError::ConnectionRefused
        }
    } else {
        HttpError::HttpProtocolError
    };
    (code, "error", message)
}

/// A response body that fails once it has given `max` bytes, and holds the request's permits
/// (one of the invocation's, one of the host's) until the handler is done with it.
struct CappedBody {
    inner: hyper::body::Incoming,
    left: u64,
    max: u64,
    call: Call,
    _permits: (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>),
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                if size > self.left {
                    let max = self.max;
                    self.call.note(&format!(
                        "response body cut at {max} bytes (the function's max_outbound_response_bytes)"
                    ));
                    self.left = 0;
                    return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(max)))));
                }
                self.left -= size;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.call
                    .note(&format!("reading the response failed: {error}"));
                Poll::Ready(Some(Err(HttpError::HttpProtocolError)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
