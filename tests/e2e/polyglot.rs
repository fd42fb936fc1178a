//! Handlers in Python and JavaScript, end to end: the examples under `examples/python/` and
//! `examples/js/`, built by `scripts/build-python` / `scripts/build-js`, deployed to a real host
//! and driven through triggers — sends, dead letters with reasons, the function's environment,
//! and exceptions whose message and trace reach the invocation log and `sluice logs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Language, Server, cli, polyglot_example, wait_for};

async fn drained(server: &Server, queue: &str) -> bool {
    wait_for(Duration::from_secs(60), || async {
        let stats = server.stats(queue).await;
        stats["visible"] == 0 && stats["delayed"] == 0 && stats["in_flight"] == 0
    })
    .await
}

async fn messages(server: &Server, queue: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/v1/queues/{queue}/messages?limit=1000"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().unwrap().clone()
}

async fn invocations(server: &Server, function: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/v1/functions/{function}/invocations"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["invocations"].as_array().unwrap().clone()
}

/// The router: orders fan out by kind (one route from the function's environment), malformed
/// ones are dead-lettered with the parse error, and a send to a missing queue fails the batch.
async fn router_end_to_end(language: Language) {
    let wasm = polyglot_example(language, "router");
    let (server, _dir) = Server::start().await;
    for queue in ["orders-dlq", "orders-books", "vinyl", "orders-other"] {
        server.create_queue(json!({ "name": queue })).await;
    }
    for queue in ["orders", "orders-broken"] {
        server
            .create_queue(json!({
                "name": queue,
                "max_attempts": 2,
                "dead_letter_queue": "orders-dlq",
                "backoff": {"initial_ms": 10, "max_ms": 50}
            }))
            .await;
    }
    server
        .deploy("router", wasm.clone(), "env=ROUTE_MUSIC=vinyl")
        .await;
    server
        .deploy("broken", wasm, "env=ROUTE_MUSIC=no-such-queue")
        .await;

    let kinds = ["book", "music", "film"];
    let mut bodies: Vec<Value> = (0..60)
        .map(|i| {
            let order =
                json!({"id": format!("o-{i}"), "kind": kinds[i % 3], "amount": i as f64 / 2.0});
            json!({"body": order.to_string(), "attributes": {"tenant": "acme"}})
        })
        .collect();
    bodies.push(json!({"body": "{not json"}));
    bodies.push(json!({"body": r#"{"id": "o-x", "kind": "book"}"#}));
    server.enqueue_all("orders", bodies).await;
    server
        .trigger(
            "router",
            json!({"queue": "orders", "batch_size": 10, "max_wait_ms": 50}),
        )
        .await;
    assert!(drained(&server, "orders").await, "orders not drained");

    let stats = server.stats("orders").await;
    assert_eq!(stats["acked_total"], 60, "{stats}");
    assert_eq!(stats["dead_lettered_total"], 2, "{stats}");
    for (queue, kind) in [
        ("orders-books", "book"),
        ("vinyl", "music"),
        ("orders-other", "film"),
    ] {
        let routed = messages(&server, queue).await;
        assert_eq!(routed.len(), 20, "{queue}: {routed:?}");
        for message in routed {
            let attrs = &message["attributes"];
            assert_eq!(attrs["kind"], kind, "{message}");
            assert_eq!(
                attrs["tenant"], "acme",
                "attributes are forwarded: {message}"
            );
            let body: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
            assert_eq!(
                attrs["order-id"], body["id"],
                "the body is unchanged: {message}"
            );
        }
    }
    let mut reasons: Vec<String> = messages(&server, "orders-dlq")
        .await
        .iter()
        .map(|m| {
            assert_eq!(m["attributes"]["sluice-attempts"], "1", "{m}");
            m["attributes"]["sluice-dead-letter-reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    reasons.sort();
    assert!(reasons[0].starts_with("invalid JSON body: "), "{reasons:?}");
    assert_eq!(reasons[1], "missing field `amount`", "{reasons:?}");

    // A send to a queue that does not exist raises in the handler: the batch fails as a whole,
    // its other sends are discarded, and the host's reason reaches the invocation log.
    let order = |id: &str, kind: &str| json!({"body": json!({"id": id, "kind": kind, "amount": 1.0}).to_string()});
    server
        .enqueue_all(
            "orders-broken",
            [order("b-1", "book"), order("b-2", "music")],
        )
        .await;
    server
        .trigger(
            "broken",
            json!({"queue": "orders-broken", "batch_size": 10, "max_wait_ms": 200}),
        )
        .await;
    assert!(drained(&server, "orders-broken").await);
    let stats = server.stats("orders-broken").await;
    assert_eq!(stats["dead_lettered_total"], 2, "{stats}");
    assert_eq!(stats["acked_total"], 0, "{stats}");
    assert_eq!(
        messages(&server, "orders-books").await.len(),
        20,
        "the sends of a failed batch are discarded"
    );
    let failed = invocations(&server, "broken").await;
    assert!(!failed.is_empty());
    for invocation in failed {
        assert_eq!(invocation["outcome"], "error", "{invocation}");
        assert_eq!(
            invocation["error"], "queue `no-such-queue` does not exist",
            "{invocation}"
        );
    }
}

/// The log handler: its output is the invocation's log, and a `fail` attribute makes it raise
/// or throw, whose message is the invocation's error (also in `sluice logs`) and the dead
/// letter's reason, with the trace in the log.
async fn log_end_to_end(language: Language, error: &str, trace: &str) {
    let wasm = polyglot_example(language, "log");
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "events-dlq"})).await;
    server
        .create_queue(json!({
            "name": "events",
            "max_attempts": 2,
            "dead_letter_queue": "events-dlq",
            "backoff": {"initial_ms": 10, "max_ms": 50}
        }))
        .await;
    server.deploy("log", wasm, "").await;
    server
        .trigger("log", json!({"queue": "events", "batch_size": 10}))
        .await;

    let ids = server
        .enqueue_all(
            "events",
            [json!({"body": "hello", "attributes": {"tenant": "acme"}})],
        )
        .await;
    assert!(drained(&server, "events").await);
    assert_eq!(server.stats("events").await["acked_total"], 1);
    let ok = invocations(&server, "log").await;
    assert_eq!(ok[0]["outcome"], "ok", "{ok:?}");
    let line = format!(
        "message {} from events (attempt 1) [tenant=acme]: hello",
        ids[0]
    );
    assert!(
        ok[0]["logs"].as_str().unwrap().contains(&line),
        "{line} not in {}",
        ok[0]["logs"]
    );

    server
        .enqueue_all(
            "events",
            [json!({"body": "bad", "attributes": {"fail": "tenant acme is suspended"}})],
        )
        .await;
    assert!(drained(&server, "events").await);
    let dead = messages(&server, "events-dlq").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        dead[0]["attributes"]["sluice-dead-letter-reason"],
        format!("handler error: {error}")
    );

    let failed = invocations(&server, "log").await;
    assert_eq!(failed[0]["outcome"], "error", "{failed:?}");
    assert_eq!(failed[0]["error"], error);
    let logs = failed[0]["logs"].as_str().unwrap();
    assert!(
        logs.contains("(attempt 2)") && logs.contains(error),
        "{logs}"
    );
    assert!(
        logs.contains(trace),
        "no trace ({trace}) in the log: {logs}"
    );

    let shown = cli(&server, &["logs", "log"]);
    assert!(shown.contains("error batch=1"), "{shown}");
    assert!(shown.contains(&format!("error: {error}")), "{shown}");
    assert!(shown.contains(&line), "{shown}");
}

#[tokio::test]
async fn python_router_routes_dead_letters_and_fails_on_a_missing_queue() {
    router_end_to_end(Language::Python).await;
}

#[tokio::test]
async fn js_router_routes_dead_letters_and_fails_on_a_missing_queue() {
    router_end_to_end(Language::JavaScript).await;
}

#[tokio::test]
async fn python_exceptions_reach_the_invocation_log() {
    log_end_to_end(
        Language::Python,
        "RuntimeError: tenant acme is suspended",
        "Traceback (most recent call last)",
    )
    .await;
}

#[tokio::test]
async fn a_thrown_js_error_shows_its_message_in_sluice_logs() {
    log_end_to_end(
        Language::JavaScript,
        "Error: tenant acme is suspended",
        "handle@",
    )
    .await;
}

/// State through the standard `wasi:keyvalue`: the counter example counts each customer's
/// messages in bucket `counts` and remembers each message in `seen`, committed with the
/// acknowledgements; a message without a customer is dead-lettered and counts nothing.
async fn counter_end_to_end(language: Language) {
    let wasm = polyglot_example(language, "counter");
    let (server, _dir) = Server::start().await;
    for bucket in ["counts", "seen"] {
        let (status, body) = server
            .put_json(&format!("/v1/kv/{bucket}"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    server.create_queue(json!({"name": "orders-dlq"})).await;
    server
        .create_queue(json!({"name": "orders", "dead_letter_queue": "orders-dlq"}))
        .await;
    server
        .deploy("counter", wasm, "kv_bucket=counts&kv_bucket=seen")
        .await;
    server
        .trigger("counter", json!({"queue": "orders", "batch_size": 10}))
        .await;
    let customers = ["acme", "zeta", "nova"];
    let bodies: Vec<Value> = (0..60)
        .map(
            |i| json!({"body": format!("order {i}"), "attributes": {"customer": customers[i % 3]}}),
        )
        .chain([json!({"body": "anonymous"})])
        .collect();
    server.enqueue_all("orders", bodies).await;
    assert!(
        drained(&server, "orders").await,
        "{}",
        server.stats("orders").await
    );
    for customer in customers {
        let response = server
            .http
            .get(server.url(&format!("/v1/kv/counts/keys/count:{customer}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{customer}");
        assert_eq!(response.text().await.unwrap(), "20", "{customer}");
    }
    let (_, seen) = server.get("/v1/kv/seen/keys?limit=1000").await;
    assert_eq!(seen["keys"].as_array().unwrap().len(), 60, "{seen}");
    let dead = messages(&server, "orders-dlq").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["attributes"]["sluice-dead-letter-reason"]
            .as_str()
            .unwrap()
            .contains("customer"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn a_python_handler_keeps_state_committed_with_its_acks() {
    counter_end_to_end(Language::Python).await;
}

#[tokio::test]
async fn a_javascript_handler_keeps_state_committed_with_its_acks() {
    counter_end_to_end(Language::JavaScript).await;
}
