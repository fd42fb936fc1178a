//! A webhook deliverer: POSTs each message's body to the URL in its `webhook-url` attribute,
//! signed with `Sluice-Signature: sha256=<hex HMAC-SHA256 of the body keyed with WEBHOOK_SECRET>`
//! and carrying `Idempotency-Key: <message id>`, so a receiver can check who sent it and ignore a
//! redelivery.
//!
//! A `2xx` acknowledges the message. A `429`, a `5xx`, a timeout or a failed connection retries it
//! (after `Retry-After` seconds when the receiver gives them, else after the queue's backoff);
//! any other status dead-letters it with the reason `HTTP <status>`. A message without a
//! `webhook-url`, or whose URL the function may not reach, is dead-lettered with the reason. The
//! function fails the whole batch when `WEBHOOK_SECRET` is not set: nothing is sent unsigned.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_sdk::{Batch, Error, Message, Outcome, http};

/// The attribute that holds where to deliver a message.
const URL_ATTRIBUTE: &str = "webhook-url";
/// The attribute whose value, when given, is sent as `Content-Type` (else
/// `application/octet-stream`: a message body is bytes).
const CONTENT_TYPE_ATTRIBUTE: &str = "content-type";
/// How long one delivery may take. Well under the function's time limit (30 s by default), so a
/// receiver that hangs costs its own message a retry, not the whole batch.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn handle(batch: Batch) -> Result<Outcome, Error> {
    deliver(batch, std::env::var("WEBHOOK_SECRET").ok().as_deref())
}

sluice_sdk::export_handler!(handle);

/// Delivers every message of `batch`, signing with `secret`.
fn deliver(batch: Batch, secret: Option<&str>) -> Result<Outcome, Error> {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(Error::new(
            "WEBHOOK_SECRET is not set: deploy the function with `--env WEBHOOK_SECRET=...`, the \
             key receivers check the Sluice-Signature header with (the batch is retried until \
             it is set)",
        ));
    };
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        let verdict = deliver_one(msg, secret);
        match &verdict {
            Verdict::Delivered => {}
            Verdict::Retry { after, why } => {
                // A retry carries no reason to the host: the invocation log does.
                println!("{}: retrying (attempt {}): {why}", msg.id(), msg.attempt());
                match after {
                    Some(after) => outcome.retry_after(msg, *after),
                    None => outcome.retry(msg),
                };
            }
            Verdict::DeadLetter(reason) => {
                println!("{}: dead-lettered: {reason}", msg.id());
                outcome.dead_letter(msg, reason);
            }
        }
    }
    Ok(outcome)
}

/// Delivers one message.
fn deliver_one(msg: &Message, secret: &str) -> Verdict {
    let Some(url) = msg.attribute(URL_ATTRIBUTE) else {
        return Verdict::DeadLetter(format!(
            "no `{URL_ATTRIBUTE}` attribute: give each message the URL to deliver it to, e.g. \
             `sluice send QUEUE BODY --attr {URL_ATTRIBUTE}=https://hooks.example.com/in`"
        ));
    };
    let content_type = msg
        .attribute(CONTENT_TYPE_ATTRIBUTE)
        .unwrap_or("application/octet-stream");
    let result = http::Request::post(url)
        .header("Content-Type", content_type)
        .header("Sluice-Signature", signature(secret, msg.body()))
        .header("Idempotency-Key", msg.id())
        .body(msg.body())
        .timeout(DELIVERY_TIMEOUT)
        .send();
    verdict(result)
}

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What to do with a message after its delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Delivered,
    /// Try again, after `after` (else the queue's backoff); `why` goes to the log.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    DeadLetter(String),
}

