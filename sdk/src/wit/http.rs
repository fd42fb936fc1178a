//! The SDK's HTTP client on the generated `wasi:http` bindings: one request in, the whole
//! response (or an [`http::Error`](crate::http::Error)) out, blocking on `wasi:io` pollables.

// Compiled on every target so the error mapping is unit tested natively; only `wasm32` sends.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use super::wasi::clocks::monotonic_clock;
use super::wasi::http::outgoing_handler;
use super::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use super::wasi::io::poll::{self, Pollable};
use super::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::http::{self, Error, Response, Target};

/// How much of the response body to ask for per read.
const READ_CHUNK: u64 = 64 * 1024;
/// How long past the deadline the response head is awaited: the host cuts the request at the
/// same deadline (the first-byte timeout passed with it) and then logs and counts it as a
/// timeout, which it cannot do for a request the guest has already dropped.
const HOST_GRACE_NANOS: u64 = 250_000_000;

/// Sends `request` to `target` (its parsed URL) and reads the whole response.
pub(crate) fn send(request: http::Request, target: Target) -> Result<Response, Error> {
    let url = request.url.as_str();
    // One deadline for the whole exchange, on the monotonic clock's nanoseconds.
    let deadline = request.timeout.map(|timeout| {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::now().saturating_add(nanos)
    });

    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
        .collect();
    // Without it a body goes out chunked, which some receivers refuse.
    let has_body = !request.body.is_empty()
        || matches!(
            request.method,
            http::Method::Post | http::Method::Put | http::Method::Patch
        );
    if has_body && http::header(&request.headers, "content-length").is_none() {
        entries.push((
            "content-length".to_owned(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&entries).map_err(|e| header_error(e, url))?;
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| Error::InvalidRequest {
        url: url.to_owned(),
        detail: format!("the host refused the {what}"),
    };
    outgoing
        .set_method(&method(&request.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&match target.scheme {
            http::Scheme::Http => Scheme::Http,
            http::Scheme::Https => Scheme::Https,
        }))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| invalid("path"))?;

    let options = request.timeout.map(|timeout| {
        let options = RequestOptions::new();
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        // Hosts bound each phase by these; the deadline above bounds the sum. A host that does
        // not support an option still gets the deadline.
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        options
    });

    let body = outgoing
        .body()
        .map_err(|()| Error::Other(format!("request to {url}: its body was already taken")))?;
    // The request goes out first and the body is written while the host sends it: writing a
    // large body before `handle` would fill the host's buffer with nobody reading it.
    let future =
        outgoing_handler::handle(outgoing, options).map_err(|code| from_code(code, url))?;
    // A body the upstream stops reading (it answered early, or failed) ends the writing; what
    // happened is in the response.
    if write_body(&body, &request.body, deadline, url)? {
        OutgoingBody::finish(body, None).map_err(|code| from_code(code, url))?;
    } else {
        drop(body);
    }

    let response = wait_for_response(
        &future,
        deadline.map(|d| d.saturating_add(HOST_GRACE_NANOS)),
        url,
    )?;
    drop(future);
    let status = response.status();
    let headers = {
        let fields = response.headers();
        fields
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect()
    };
    let incoming = response
        .consume()
        .map_err(|()| Error::Other(format!("response from {url}: its body was already taken")))?;
    let body = read_body(&incoming, deadline, url)?;
    // The body's trailers are not read: dropping them ends the exchange.
    drop(IncomingBody::finish(incoming));
    drop(response);
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Writes `bytes` to the request body; `false` when the upstream stopped taking it.
fn write_body(
    body: &OutgoingBody,
    bytes: &[u8],
    deadline: Option<u64>,
    url: &str,
) -> Result<bool, Error> {
    let stream = body
        .write()
        .map_err(|()| Error::Other(format!("request to {url}: its body stream was taken")))?;
    let written = write_all(&stream, bytes, deadline, url);
    // The stream is a child of the body: it must go before the body is finished.
    drop(stream);
    written
}

fn write_all(
    stream: &OutputStream,
    mut bytes: &[u8],
    deadline: Option<u64>,
    url: &str,
) -> Result<bool, Error> {
    let pollable = stream.subscribe();
    let result = (|| {
        while !bytes.is_empty() {
            wait(&pollable, deadline, url)?;
            let ready = match stream.check_write() {
                Ok(n) => usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len()),
                Err(error) => return stream_closed(error, url),
            };
            if ready == 0 {
                continue;
            }
            if let Err(error) = stream.write(&bytes[..ready]) {
                return stream_closed(error, url);
            }
            bytes = &bytes[ready..];
        }
        if let Err(error) = stream.flush() {
            return stream_closed(error, url);
        }
        // The flush is done when the stream can take writes again.
        wait(&pollable, deadline, url)?;
        match stream.check_write() {
            Ok(_) => Ok(true),
            Err(error) => stream_closed(error, url),
        }
    })();
    drop(pollable);
    result
}

/// A write that failed: `Ok(false)` when the stream was closed (the response says why), the
/// error otherwise.
fn stream_closed(error: StreamError, url: &str) -> Result<bool, Error> {
    match error {
        StreamError::Closed => Ok(false),
        StreamError::LastOperationFailed(error) => Err(io_error(error, url)),
    }
}

fn wait_for_response(
    future: &FutureIncomingResponse,
    deadline: Option<u64>,
    url: &str,
) -> Result<super::wasi::http::types::IncomingResponse, Error> {
    let pollable = future.subscribe();
    let ready = wait(&pollable, deadline, url);
    drop(pollable);
    ready?;
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(from_code(code, url)),
        Some(Err(())) => Err(Error::Other(format!(
            "response from {url}: it was already taken"
        ))),
        None => Err(Error::Other(format!(
            "response from {url}: not ready after its pollable was"
        ))),
    }
}

fn read_body(body: &IncomingBody, deadline: Option<u64>, url: &str) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::Other(format!("response from {url}: its body stream was taken")))?;
    let read = read_all(&stream, deadline, url);
    // The stream is a child of the body: it must go before the body is finished.
    drop(stream);
    read
}

