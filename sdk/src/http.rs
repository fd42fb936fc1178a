//! Outbound HTTP: a small blocking client over the WIT import `wasi:http/outgoing-handler`.
//!
//! [`get`], [`post`] and the [`Request`] builder send one request and wait for the whole
//! [`Response`]. The host denies by default: a request may go only to a host the function's
//! version lists in `allowed_outbound_hosts` (`sluice deploy --allow-outbound PATTERN`); anything
//! else fails with [`Error::Denied`]. Redirects are not followed (a `3xx` is returned as it
//! came), and a batch that is retried makes its requests again: send the message id as an
//! idempotency key.
//!
//! On native targets requests go to the stubs of [`testing::Harness`](crate::testing::Harness)
//! instead, which records them for the test to check.
//!
//! ```
//! use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
//!
//! fn handle(batch: Batch) -> Result<Outcome, Error> {
//!     let mut outcome = Outcome::ack_all();
//!     for msg in &batch {
//!         let response = http::Request::post("https://api.example.com/orders")
//!             .header("Idempotency-Key", msg.id())
//!             .body(msg.body())
//!             .send()?; // an `http::Error` fails the batch, which is retried
//!         if !response.is_success() {
//!             outcome.dead_letter(msg, format!("HTTP {}", response.status()));
//!         }
//!     }
//!     Ok(outcome)
//! }
//!
//! let report = Harness::new()
//!     .http(testing::stub("https://api.example.com/orders").status(201))
//!     .run(handle, [testing::message("o-1")]);
//! assert_eq!(report.acked(), ["msg-1"]);
//! assert_eq!(report.requests()[0].header("idempotency-key"), Some("msg-1"));
//! ```

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as written (`"PROPFIND"`).
    Other(String),
}

impl Method {
    /// The method as it goes on the wire.
    ///
    /// ```
    /// use sluice_sdk::http::Method;
    /// assert_eq!(Method::Post.as_str(), "POST");
    /// assert_eq!(Method::Other("PURGE".into()).as_str(), "PURGE");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(method) => method,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP request to send; [`send`](Request::send) waits for the whole response.
///
/// ```
/// use std::time::Duration;
/// use sluice_sdk::http::{Method, Request};
///
/// let request = Request::new(Method::Put, "https://api.example.com/items/7")
///     .header("Authorization", "Bearer t0ken")
///     .body(r#"{"name": "seven"}"#)
///     .timeout(Duration::from_secs(5));
/// # let _ = request;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
}

impl Request {
    /// A request with no headers and an empty body. The URL is `http://` or `https://`, with a
    /// host and optionally a port, path and query (`https://api.example.com:8443/v1?x=1`).
    ///
    /// ```
    /// let request = sluice_sdk::http::Request::new(sluice_sdk::http::Method::Delete, "https://api.example.com/a/1");
    /// # let _ = request;
    /// ```
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` request.
    ///
    /// ```
    /// let request = sluice_sdk::http::Request::get("https://api.example.com/rates");
    /// # let _ = request;
    /// ```
    pub fn get(url: impl Into<String>) -> Self {
        Request::new(Method::Get, url)
    }

    /// A `POST` request.
    ///
    /// ```
    /// let request = sluice_sdk::http::Request::post("https://api.example.com/orders").body("{}");
    /// # let _ = request;
    /// ```
    pub fn post(url: impl Into<String>) -> Self {
        Request::new(Method::Post, url)
    }

    /// Adds a header (sent as given; names are case-insensitive). `Content-Length` is added for
    /// a body when you do not set it; `Host`, `Connection`, `Transfer-Encoding` and the other
    /// hop-by-hop headers are the host's to set, and a request carrying one fails with
    /// [`Error::InvalidRequest`].
    ///
    /// ```
    /// let request = sluice_sdk::http::Request::get("https://api.example.com/")
    ///     .header("Accept", "application/json")
    ///     .header("X-Tenant", "acme");
    /// # let _ = request;
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (a `&str`, `String`, `&[u8]` or `Vec<u8>`).
    ///
    /// ```
    /// let request = sluice_sdk::http::Request::post("https://api.example.com/").body(vec![1, 2, 3]);
    /// # let _ = request;
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` serialized as JSON, and `Content-Type: application/json` unless
    /// a content type is already set.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let request = sluice_sdk::http::Request::post("https://api.example.com/")
    ///     .json(&serde_json::json!({"id": 1}))?;
    /// # let _ = request;
    /// # Ok(())
    /// # }
    /// ```
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, crate::Error> {
        self.body = serde_json::to_vec(value)?;
        if header(&self.headers, "content-type").is_none() {
            self.headers
                .push(("content-type".to_owned(), "application/json".to_owned()));
        }
        Ok(self)
    }