/// Decides a message's fate from the answer to its delivery.
fn verdict(result: Result<http::Response, http::Error>) -> Verdict {
    match result {
        Ok(response) if response.is_success() => Verdict::Delivered,
        Ok(response) if response.status() == 429 || response.status() >= 500 => Verdict::Retry {
            after: retry_after(&response),
            why: format!("HTTP {}", response.status()),
        },
        // A 3xx too: redirects are not followed, the webhook-url must be the final URL.
        Ok(response) => Verdict::DeadLetter(format!("HTTP {}", response.status())),
        // Retrying cannot help these: the URL is unreachable by design or malformed.
        Err(error @ (http::Error::Denied { .. } | http::Error::InvalidRequest { .. })) => {
            Verdict::DeadLetter(error.to_string())
        }
        // Timeouts, DNS and connection failures, TLS and anything else: try again; the queue's
        // max_attempts bounds how often, and the dead-letter queue keeps what never went.
        Err(error) => Verdict::Retry {
            after: None,
            why: error.to_string(),
        },
    }
}

/// The delay a `Retry-After` header asks for, when given in seconds (the HTTP-date form falls
/// back to the queue's backoff).
fn retry_after(response: &http::Response) -> Option<Duration> {
    let seconds = response.header("Retry-After")?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::Disposition;
    use sluice_sdk::testing::{self, Harness, Report, Stub};

    const SECRET: &str = "s3cret";
    const URL: &str = "https://hooks.example.com/in";

    fn event(body: &str) -> testing::TestMessage {
        testing::message(body).attribute(URL_ATTRIBUTE, URL)
    }

    fn run(stub: Stub, messages: impl IntoIterator<Item = testing::TestMessage>) -> Report {
        Harness::new()
            .http(stub)
            .run(|batch| deliver(batch, Some(SECRET)), messages)
    }

    fn dead_letter_reason(report: &Report, id: &str) -> String {
        match report.disposition(id) {
            Some(Disposition::DeadLetter(reason)) => reason.clone(),
            other => panic!("{id} not dead-lettered: {other:?} ({:?})", report.result()),
        }
    }

    #[test]
    fn posts_the_body_signed_with_the_message_id_as_idempotency_key() {
        let body = r#"{"order": "o-1", "total": 25.0}"#;
        let report = run(
            testing::stub(URL).status(200),
            [event(body).id("01J-order-1")],
        );
        assert_eq!(report.acked(), ["01J-order-1"]);
        let [request] = report.requests() else {
            panic!("{:?}", report.requests());
        };
        assert_eq!(request.method, http::Method::Post);
        assert_eq!(request.url, URL);
        assert_eq!(request.body_str().unwrap(), body);
        assert_eq!(request.header("Idempotency-Key"), Some("01J-order-1"));
        assert_eq!(
            request.header("Content-Type"),
            Some("application/octet-stream")
        );
        assert_eq!(request.timeout, Some(DELIVERY_TIMEOUT));
        let signature = request.header("Sluice-Signature").unwrap();
        assert_eq!(signature, super::signature(SECRET, body.as_bytes()));
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
    }

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // The well-known HMAC-SHA256 example (Wikipedia, "HMAC"), as a receiver computes it.
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn a_content_type_attribute_is_forwarded() {
        let report = run(
            testing::stub(URL).status(204),
            [event("{}").attribute(CONTENT_TYPE_ATTRIBUTE, "application/json")],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        assert_eq!(
            report.requests()[0].header("content-type"),
            Some("application/json")
        );
    }

    #[test]
    fn server_errors_and_throttling_retry_honouring_retry_after() {
        let report = run(testing::stub(URL).status(503), [event("x")]);
        assert_eq!(report.disposition("msg-1"), Some(&Disposition::Retry(None)));

        let report = run(
            testing::stub(URL).status(500).header("Retry-After", "3"),
            [event("x")],
        );
        assert_eq!(
            report.disposition("msg-1"),
            Some(&Disposition::Retry(Some(Duration::from_secs(3))))
        );

        let report = run(
            testing::stub(URL)
                .status(429)
                .header("retry-after", " 120 "),
            [event("x")],
        );
        assert_eq!(
            report.disposition("msg-1"),
            Some(&Disposition::Retry(Some(Duration::from_secs(120))))
        );

        let report = run(
            testing::stub(URL)
                .status(429)
                .header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
            [event("x")],
        );
        assert_eq!(
            report.disposition("msg-1"),
            Some(&Disposition::Retry(None)),
            "an HTTP-date falls back to the queue's backoff"
        );
    }

    #[test]
    fn timeouts_and_connection_failures_retry() {
        for stub in [
            testing::stub(URL).timeout(),
            testing::stub(URL).connection_refused(),
        ] {
            let report = run(stub, [event("x")]);
            assert!(report.is_ok(), "{:?}", report.result());
            assert_eq!(report.disposition("msg-1"), Some(&Disposition::Retry(None)));
        }
    }

    #[test]
    fn other_client_errors_dead_letter_with_the_status() {
        // A redirect is not followed: it dead-letters like a 4xx.
        for status in [301, 400, 401, 404, 410, 422] {
            let report = run(testing::stub(URL).status(status), [event("x")]);
            assert_eq!(
                dead_letter_reason(&report, "msg-1"),
                format!("HTTP {status}")
            );
        }
    }

    #[test]
    fn a_message_without_a_url_is_dead_lettered_without_a_request() {
        let report = run(testing::stub(URL), [testing::message("x")]);
        let reason = dead_letter_reason(&report, "msg-1");
        assert!(reason.starts_with("no `webhook-url` attribute"), "{reason}");
        assert!(report.requests().is_empty());
    }

    #[test]
    fn a_denied_host_is_dead_lettered_with_what_to_allow() {
        let report = run(
            testing::stub_prefix("https://hooks.example.com/").denied(),
            [event("x")],
        );
        let reason = dead_letter_reason(&report, "msg-1");
        assert!(
            reason.contains("--allow-outbound https://hooks.example.com"),
            "{reason}"
        );
    }

    #[test]
    fn a_malformed_url_is_dead_lettered() {
        let report = run(
            testing::stub(URL),
            [testing::message("x").attribute(URL_ATTRIBUTE, "hooks.example.com/in")],
        );
        let reason = dead_letter_reason(&report, "msg-1");
        assert!(
            reason.starts_with("invalid request to hooks.example.com/in"),
            "{reason}"
        );
    }

    #[test]
    fn without_a_secret_the_batch_fails_and_nothing_is_sent() {
        for secret in [None, Some("")] {
            let report = Harness::new()
                .http(testing::stub(URL))
                .run(|batch| deliver(batch, secret), [event("x")]);
            let error = report.error().expect("the batch fails");
            assert!(
                error.message().starts_with(
                    "WEBHOOK_SECRET is not set: deploy the function with `--env WEBHOOK_SECRET=...`"
                ),
                "{error}"
            );
            assert!(report.requests().is_empty());
        }
    }

    #[test]
    fn each_message_of_a_batch_gets_its_own_verdict() {
        let report = Harness::new()
            .http(testing::stub("https://a.example.com/ok"))
            .http(testing::stub("https://a.example.com/busy").status(502))
            .http(testing::stub("https://a.example.com/gone").status(404))
            .run(
                |batch| deliver(batch, Some(SECRET)),
                [
                    testing::message("1").attribute(URL_ATTRIBUTE, "https://a.example.com/ok"),
                    testing::message("2").attribute(URL_ATTRIBUTE, "https://a.example.com/busy"),
                    testing::message("3").attribute(URL_ATTRIBUTE, "https://a.example.com/gone"),
                ],
            );
        assert_eq!(report.acked(), ["msg-1"]);
        assert_eq!(report.disposition("msg-2"), Some(&Disposition::Retry(None)));
        assert_eq!(dead_letter_reason(&report, "msg-3"), "HTTP 404");
        let keys: Vec<_> = report
            .requests()
            .iter()
            .map(|r| r.header("Idempotency-Key").unwrap())
            .collect();
        assert_eq!(keys, ["msg-1", "msg-2", "msg-3"]);
    }

    #[test]
    fn other_failures_retry_so_the_dead_letter_queue_keeps_what_never_went() {
        let tls = http::Error::Tls {
            url: URL.into(),
            detail: "TLS-certificate-error".into(),
        };
        assert!(matches!(
            verdict(Err(tls)),
            Verdict::Retry { after: None, .. }
        ));
        let too_large = http::Error::ResponseTooLarge {
            url: URL.into(),
            limit: Some(1),
        };
        assert!(matches!(
            verdict(Err(too_large)),
            Verdict::Retry { after: None, .. }
        ));
    }
}
