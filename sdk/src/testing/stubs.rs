//! Outbound HTTP in native tests: [`stub`] and [`stub_prefix`] answer a handler's requests by
//! URL, and every request is recorded as a [`SentRequest`] for the [`Report`](super::Report).

use std::cell::RefCell;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::http::{self, Method, Response};

thread_local! {
    /// The stubs of the harness running now.
    static STUBS: RefCell<Vec<Stub>> = const { RefCell::new(Vec::new()) };
    static REQUESTS: RefCell<Vec<SentRequest>> = const { RefCell::new(Vec::new()) };
}

/// Installs `stubs` for a run, returning the ones they replace.
pub(super) fn install(stubs: Vec<Stub>) -> Vec<Stub> {
    STUBS.replace(stubs)
}

/// The requests made since the last call.
pub(super) fn take_requests() -> Vec<SentRequest> {
    REQUESTS.take()
}

/// Called by [`http::Request::send`] on native targets: records the request and answers it
/// from the best matching stub.
pub(crate) fn answer(request: http::Request) -> Result<Response, http::Error> {
    let sent = SentRequest {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body,
        timeout: request.timeout,
    };
    let stub = STUBS.with_borrow(|stubs| best_match(stubs, &sent).cloned());
    let url = sent.url.clone();
    let method = sent.method.clone();
    REQUESTS.with_borrow_mut(|requests| requests.push(sent));
    match stub {
        Some(stub) => stub.respond(url),
        None => {
            let message = format!(
                "no HTTP stub matches {method} {url}; add one to the test: \
                 `Harness::new().http(testing::stub(\"{url}\"))`"
            );
            // Also on stderr: a handler may turn the error into a retry, hiding it.
            eprintln!("sluice_sdk::testing: {message}");
            Err(http::Error::Other(message))
        }
    }
}

/// The stub that answers `request`: an exact URL before a prefix, a longer prefix before a
/// shorter one, otherwise the first added.
fn best_match<'a>(stubs: &'a [Stub], request: &SentRequest) -> Option<&'a Stub> {
    let mut best: Option<(&Stub, (bool, usize))> = None;
    for stub in stubs {
        if stub.method.as_ref().is_some_and(|m| *m != request.method) {
            continue;
        }
        let rank = match &stub.pattern {
            Pattern::Exact(url) if *url == request.url => (true, url.len()),
            Pattern::Prefix(prefix) if request.url.starts_with(prefix.as_str()) => {
                (false, prefix.len())
            }
            _ => continue,
        };
        if best.is_none_or(|(_, best)| rank > best) {
            best = Some((stub, rank));
        }
    }
    best.map(|(stub, _)| stub)
}

/// Answers requests to exactly `url` (the same string, query included) in a
/// [`Harness`](super::Harness): by default `200` with no headers and an empty body.
///
/// ```
/// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     let mut outcome = Outcome::ack_all();
///     for msg in &batch {
///         let response = http::post("https://hooks.example.com/a", msg.body())?;
///         if response.status() >= 500 {
///             let seconds = response.header("Retry-After").and_then(|s| s.parse().ok()).unwrap_or(1);
///             outcome.retry_after(msg, std::time::Duration::from_secs(seconds));
///         }
///     }
///     Ok(outcome)
/// }
///
/// let report = Harness::new()
///     .http(testing::stub("https://hooks.example.com/a").status(503).header("Retry-After", "3"))
///     .run(handle, [testing::message("x")]);
/// assert_eq!(
///     report.disposition("msg-1"),
///     Some(&sluice_sdk::Disposition::Retry(Some(std::time::Duration::from_secs(3))))
/// );
/// assert_eq!(report.requests()[0].url, "https://hooks.example.com/a");
/// ```
pub fn stub(url: impl Into<String>) -> Stub {
    Stub::new(Pattern::Exact(url.into()))
}

/// Answers requests to every URL that starts with `prefix` (`https://api.example.com/`); a
/// [`stub`] of the exact URL, or a longer prefix, answers first.
///
/// ```
/// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
///
/// fn handle(_: Batch) -> Result<Outcome, Error> {
///     let a = http::get("https://api.example.com/items/1")?.status();
///     let b = http::get("https://api.example.com/items/2")?.status();
///     assert_eq!((a, b), (404, 200));
///     Ok(Outcome::ack_all())
/// }
/// let report = Harness::new()
///     .http(testing::stub_prefix("https://api.example.com/"))
///     .http(testing::stub("https://api.example.com/items/1").status(404))
///     .run(handle, [testing::message("x")]);
/// assert!(report.is_ok(), "{:?}", report.result());
/// ```
pub fn stub_prefix(prefix: impl Into<String>) -> Stub {
    Stub::new(Pattern::Prefix(prefix.into()))
}