    /// Gives up with [`Error::Timeout`] when the whole exchange (connecting, sending, and
    /// reading the response to its end) takes longer than `timeout`. Without one, a request is
    /// bounded by the function's `outbound_timeout_ms` and what is left of its `timeout_ms`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let request = sluice_sdk::http::Request::get("https://api.example.com/").timeout(Duration::from_secs(2));
    /// # let _ = request;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and waits for the whole response. Any status is a `Response` (a `404`
    /// or `500` included; a `3xx` is not followed); an `Err` means no response came: the host
    /// denied the request, it timed out, the connection failed, and so on.
    ///
    /// ```
    /// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(_: Batch) -> Result<Outcome, Error> {
    ///     let response = http::Request::get("https://api.example.com/rates").send()?;
    ///     sluice_sdk::send("rates", response.into_body())?;
    ///     Ok(Outcome::ack_all())
    /// }
    /// let report = Harness::new()
    ///     .http(testing::stub("https://api.example.com/rates").body("EUR 1.08"))
    ///     .run(handle, [testing::message("tick")]);
    /// assert_eq!(report.sent()[0].body_str().unwrap(), "EUR 1.08");
    /// ```
    pub fn send(self) -> Result<Response, Error> {
        let target = Target::parse(&self.url).map_err(|detail| Error::InvalidRequest {
            url: self.url.clone(),
            detail,
        })?;
        check_headers(&self.headers).map_err(|detail| Error::InvalidRequest {
            url: self.url.clone(),
            detail,
        })?;
        transport(self, target)
    }
}

/// Sends a `GET` request to `url` and waits for the whole response.
///
/// ```
/// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
///
/// fn handle(_: Batch) -> Result<Outcome, Error> {
///     let status = http::get("https://status.example.com/")?.status();
///     println!("upstream says {status}");
///     Ok(Outcome::ack_all())
/// }
/// let report = Harness::new()
///     .http(testing::stub("https://status.example.com/").status(204))
///     .run(handle, [testing::message("x")]);
/// assert_eq!(report.requests()[0].method, http::Method::Get);
/// ```
pub fn get(url: impl Into<String>) -> Result<Response, Error> {
    Request::get(url).send()
}

/// Sends `body` (a `&str`, `String`, `&[u8]` or `Vec<u8>`) to `url` with `POST` and waits for the
/// whole response. See [`Request`] for headers and timeouts.
///
/// ```
/// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     for msg in &batch {
///         http::post("https://hooks.example.com/in", msg.body())?;
///     }
///     Ok(Outcome::ack_all())
/// }
/// let report = Harness::new()
///     .http(testing::stub("https://hooks.example.com/in"))
///     .run(handle, [testing::message("hello")]);
/// assert_eq!(report.requests()[0].body, b"hello");
/// ```
pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Result<Response, Error> {
    Request::post(url).body(body).send()
}

/// The response to a [`Request`]: its status, headers and whole body.
///
/// ```
/// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
///
/// fn handle(_: Batch) -> Result<Outcome, Error> {
///     let response = http::get("https://api.example.com/user/7")?;
///     assert_eq!(response.status(), 200);
///     assert_eq!(response.header("Content-Type"), Some("application/json"));
///     let user: serde_json::Value = response.json()?;
///     assert_eq!(user["name"], "Ada");
///     Ok(Outcome::ack_all())
/// }
/// let report = Harness::new()
///     .http(testing::stub("https://api.example.com/user/7").json(&serde_json::json!({"name": "Ada"})))
///     .run(handle, [testing::message("x")]);
/// assert!(report.is_ok(), "{:?}", report.result());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The status code (`200`, `404`, ...).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of the first header called `name` (case-insensitive), if any. A value that is
    /// not UTF-8 is given with replacement characters.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// All headers as `(name, value)`, in the order they came (names as the host gives them,
    /// usually lowercase).
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The whole body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The whole body, by value.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text; an error if it is not UTF-8.
    pub fn text(&self) -> Result<&str, crate::Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| crate::Error::new(format!("response body is not valid UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`; an error (with serde's reason) if it does not parse.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| crate::Error::new(format!("invalid JSON in the response body: {e}")))
    }
}