fn read_all(stream: &InputStream, deadline: Option<u64>, url: &str) -> Result<Vec<u8>, Error> {
    let pollable = stream.subscribe();
    let mut bytes = Vec::new();
    let result = loop {
        if let Err(error) = wait(&pollable, deadline, url) {
            break Err(error);
        }
        match stream.read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => break Err(io_error(error, url)),
        }
    };
    drop(pollable);
    result
}

/// Blocks until `pollable` is ready, or fails with a timeout once `deadline` passes.
fn wait(pollable: &Pollable, deadline: Option<u64>, url: &str) -> Result<(), Error> {
    let Some(deadline) = deadline else {
        pollable.block();
        return Ok(());
    };
    if pollable.ready() {
        return Ok(());
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    let ready = poll::poll(&[pollable, &timer]);
    if ready.contains(&0) {
        Ok(())
    } else {
        Err(Error::Timeout {
            url: url.to_owned(),
        })
    }
}

fn method(method: &http::Method) -> Method {
    match method {
        http::Method::Get => Method::Get,
        http::Method::Head => Method::Head,
        http::Method::Post => Method::Post,
        http::Method::Put => Method::Put,
        http::Method::Delete => Method::Delete,
        http::Method::Connect => Method::Connect,
        http::Method::Options => Method::Options,
        http::Method::Trace => Method::Trace,
        http::Method::Patch => Method::Patch,
        http::Method::Other(other) => Method::Other(other.clone()),
    }
}

fn header_error(error: HeaderError, url: &str) -> Error {
    let detail = match error {
        HeaderError::InvalidSyntax => "a header name or value is invalid",
        HeaderError::Forbidden => "a header is one the host sets itself",
        HeaderError::Immutable => "the headers cannot be changed",
    };
    Error::InvalidRequest {
        url: url.to_owned(),
        detail: detail.to_owned(),
    }
}

/// A stream's failure, as the `wasi:http` error it stands for when the host says which.
fn io_error(error: super::wasi::io::error::Error, url: &str) -> Error {
    match super::wasi::http::types::http_error_code(&error) {
        Some(code) => from_code(code, url),
        None => Error::Other(format!(
            "reading or writing the exchange with {url} failed: {}",
            error.to_debug_string()
        )),
    }
}

/// The SDK error for a `wasi:http` error code.
pub(crate) fn from_code(code: ErrorCode, url: &str) -> Error {
    let url = url.to_owned();
    let name = code_name(&code).to_owned();
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => Error::Denied { url },
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => Error::Timeout { url },
        ErrorCode::DnsError(payload) => Error::Dns {
            url,
            detail: payload.rcode.unwrap_or(name),
        },
        ErrorCode::DestinationNotFound => Error::Dns { url, detail: name },
        ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete => Error::Connection { url, detail: name },
        ErrorCode::TlsAlertReceived(payload) => Error::Tls {
            url,
            detail: payload.alert_message.unwrap_or(name),
        },
        ErrorCode::TlsProtocolError | ErrorCode::TlsCertificateError => {
            Error::Tls { url, detail: name }
        }
        ErrorCode::HttpResponseBodySize(limit) => Error::ResponseTooLarge { url, limit },
        ErrorCode::HttpResponseHeaderSectionSize(limit)
        | ErrorCode::HttpResponseTrailerSectionSize(limit) => Error::ResponseTooLarge {
            url,
            limit: limit.map(u64::from),
        },
        ErrorCode::HttpResponseHeaderSize(_) | ErrorCode::HttpResponseTrailerSize(_) => {
            Error::ResponseTooLarge { url, limit: None }
        }
        ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_) => Error::InvalidRequest { url, detail: name },
        ErrorCode::InternalError(Some(message)) => {
            Error::Other(format!("request to {url} failed: {message} ({name})"))
        }
        _ => Error::Other(format!("request to {url} failed: {name}")),
    }
}