/// A canned answer to a handler's HTTP requests; see [`stub`] and [`stub_prefix`].
#[derive(Debug, Clone)]
pub struct Stub {
    pattern: Pattern,
    method: Option<Method>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    failure: Option<Failure>,
}

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

/// How a stub fails a request instead of answering it.
#[derive(Debug, Clone)]
enum Failure {
    Denied,
    Timeout,
    Refused,
    Error(http::Error),
}

impl Stub {
    fn new(pattern: Pattern) -> Self {
        Stub {
            pattern,
            method: None,
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            failure: None,
        }
    }

    /// Answers only requests with this method (by default, any method).
    ///
    /// ```
    /// # use sluice_sdk::{http::Method, testing};
    /// let stub = testing::stub("https://api.example.com/items").method(Method::Post).status(201);
    /// # let _ = stub;
    /// ```
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Answers with this status (by default `200`).
    ///
    /// ```
    /// let stub = sluice_sdk::testing::stub("https://api.example.com/").status(500);
    /// # let _ = stub;
    /// ```
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header to the answer.
    ///
    /// ```
    /// let stub = sluice_sdk::testing::stub("https://api.example.com/").status(429).header("Retry-After", "30");
    /// # let _ = stub;
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answers with this body (a `&str`, `String`, `&[u8]` or `Vec<u8>`).
    ///
    /// ```
    /// let stub = sluice_sdk::testing::stub("https://api.example.com/").body("pong");
    /// # let _ = stub;
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Answers with `value` serialized as JSON, and `content-type: application/json`.
    ///
    /// ```
    /// let stub = sluice_sdk::testing::stub("https://api.example.com/").json(&serde_json::json!({"ok": true}));
    /// # let _ = stub;
    /// ```
    ///
    /// # Panics
    ///
    /// If `value` cannot be serialized (a map with non-string keys, for instance).
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).expect("stub body serializes to JSON");
        self.headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        self
    }

    /// Fails matching requests with [`http::Error::Denied`], as the host does for a host that is
    /// not in the function's `allowed_outbound_hosts`.
    ///
    /// ```
    /// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(_: Batch) -> Result<Outcome, Error> {
    ///     let error = http::get("https://elsewhere.example.com/").unwrap_err();
    ///     assert!(matches!(error, http::Error::Denied { .. }));
    ///     Ok(Outcome::ack_all())
    /// }
    /// let report = Harness::new()
    ///     .http(testing::stub_prefix("https://elsewhere.example.com/").denied())
    ///     .run(handle, [testing::message("x")]);
    /// assert!(report.is_ok(), "{:?}", report.result());
    /// ```
    pub fn denied(mut self) -> Self {
        self.failure = Some(Failure::Denied);
        self
    }

    /// Fails matching requests with [`http::Error::Timeout`], as a request to an upstream that
    /// does not answer in time does.
    ///
    /// ```
    /// let stub = sluice_sdk::testing::stub("https://slow.example.com/").timeout();
    /// # let _ = stub;
    /// ```
    pub fn timeout(mut self) -> Self {
        self.failure = Some(Failure::Timeout);
        self
    }

    /// Fails matching requests with [`http::Error::Connection`] (`connection-refused`), as a
    /// request to an upstream that is down does.
    ///
    /// ```
    /// let stub = sluice_sdk::testing::stub("https://down.example.com/").connection_refused();
    /// # let _ = stub;
    /// ```
    pub fn connection_refused(mut self) -> Self {
        self.failure = Some(Failure::Refused);
        self
    }

    /// Fails matching requests with `error`, as given.
    ///
    /// ```
    /// use sluice_sdk::{http, testing};
    /// let stub = testing::stub("https://big.example.com/")
    ///     .error(http::Error::ResponseTooLarge { url: "https://big.example.com/".into(), limit: Some(1024) });
    /// # let _ = stub;
    /// ```
    pub fn error(mut self, error: http::Error) -> Self {
        self.failure = Some(Failure::Error(error));
        self
    }

    fn respond(self, url: String) -> Result<Response, http::Error> {
        match self.failure {
            None => Ok(Response {
                status: self.status,
                headers: self.headers,
                body: self.body,
            }),
            Some(Failure::Denied) => Err(http::Error::Denied { url }),
            Some(Failure::Timeout) => Err(http::Error::Timeout { url }),
            Some(Failure::Refused) => Err(http::Error::Connection {
                url,
                detail: "connection-refused".to_owned(),
            }),
            Some(Failure::Error(error)) => Err(error),
        }
    }
}

