//! A `sluice:queue@0.4.0` handler that makes the HTTP request each message describes, through the
//! raw `wasi:http/outgoing-handler` import (no SDK), to test outbound HTTP. The body is JSON:
//!
//! ```json
//! {"method": "POST", "url": "http://127.0.0.1:8080/x", "body": "text",
//!  "headers": [["x-a", "1"]], "timeout_ms": 500}
//! ```
//!
//! (only `url` is required; `method` defaults to `GET`, `headers` may also be an object, and
//! `timeout_ms` becomes the request's first-byte timeout). The whole response body is read. The
//! result is sent through the outbox, as JSON, to the queue named by the message's `reply-queue`
//! attribute (with attribute `from`: the message's id), and printed as `fetch <id>: <json>`:
//!
//! ```json
//! {"id": "1", "status": 200, "body_len": 5, "body": "hello", "ms": 3}
//! {"id": "2", "error": "HTTP-request-denied", "detail": "...", "ms": 0}
//! ```
//!
//! `body` holds the first 1 KiB of the response as text; `error` is the WASI `error-code` name
//! (or `header-error`, `stream-error`). The batch is acknowledged, unless a message with
//! attribute `fail-on-error: true` got an error: then the handler returns `err` with it. A body
//! that is not such JSON fails the batch.

// `generate_all`: the world imports wasi:http (since 0.3.0), whose WASI interfaces are generated too.
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

use serde_json::{Value, json};
use sluice::queue::outbox;
use sluice::queue::types::Outgoing;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// How much of the response body the result carries.
const BODY_SHOWN: usize = 1024;

struct Fetch;

impl Guest for Fetch {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        for message in &batch {
            let spec: Value = serde_json::from_slice(&message.body)
                .map_err(|e| format!("message {}: body is not JSON: {e}", message.id))?;
            let started = monotonic_clock::now();
            let result = fetch(&spec);
            let ms = (monotonic_clock::now() - started) / 1_000_000;
            let mut report = match &result {
                Ok(response) => json!({
                    "status": response.status,
                    "body_len": response.body_len,
                    "body": response.shown,
                }),
                Err(failure) => json!({"error": failure.code, "detail": failure.detail}),
            };
            report["id"] = json!(message.id);
            report["ms"] = json!(ms);
            let report = report.to_string();
            println!("fetch {}: {report}", message.id);
            if let Some(queue) = attr(message, "reply-queue") {
                outbox::send(&Outgoing {
                    queue: queue.to_owned(),
                    body: report.into_bytes(),
                    attributes: vec![("from".into(), message.id.clone())],
                    delay_ms: 0,
                    priority: None,
                    group: None,
                })
                .map_err(|reason| format!("send to `{queue}` failed: {reason}"))?;
            }
            if let Err(failure) = result
                && attr(message, "fail-on-error") == Some("true")
            {
                return Err(format!("{}: {}", failure.code, failure.detail));
            }
        }
        Ok(Vec::new())
    }
}

export!(Fetch);

struct Fetched {
    status: u16,
    body_len: usize,
    shown: String,
}

/// Why a request got no response: the error's name and what more is known.
struct Failure {
    code: String,
    detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl From<ErrorCode> for Failure {
    fn from(code: ErrorCode) -> Self {
        Failure {
            code: code_name(&code).to_owned(),
            detail: format!("{code:?}"),
        }
    }
}

fn failure(code: &str, detail: impl Into<String>) -> Failure {
    Failure {
        code: code.to_owned(),
        detail: detail.into(),
    }
}

fn fetch(spec: &Value) -> Result<Fetched, Failure> {
    let bad = |detail: &str| failure("bad-message", detail);
    let url = spec["url"].as_str().ok_or_else(|| bad("no `url`"))?;
    let method = match spec["method"].as_str().unwrap_or("GET") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let body = spec["body"].as_str().unwrap_or("").as_bytes();
    let mut headers: Vec<(String, Vec<u8>)> = match &spec["headers"] {
        Value::Array(pairs) => pairs
            .iter()
            .filter_map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_str()?.into())))
            .collect(),
        Value::Object(map) => map
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.into())))
            .collect(),
        _ => Vec::new(),
    };
    // As the Rust SDK does: a body (or a POST, PUT or PATCH without one) goes with its length,
    // not chunked.
    let has_body = !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch);
    if has_body
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        headers.push(("content-length".into(), body.len().to_string().into()));
    }

    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("`url` has no scheme"))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.is_empty() { "/" } else { path };

    let fields =
        Fields::from_list(&headers).map_err(|e| failure("header-error", format!("{e:?}")))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method)
        .map_err(|()| bad("method refused"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme refused"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad("authority refused"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| bad("path refused"))?;
    let options = spec["timeout_ms"].as_u64().map(|ms| {
        let options = RequestOptions::new();
        let _ = options.set_first_byte_timeout(Some(ms * 1_000_000));
        options
    });

    let outgoing_body = request.body().map_err(|()| bad("body taken"))?;
    let future = outgoing_handler::handle(request, options)?;
    {
        let stream = outgoing_body
            .write()
            .map_err(|()| bad("body stream taken"))?;
        for chunk in body.chunks(4096) {
            // A closed stream means the request failed; the response says how.
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    OutgoingBody::finish(outgoing_body, None)?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(code.into()),
        Some(Err(())) => return Err(bad("response taken twice")),
        None => return Err(bad("response not ready")),
    };
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| bad("response body taken"))?;
    let mut read = Vec::new();
    let mut body_len = 0;
    {
        let stream = incoming
            .stream()
            .map_err(|()| bad("response stream taken"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    body_len += chunk.len();
                    let room = BODY_SHOWN.saturating_sub(read.len());
                    read.extend_from_slice(&chunk[..room.min(chunk.len())]);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    return Err(match wasi::http::types::http_error_code(&error) {
                        Some(code) => code.into(),
                        None => failure("stream-error", error.to_debug_string()),
                    });
                }
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    Ok(Fetched {
        status,
        body_len,
        shown: String::from_utf8_lossy(&read).into_owned(),
    })
}

/// The error code's name in the WIT (`HTTP-request-denied`).
fn code_name(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(_) => "internal-error",
    }
}

fn attr<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