/// The error code's name in the WIT (`HTTP-request-denied`), for messages and logs.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::wasi::http::types::DnsErrorPayload;

    const URL: &str = "https://hooks.example.com/a";

    #[test]
    fn error_codes_map_to_what_a_handler_branches_on() {
        let map = |code| from_code(code, URL);
        assert_eq!(
            map(ErrorCode::HttpRequestDenied),
            Error::Denied { url: URL.into() }
        );
        assert_eq!(
            map(ErrorCode::DestinationIpProhibited),
            Error::Denied { url: URL.into() }
        );
        assert_eq!(
            map(ErrorCode::ConnectionReadTimeout),
            Error::Timeout { url: URL.into() }
        );
        assert_eq!(
            map(ErrorCode::ConnectionRefused),
            Error::Connection {
                url: URL.into(),
                detail: "connection-refused".into()
            }
        );
        assert_eq!(
            map(ErrorCode::DnsError(DnsErrorPayload {
                rcode: Some("NXDOMAIN".into()),
                info_code: None
            })),
            Error::Dns {
                url: URL.into(),
                detail: "NXDOMAIN".into()
            }
        );
        assert!(matches!(
            map(ErrorCode::TlsCertificateError),
            Error::Tls { .. }
        ));
        assert_eq!(
            map(ErrorCode::HttpResponseBodySize(Some(16 << 20))),
            Error::ResponseTooLarge {
                url: URL.into(),
                limit: Some(16 << 20)
            }
        );
        assert!(matches!(
            map(ErrorCode::HttpRequestUriInvalid),
            Error::InvalidRequest { .. }
        ));
        assert_eq!(
            map(ErrorCode::HttpProtocolError),
            Error::Other(format!("request to {URL} failed: HTTP-protocol-error"))
        );
        assert_eq!(
            map(ErrorCode::InternalError(Some("pool closed".into()))),
            Error::Other(format!(
                "request to {URL} failed: pool closed (internal-error)"
            ))
        );
    }
}