/// Why a request got no response. Each message says what to do about it; `?` turns it into a
/// [`crate::Error`] that fails the batch.
///
/// ```
/// use sluice_sdk::http::Error;
///
/// let denied = Error::Denied { url: "https://api.example.com/v1/x".into() };
/// assert!(denied.to_string().contains("--allow-outbound https://api.example.com"));
/// assert!(!denied.is_transient());
/// assert!(Error::Timeout { url: "https://api.example.com/".into() }.is_transient());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The host refused the request (`HTTP-request-denied`): the URL's host is not in the
    /// function's `allowed_outbound_hosts`, or it resolved to a loopback, private or link-local
    /// address that no pattern names literally (`destination-IP-prohibited`).
    Denied {
        /// The URL asked for.
        url: String,
    },
    /// No response in time: the request's own timeout, the function's `outbound_timeout_ms`, or
    /// a connect, DNS or read timeout.
    Timeout {
        /// The URL asked for.
        url: String,
    },
    /// The host name could not be resolved.
    Dns {
        /// The URL asked for.
        url: String,
        /// What the resolver said.
        detail: String,
    },
    /// The connection was refused, reset or could not be made.
    Connection {
        /// The URL asked for.
        url: String,
        /// What went wrong, as the host reported it.
        detail: String,
    },
    /// The TLS handshake failed (an invalid or untrusted certificate, a protocol error).
    Tls {
        /// The URL asked for.
        url: String,
        /// What went wrong, as the host reported it.
        detail: String,
    },
    /// The response was larger than the function may read (`max_outbound_response_bytes`).
    ResponseTooLarge {
        /// The URL asked for.
        url: String,
        /// The limit in bytes, when the host gave it.
        limit: Option<u64>,
    },
    /// The request itself is invalid: a malformed URL, a header the host sets itself, a method
    /// or header the host refuses.
    InvalidRequest {
        /// The URL asked for.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Anything else (a protocol error, an internal error of the host, an unstubbed request in
    /// a native test), with its description.
    Other(String),
}

impl Error {
    /// Whether trying again later may succeed: timeouts, DNS and connection failures.
    ///
    /// ```
    /// use sluice_sdk::http::Error;
    /// let refused = Error::Connection { url: "https://a.example.com/".into(), detail: "connection refused".into() };
    /// assert!(refused.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. } | Error::Dns { .. } | Error::Connection { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied { url } => {
                let origin = Target::parse(url).map_or_else(|_| url.clone(), |t| t.origin());
                write!(
                    f,
                    "request to {url} denied by the host: {origin} is not in the function's \
                     allowed_outbound_hosts (loopback, private and link-local addresses must be \
                     named there literally); add the host to the function's \
                     allowed_outbound_hosts, e.g. `sluice deploy --allow-outbound {origin}`"
                )
            }
            Error::Timeout { url } => write!(
                f,
                "request to {url} timed out; the upstream did not answer in time: retry later, \
                 or allow more time (the request's timeout, the function's outbound_timeout_ms \
                 and timeout_ms)"
            ),
            Error::Dns { url, detail } => write!(
                f,
                "cannot resolve the host of {url} ({detail}); check the host name in the URL"
            ),
            Error::Connection { url, detail } => write!(
                f,
                "cannot reach {url} ({detail}); the upstream may be down: retry later"
            ),
            Error::Tls { url, detail } => write!(
                f,
                "TLS with {url} failed ({detail}); the upstream's certificate must be valid for \
                 its name and signed by a trusted authority"
            ),
            Error::ResponseTooLarge { url, limit } => {
                write!(
                    f,
                    "the response from {url} is larger than the function may read"
                )?;
                if let Some(limit) = limit {
                    write!(f, " ({limit} bytes)")?;
                }
                f.write_str("; raise the function's max_outbound_response_bytes, or ask for less")
            }
            Error::InvalidRequest { url, detail } => {
                write!(f, "invalid request to {url}: {detail}")
            }
            Error::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// The value of the first header called `name` (case-insensitive) in `headers`.
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers a handler may not set: the host (`wasmtime-wasi-http`) owns them, and refuses a
/// request that carries one.
const HOST_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

/// Checks header names and values the way the host will, so a native test fails the same way.
fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(format!("`{name}` is not a valid header name"));
        }
        if HOST_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            return Err(format!(
                "the `{name}` header is set by the host; leave it out"
            ));
        }
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(format!(
                "the value of header `{name}` contains a line break or NUL"
            ));
        }
    }
    Ok(())
}

/// The scheme of a URL the host can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// A URL split the way `wasi:http` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    /// `host` or `host:port`.
    pub(crate) authority: String,
    /// From the first `/` (or `/` when there is none), with the query, without the fragment.
    pub(crate) path_with_query: String,
}

impl Target {
    /// Splits `url`, or says what is wrong with it.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a URL must not contain spaces or control characters".to_owned());
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("a URL starts with http:// or https://".to_owned());
        };
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else {
            return Err(format!(
                "the scheme `{scheme}` is not supported; use http:// or https://"
            ));
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err("the URL has no host".to_owned());
        }
        if authority.contains('@') {
            return Err("credentials in a URL are not supported; send them in a header".to_owned());
        }
        let path_with_query = match path.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_owned(),
        };
        Ok(Target {
            scheme,
            authority: authority.to_owned(),
            path_with_query,
        })
    }

    /// `scheme://authority`, as an allow-list pattern names it.
    pub(crate) fn origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.authority)
    }
}