/// An HTTP request a handler made during a test run, as it built it (the host adds
/// `Content-Length` and `Host` on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// The method.
    pub method: Method,
    /// The URL, as given.
    pub url: String,
    /// The headers (name, value), in the order they were added.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The timeout the handler set, if any.
    pub timeout: Option<Duration>,
}

impl SentRequest {
    /// The value of the first header called `name` (case-insensitive), if any.
    ///
    /// ```
    /// # use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { http::Request::get("https://a.example.com/").header("X-Tenant", "acme").send()?; Ok(Outcome::ack_all()) }
    /// let report = Harness::new().http(testing::stub("https://a.example.com/")).run(handle, [testing::message("x")]);
    /// assert_eq!(report.requests()[0].header("x-tenant"), Some("acme"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        http::header(&self.headers, name)
    }

    /// The body as text; an error if it is not UTF-8.
    ///
    /// ```
    /// # use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { http::post("https://a.example.com/", "hi")?; Ok(Outcome::ack_all()) }
    /// let report = Harness::new().http(testing::stub("https://a.example.com/")).run(handle, [testing::message("x")]);
    /// assert_eq!(report.requests()[0].body_str().unwrap(), "hi");
    /// ```
    pub fn body_str(&self) -> Result<&str, Error> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON.
    ///
    /// ```
    /// # use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { http::Request::post("https://a.example.com/").json(&[1, 2])?.send()?; Ok(Outcome::ack_all()) }
    /// let report = Harness::new().http(testing::stub("https://a.example.com/")).run(handle, [testing::message("x")]);
    /// assert_eq!(report.requests()[0].json::<Vec<u32>>().unwrap(), [1, 2]);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, url: &str) -> SentRequest {
        SentRequest {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    fn status_for(stubs: &[Stub], method: Method, url: &str) -> Option<u16> {
        best_match(stubs, &request(method, url)).map(|s| s.status)
    }

    #[test]
    fn exact_urls_then_the_longest_prefix_then_the_first_added() {
        let stubs = [
            stub_prefix("https://a.example.com/").status(1),
            stub_prefix("https://a.example.com/items/").status(2),
            stub("https://a.example.com/items/7").status(3),
            stub_prefix("https://a.example.com/").status(4),
            stub("https://b.example.com/x")
                .method(Method::Post)
                .status(5),
        ];
        let get = |url| status_for(&stubs, Method::Get, url);
        assert_eq!(get("https://a.example.com/items/7"), Some(3));
        assert_eq!(get("https://a.example.com/items/7?x=1"), Some(2));
        assert_eq!(get("https://a.example.com/other"), Some(1));
        assert_eq!(get("https://b.example.com/x"), None, "POST only");
        assert_eq!(
            status_for(&stubs, Method::Post, "https://b.example.com/x"),
            Some(5)
        );
        assert_eq!(get("https://c.example.com/"), None);
    }

    #[test]
    fn unmatched_requests_fail_with_an_error_that_says_how_to_stub_them() {
        install(Vec::new());
        let error = http::Request::post("https://hooks.example.com/x")
            .send()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no HTTP stub matches POST https://hooks.example.com/x; add one to the test: \
             `Harness::new().http(testing::stub(\"https://hooks.example.com/x\"))`"
        );
        assert_eq!(take_requests().len(), 1, "recorded all the same");
    }

    #[test]
    fn failures_carry_the_url_asked_for() {
        let url = "https://a.example.com/x";
        let fail = |stub: Stub| stub.respond(url.to_owned()).unwrap_err();
        assert_eq!(
            fail(stub_prefix("https://a.").denied()),
            http::Error::Denied { url: url.into() }
        );
        assert_eq!(
            fail(stub(url).timeout()),
            http::Error::Timeout { url: url.into() }
        );
        assert!(fail(stub(url).connection_refused()).is_transient());
        assert_eq!(
            fail(stub(url).error(http::Error::Other("boom".into()))),
            http::Error::Other("boom".into())
        );
    }
}
