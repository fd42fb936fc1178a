//! Handlers that reach the world: outbound HTTP through the real binary, to real HTTP servers
//! this test starts on loopback as "the outside world". The webhook example delivers with a
//! signature and an idempotency key, retries 5xx (honouring `Retry-After`) and dead-letters
//! 4xx; hosts outside the allow-list are denied inside the guest and never see a byte; a
//! private address is reachable only through a pattern that names it; a hung upstream is cut
//! at the function's time limit; an oversized response is cut at its cap.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::durability::all_messages;
use crate::support::{Language, Server, example, guest, polyglot_example, wait_for};
use crate::triggers::metric;

const SECRET: &str = "s3cret";

/// One request the upstream received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// How the upstream answers, in order; the last answer repeats.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Never answers (the connection stays open).
    Hang,
    /// 200 with this many bytes of body.
    Large(usize),
}

#[derive(Clone, Default)]
struct Upstream {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

impl Upstream {
    /// Starts an HTTP server on 127.0.0.1 answering with `answers`.
    async fn start(answers: impl IntoIterator<Item = Answer>) -> (Upstream, SocketAddr) {
        let upstream = Upstream {
            seen: Arc::default(),
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
        };
        let app = axum::Router::new()
            .fallback(any(answer))
            .with_state(upstream.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (upstream, addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    State(upstream): State<Upstream>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    upstream.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let next = {
        let mut answers = upstream.answers.lock().unwrap();
        match answers.len() {
            0 => Answer::Status(200, Vec::new()),
            1 => answers[0].clone(),
            _ => answers.pop_front().unwrap(),
        }
    };
    match next {
        Answer::Status(status, headers) => {
            let mut response = StatusCode::from_u16(status).unwrap().into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Answer::Hang => std::future::pending().await,
        Answer::Large(bytes) => vec![b'x'; bytes].into_response(),
    }
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A server with queue `hooks` (fast backoff, `hooks-dlq` after `max_attempts`) consumed by the
/// webhook example, allowed to reach `allow`.
async fn webhook_server(allow: &[String], max_attempts: u32) -> (Server, crate::support::DataDir) {
    webhook_server_running(example("webhook"), allow, max_attempts).await
}

/// [`webhook_server`] with the webhook handler `wasm` (the Rust, Python or JavaScript one).
async fn webhook_server_running(
    wasm: Vec<u8>,
    allow: &[String],
    max_attempts: u32,
) -> (Server, crate::support::DataDir) {
    let (server, dir) = Server::start().await;
    server.create_queue(json!({"name": "hooks-dlq"})).await;
    server
        .create_queue(json!({
            "name": "hooks",
            "max_attempts": max_attempts,
            "dead_letter_queue": "hooks-dlq",
            "backoff": {"initial_ms": 50, "max_ms": 200, "jitter": false},
        }))
        .await;
    let mut query = format!("env=WEBHOOK_SECRET={SECRET}");
    for pattern in allow {
        query.push_str(&format!("&allowed_outbound_host={}", urlencode(pattern)));
    }
    server.deploy("webhook", wasm, &query).await;
    server
        .trigger("webhook", json!({"queue": "hooks", "batch_size": 1}))
        .await;
    (server, dir)
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_owned()
}

async fn enqueue_hook(server: &Server, url: &str, body: &str) -> String {
    let ids = server
        .enqueue_all(
            "hooks",
            [json!({"body": body, "attributes": {"webhook-url": url}})],
        )
        .await;
    ids[0].clone()
}

async fn settled(server: &Server, acked: u64, dead: u64) -> bool {
    wait_for(Duration::from_secs(30), || async {
        let hooks = server.stats("hooks").await;
        let dlq = server.stats("hooks-dlq").await;
        hooks["acked_total"] == acked && dlq["visible"] == dead
    })
    .await
}

async fn invocation_logs(server: &Server, function: &str) -> String {
    let (status, page) = server
        .get(&format!("/v1/functions/{function}/invocations"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["logs"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_webhook_example_delivers_signed_with_the_message_id_as_idempotency_key() {
    let (upstream, addr) = Upstream::start([]).await;
    let (server, _dir) = webhook_server(&[format!("http://{addr}")], 5).await;
    let body = r#"{"order": 42}"#;
    let id = enqueue_hook(&server, &format!("http://{addr}/orders"), body).await;
    assert!(
        settled(&server, 1, 0).await,
        "{}",
        server.stats("hooks").await
    );

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/orders");
    assert_eq!(seen[0].body, body.as_bytes());
    assert_eq!(seen[0].headers["idempotency-key"], id.as_str());
    assert_eq!(
        seen[0].headers["sluice-signature"],
        signature(body.as_bytes()).as_str()
    );
    // The invocation log names the request and its answer.
    let logs = invocation_logs(&server, "webhook").await;
    assert!(
        logs.contains(&format!("outbound POST http://{addr}/orders -> 200")),
        "{logs}"
    );
    // And the metric counts it.
    let counted = metric(
        &server,
        "sluice_outbound_requests_total",
        r#"function="webhook",outcome="2xx""#,
    )
    .await;
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn a_5xx_is_retried_after_retry_after_and_acknowledged_once() {
    let (upstream, addr) = Upstream::start([
        Answer::Status(503, vec![("retry-after", "1")]),
        Answer::Status(200, Vec::new()),
    ])
    .await;
    let (server, _dir) = webhook_server(&[format!("http://{addr}")], 5).await;
    let id = enqueue_hook(&server, &format!("http://{addr}/x"), "hello").await;
    assert!(
        settled(&server, 1, 0).await,
        "{}",
        server.stats("hooks").await
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "one failure, one success: {seen:?}");
    for request in &seen {
        assert_eq!(request.headers["idempotency-key"], id.as_str());
    }
    // Retry-After: 1 was the retry delay, not the queue's 50 ms backoff.
    let (_, page) = server.get("/v1/functions/webhook/invocations").await;
    let mut starts: Vec<u64> = page["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["started_at_ms"].as_u64().unwrap())
        .collect();
    starts.sort();
    assert!(starts[1] - starts[0] >= 950, "retried too soon: {starts:?}");
}

#[tokio::test]
async fn a_4xx_dead_letters_with_the_status_as_reason() {
    let (upstream, addr) = Upstream::start([Answer::Status(410, Vec::new())]).await;
    let (server, _dir) = webhook_server(&[format!("http://{addr}")], 5).await;
    enqueue_hook(&server, &format!("http://{addr}/gone"), "bye").await;
    assert!(
        settled(&server, 0, 1).await,
        "{}",
        server.stats("hooks-dlq").await
    );
    assert_eq!(upstream.seen().len(), 1);
    let dead = all_messages(&server, "hooks-dlq").await;
    let reason = dead[0]["attributes"]["sluice-dead-letter-reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("HTTP 410"), "{}", dead[0]);
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_denied_and_sees_nothing() {
    let (upstream, addr) = Upstream::start([]).await;
    // Allowed: another port of the same host, and a wildcard that may reach public names only.
    let other = format!("http://127.0.0.1:{}", addr.port() + 1);
    let (server, _dir) = webhook_server(&[other, format!("http://*:{}", addr.port())], 5).await;
    // Not listed at all; a private literal through a wildcard; a name that resolves to loopback
    // through a wildcard.
    for url in [
        format!("https://example.invalid:{}/x", addr.port()),
        format!("http://{addr}/x"),
        format!("http://localhost:{}/x", addr.port()),
    ] {
        enqueue_hook(&server, &url, "secret").await;
    }
    assert!(
        settled(&server, 0, 3).await,
        "{}",
        server.stats("hooks-dlq").await
    );
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    let logs = invocation_logs(&server, "webhook").await;
    assert!(
        logs.contains("not in the function's allowed_outbound_hosts"),
        "{logs}"
    );
    assert!(logs.contains("non-public address (127.0.0.1)"), "{logs}");
    assert!(
        logs.contains("resolves only to non-public addresses"),
        "{logs}"
    );
    for dead in all_messages(&server, "hooks-dlq").await {
        let reason = dead["attributes"]["sluice-dead-letter-reason"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.to_lowercase().contains("denied"), "{dead}");
    }
}

/// The `fetch` guest (world 0.4.0) does one request per message and sends what came back (status and
/// body length, or the WASI error) to the queue named in its `reply-queue` attribute.
async fn fetch_server(query: &str) -> (Server, crate::support::DataDir) {
    let (server, dir) = Server::start().await;
    for queue in ["fetch", "results"] {
        server
            .create_queue(json!({
                "name": queue,
                "max_attempts": 3,
                "backoff": {"initial_ms": 50, "max_ms": 100, "jitter": false},
            }))
            .await;
    }
    server.deploy("fetch", guest("fetch"), query).await;
    server
        .trigger("fetch", json!({"queue": "fetch", "batch_size": 1}))
        .await;
    (server, dir)
}

async fn fetch(server: &Server, request: Value) {
    server
        .enqueue_all(
            "fetch",
            [json!({"body": request.to_string(), "attributes": {"reply-queue": "results"}})],
        )
        .await;
}

async fn results(server: &Server, count: usize) -> Vec<Value> {
    assert!(
        wait_for(Duration::from_secs(30), || async {
            server.stats("results").await["visible"] == count as u64
        })
        .await,
        "{}",
        server.stats("fetch").await
    );
    all_messages(server, "results")
        .await
        .iter()
        .map(|m| {
            let body = m["body"].as_str().unwrap_or_default();
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn a_hung_upstream_is_cut_at_the_time_limit_and_the_batch_retried() {
    let (upstream, addr) = Upstream::start([Answer::Hang]).await;
    let allow = urlencode(&format!("http://{addr}"));
    let (server, _dir) = fetch_server(&format!(
        "timeout_ms=1000&outbound_timeout_ms=60000&allowed_outbound_host={allow}"
    ))
    .await;
    let started = Instant::now();
    fetch(
        &server,
        json!({"method": "GET", "url": format!("http://{addr}/hang")}),
    )
    .await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            server.stats("fetch").await["dead_lettered_total"] == 1
                || server.stats("fetch").await["dropped_total"] == 1
                || upstream.seen().len() >= 3
        })
        .await
    );
    let (_, page) = server
        .get("/v1/functions/fetch/invocations?outcome=timeout")
        .await;
    let timeouts = page["invocations"].as_array().unwrap();
    assert!(!timeouts.is_empty(), "{page}");
    for invocation in timeouts {
        let ms = invocation["duration_ms"].as_f64().unwrap();
        assert!((950.0..2_000.0).contains(&ms), "{invocation}");
    }
    // Each delivery was cut and retried: three attempts within a few seconds, not minutes.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(upstream.seen().len() >= 2, "{:?}", upstream.seen());
}

#[tokio::test]
async fn an_oversized_response_is_cut_with_a_clear_error() {
    let (_upstream, addr) = Upstream::start([Answer::Large(3 << 20)]).await;
    let allow = urlencode(&format!("http://{addr}"));
    let (server, _dir) = fetch_server(&format!(
        "max_outbound_response_bytes=1048576&allowed_outbound_host={allow}"
    ))
    .await;
    fetch(
        &server,
        json!({"method": "GET", "url": format!("http://{addr}/big")}),
    )
    .await;
    let results = results(&server, 1).await;
    let text = results[0].to_string();
    // The guest reads the body as a stream, so the cut comes as the stream's error, with
    // wasi:http's own words for it.
    assert!(
        text.contains("HTTP response body size exceeds limit: 1048576 bytes"),
        "{text}"
    );
    let logs = invocation_logs(&server, "fetch").await;
    assert!(
        logs.contains(
            "response body cut at 1048576 bytes (the function's max_outbound_response_bytes)"
        ),
        "{logs}"
    );
}

#[tokio::test]
async fn a_0_2_0_component_runs_beside_a_0_3_0_one_that_calls_out() {
    let (_upstream, addr) = Upstream::start([Answer::Status(204, Vec::new())]).await;
    let allow = urlencode(&format!("http://{addr}"));
    let (server, _dir) = fetch_server(&format!("allowed_outbound_host={allow}")).await;
    server.create_queue(json!({"name": "old"})).await;
    server.deploy("old", guest("outbox2"), "").await;
    server.trigger("old", json!({"queue": "old"})).await;
    let (_, function) = server.get("/v1/functions/fetch").await;
    assert_eq!(
        function["versions"][0]["config"]["allowed_outbound_hosts"],
        json!([format!("http://{addr}")])
    );

    server
        .enqueue_all(
            "old",
            [json!({"body": "x", "attributes": {"send": "results"}})],
        )
        .await;
    fetch(
        &server,
        json!({"method": "GET", "url": format!("http://{addr}/a")}),
    )
    .await;
    let results = results(&server, 2).await;
    let text = serde_json::to_string(&results).unwrap();
    assert!(text.contains("204"), "{text}");
}

/// The Python and JavaScript webhook examples (`sluice_sdk.http`, and `fetch` on StarlingMonkey)
/// deliver to the same upstream, signed, through the same allow-list.
#[tokio::test]
async fn python_and_javascript_handlers_call_out_too() {
    for language in [Language::Python, Language::JavaScript] {
        let (upstream, addr) = Upstream::start([]).await;
        let wasm = polyglot_example(language, "webhook");
        let (server, _dir) = webhook_server_running(wasm, &[format!("http://{addr}")], 5).await;
        let body = format!(r#"{{"from": "{}"}}"#, language.name());
        let id = enqueue_hook(&server, &format!("http://{addr}/in"), &body).await;
        assert!(
            settled(&server, 1, 0).await,
            "{}: {}",
            language.name(),
            invocation_logs(&server, "webhook").await
        );
        let seen = upstream.seen();
        assert_eq!(seen.len(), 1, "{}: {seen:?}", language.name());
        assert_eq!(seen[0].body, body.as_bytes());
        assert_eq!(seen[0].headers["idempotency-key"], id.as_str());
        assert_eq!(
            seen[0].headers["sluice-signature"],
            signature(body.as_bytes()).as_str(),
            "{}",
            language.name()
        );
    }
}