#[cfg(target_arch = "wasm32")]
fn transport(request: Request, target: Target) -> Result<Response, Error> {
    crate::wit::http::send(request, target)
}

#[cfg(not(target_arch = "wasm32"))]
fn transport(request: Request, _target: Target) -> Result<Response, Error> {
    crate::testing::answer(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (Scheme, String, String) {
        let t = Target::parse(url).unwrap();
        (t.scheme, t.authority, t.path_with_query)
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            target("https://api.example.com"),
            (Scheme::Https, "api.example.com".into(), "/".into())
        );
        assert_eq!(
            target("HTTP://127.0.0.1:8080/a/b?x=1&y=2#top"),
            (Scheme::Http, "127.0.0.1:8080".into(), "/a/b?x=1&y=2".into())
        );
        assert_eq!(
            target("https://[::1]:443?q"),
            (Scheme::Https, "[::1]:443".into(), "/?q".into())
        );
        assert_eq!(
            Target::parse("https://api.example.com:8443/x")
                .unwrap()
                .origin(),
            "https://api.example.com:8443"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let error = |url| Target::parse(url).unwrap_err();
        assert!(error("api.example.com/x").contains("http:// or https://"));
        assert!(error("ftp://files.example.com/").contains("`ftp` is not supported"));
        assert!(error("https:///path").contains("no host"));
        assert!(error("https://user:pw@example.com/").contains("send them in a header"));
        assert!(error("https://example.com/a b").contains("spaces"));
    }

    #[test]
    fn headers_the_host_owns_are_refused() {
        let headers = |name: &str, value: &str| check_headers(&[(name.into(), value.into())]);
        assert!(headers("X-Tenant", "acme").is_ok());
        assert!(
            headers("Host", "evil.example.com")
                .unwrap_err()
                .contains("set by the host")
        );
        assert!(
            headers("transfer-encoding", "chunked")
                .unwrap_err()
                .contains("set by the host")
        );
        assert!(
            headers("bad name", "x")
                .unwrap_err()
                .contains("not a valid header name")
        );
        assert!(
            headers("x-a", "one\r\nx-b: two")
                .unwrap_err()
                .contains("line break")
        );
    }

    #[test]
    fn invalid_requests_fail_before_they_are_sent() {
        let error = Request::get("localhost:8080/x").send().unwrap_err();
        assert!(
            matches!(&error, Error::InvalidRequest { url, .. } if url == "localhost:8080/x"),
            "{error:?}"
        );
        let error = Request::get("https://api.example.com/")
            .header("Connection", "close")
            .send()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`Connection` header is set by the host")
        );
    }

    #[test]
    fn json_bodies_get_a_content_type_unless_one_is_set() {
        let request = Request::post("https://a.example.com/")
            .json(&[1, 2])
            .unwrap();
        assert_eq!(request.body, b"[1,2]");
        assert_eq!(
            header(&request.headers, "Content-Type"),
            Some("application/json")
        );
        let request = Request::post("https://a.example.com/")
            .header("Content-Type", "application/vnd.api+json")
            .json(&[1])
            .unwrap();
        assert_eq!(request.headers.len(), 1);
    }

    #[test]
    fn every_error_says_what_to_do() {
        let url = "https://hooks.example.com/a?token=x".to_owned();
        let denied = Error::Denied { url: url.clone() }.to_string();
        assert!(
            denied.contains(
                "add the host to the function's allowed_outbound_hosts, e.g. \
                 `sluice deploy --allow-outbound https://hooks.example.com`"
            ),
            "{denied}"
        );
        let too_large = Error::ResponseTooLarge {
            url: url.clone(),
            limit: Some(16),
        }
        .to_string();
        assert!(too_large.contains("(16 bytes); raise the function's max_outbound_response_bytes"));
        assert!(
            Error::Timeout { url: url.clone() }
                .to_string()
                .contains("retry later")
        );
        assert!(
            !Error::Tls {
                url,
                detail: "bad certificate".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn responses_find_headers_by_any_case() {
        let response = Response {
            status: 429,
            headers: vec![("retry-after".into(), "3".into())],
            body: b"{\"slow\": \"down\"}".to_vec(),
        };
        assert_eq!(response.header("Retry-After"), Some("3"));
        assert_eq!(response.header("x-missing"), None);
        assert!(!response.is_success());
        assert_eq!(response.text().unwrap(), "{\"slow\": \"down\"}");
        assert_eq!(
            response.json::<serde_json::Value>().unwrap()["slow"],
            "down"
        );
        assert!(
            Response {
                body: vec![0xff],
                ..response
            }
            .text()
            .unwrap_err()
            .message()
            .contains("not valid UTF-8")
        );
    }
}
