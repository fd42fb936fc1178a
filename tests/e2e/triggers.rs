//! Triggers end to end: batches through real components with automatic ack, partial failure,
//! retries with backoff, dead-lettering and redrive, and metrics that agree.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, example, guest, wait_for};

/// Reads one sample of a Prometheus counter (summing label sets that match `labels`).
pub async fn metric(server: &Server, name: &str, labels: &str) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter(|line| line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn drained(server: &Server, queue: &str, deadline: Duration) -> bool {
    wait_for(deadline, || async {
        let stats = server.stats(queue).await;
        stats["visible"] == 0 && stats["delayed"] == 0 && stats["in_flight"] == 0
    })
    .await
}

#[tokio::test]
async fn ten_thousand_messages_are_each_acknowledged_once() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "work"})).await;
    server.deploy("sum", example("sum"), "").await;
    let bodies: Vec<Value> = (0..10_000)
        .map(|i| json!({ "body": format!("message {i}") }))
        .collect();
    server.enqueue_all("work", bodies).await;
    server
        .trigger(
            "sum",
            json!({"queue": "work", "batch_size": 100, "max_concurrency": 2}),
        )
        .await;

    assert!(
        drained(&server, "work", Duration::from_secs(120)).await,
        "queue not drained"
    );
    let stats = server.stats("work").await;
    assert_eq!(stats["enqueued_total"], 10_000);
    assert_eq!(stats["acked_total"], 10_000, "{stats}");
    assert_eq!(stats["retried_total"], 0, "{stats}");
    // The counters move right after the commit the stats read, on the dispatcher's task: the
    // last batches' increments may land a moment after the queue shows drained.
    assert!(
        wait_for(Duration::from_secs(10), || async {
            metric(&server, "sluice_acked_total", "queue=\"work\"").await == 10_000.0
                && metric(&server, "sluice_delivered_total", "queue=\"work\"").await == 10_000.0
        })
        .await,
        "acked {}, delivered {}",
        metric(&server, "sluice_acked_total", "queue=\"work\"").await,
        metric(&server, "sluice_delivered_total", "queue=\"work\"").await
    );
    assert_eq!(
        metric(&server, "sluice_enqueued_total", "queue=\"work\"").await,
        10_000.0
    );
    // 10,000 messages enqueued in batches and settled in batches of 100, several batches to a
    // commit when they meet in the writer: far fewer commits than messages, and some.
    let commits = metric(&server, "sluice_store_commits_total", "").await;
    assert!((1.0..1_000.0).contains(&commits), "{commits} commits");

    let (_, function) = server.get("/v1/functions/sum").await;
    assert_eq!(function["trigger"]["state"], "running", "{function}");
    let (_, invocations) = server.get("/v1/functions/sum/invocations?limit=5").await;
    let invocations = invocations["invocations"].as_array().unwrap();
    assert!(!invocations.is_empty());
    assert!(invocations.iter().all(|i| i["outcome"] == "ok"));
}

#[tokio::test]
async fn partial_failure_retries_only_the_listed_messages() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "flaky-dlq"})).await;
    server
        .create_queue(json!({
            "name": "flaky",
            "max_attempts": 3,
            "dead_letter_queue": "flaky-dlq",
            "backoff": {"initial_ms": 20, "max_ms": 100, "jitter": false}
        }))
        .await;
    server.deploy("flaky", example("flaky"), "").await;
    let messages: Vec<Value> = (0..20)
        .map(|i| match i % 10 {
            3 => json!({"body": format!("m{i}"), "attributes": {"fail": "retry"}}),
            7 => json!({"body": format!("m{i}"), "attributes": {"fail": "dead-letter"}}),
            _ => json!({"body": format!("m{i}")}),
        })
        .collect();
    server.enqueue_all("flaky", messages).await;
    server
        .trigger(
            "flaky",
            json!({"queue": "flaky", "batch_size": 20, "max_wait_ms": 200}),
        )
        .await;

    assert!(drained(&server, "flaky", Duration::from_secs(60)).await);
    let stats = server.stats("flaky").await;
    assert_eq!(
        stats["acked_total"], 16,
        "the rest acknowledged exactly once: {stats}"
    );
    assert_eq!(
        stats["retried_total"], 4,
        "two messages retried twice each: {stats}"
    );
    assert_eq!(stats["dead_lettered_total"], 4, "{stats}");

    let (_, dlq) = server.get("/v1/queues/flaky-dlq/messages?limit=10").await;
    let dlq = dlq["messages"].as_array().unwrap();
    assert_eq!(dlq.len(), 4);
    for message in dlq {
        let attrs = &message["attributes"];
        assert_eq!(attrs["sluice-source-queue"], "flaky");
        assert!(
            attrs["sluice-dead-letter-reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{message}"
        );
        match attrs["fail"].as_str() {
            Some("retry") => assert_eq!(attrs["sluice-attempts"], "3", "{message}"),
            Some("dead-letter") => assert_eq!(attrs["sluice-attempts"], "1", "{message}"),
            other => panic!("unexpected message in the DLQ: {other:?}"),
        }
    }
}

#[tokio::test]
async fn errors_traps_and_timeouts_retry_the_batch_then_dead_letter_and_redrive_recovers() {
    let (server, _dir) = Server::start().await;
    let cases = [
        ("trap", guest("trap"), "", "trap"),
        ("timeout", guest("loop"), "timeout_ms=1000", "timeout"),
    ];
    for (name, wasm, query, reason) in cases {
        let dlq = format!("{name}-dlq");
        server.create_queue(json!({ "name": dlq })).await;
        server
            .create_queue(json!({
                "name": name,
                "max_attempts": 2,
                "dead_letter_queue": dlq,
                "backoff": {"initial_ms": 10, "max_ms": 50}
            }))
            .await;
        server.deploy(name, wasm, query).await;
        server
            .enqueue_all(name, (0..5).map(|i| json!({"body": format!("{name} {i}")})))
            .await;
        server
            .trigger(
                name,
                json!({"queue": name, "batch_size": 5, "max_wait_ms": 100}),
            )
            .await;

        let all_dead = wait_for(Duration::from_secs(60), || async {
            server.stats(&dlq).await["visible"] == 5
        })
        .await;
        assert!(
            all_dead,
            "{name}: messages did not reach the DLQ: {}",
            server.stats(name).await
        );
        let stats = server.stats(name).await;
        assert_eq!(stats["acked_total"], 0, "{stats}");
        assert_eq!(stats["retried_total"], 5, "{stats}");
        let (_, peeked) = server
            .get(&format!("/v1/queues/{dlq}/messages?limit=10"))
            .await;
        for message in peeked["messages"].as_array().unwrap() {
            let why = message["attributes"]["sluice-dead-letter-reason"]
                .as_str()
                .unwrap();
            assert!(
                why.contains(reason),
                "{name}: reason `{why}` should mention {reason}"
            );
            assert_eq!(message["attributes"]["sluice-attempts"], "2");
        }

        // Fix the handler, bring the messages back: each is handled and acknowledged.
        server.deploy(name, guest("ok"), "").await;
        let (status, moved) = server
            .post(&format!("/v1/queues/{dlq}/redrive"), json!({}))
            .await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["moved"], 5);
        let acked = wait_for(Duration::from_secs(30), || async {
            server.stats(name).await["acked_total"] == 5
        })
        .await;
        assert!(
            acked,
            "{name}: redriven messages not acknowledged: {}",
            server.stats(name).await
        );
        assert_eq!(server.stats(&dlq).await["visible"], 0);
    }

    // `err` from the handler behaves the same way.
    server.create_queue(json!({"name": "err-dlq"})).await;
    server
        .create_queue(json!({"name": "err", "max_attempts": 2, "dead_letter_queue": "err-dlq", "backoff": {"initial_ms": 10}}))
        .await;
    server.deploy("err", example("flaky"), "").await;
    let ids = server
        .enqueue_all(
            "err",
            [
                json!({"body": "boom", "attributes": {"fail": "error"}}),
                json!({"body": "fine"}),
            ],
        )
        .await;
    server
        .trigger(
            "err",
            json!({"queue": "err", "batch_size": 2, "max_wait_ms": 100}),
        )
        .await;
    let both_dead = wait_for(Duration::from_secs(30), || async {
        server.stats("err-dlq").await["visible"] == 2
    })
    .await;
    assert!(
        both_dead,
        "an err retries the whole batch: {}",
        server.stats("err").await
    );
    // Both messages were delivered twice (the first `err` retried the batch, the second
    // exhausted max_attempts), neither was acknowledged, and the DLQ keeps the handler's words.
    let stats = server.stats("err").await;
    assert_eq!(stats["retried_total"], 2, "one retry per message: {stats}");
    assert_eq!(stats["acked_total"], 0, "{stats}");
    assert_eq!(stats["dead_lettered_total"], 2, "{stats}");
    let reason = format!(
        "handler error: flaky: message {} asked to fail the batch",
        ids[0]
    );
    let (_, peeked) = server.get("/v1/queues/err-dlq/messages?limit=10").await;
    let dead = peeked["messages"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{peeked}");
    for message in dead {
        let attributes = &message["attributes"];
        assert_eq!(attributes["sluice-dead-letter-reason"], reason, "{message}");
        assert_eq!(attributes["sluice-attempts"], "2", "{message}");
    }
    let (_, invocations) = server.get("/v1/functions/err/invocations").await;
    let invocations = invocations["invocations"].as_array().unwrap();
    assert_eq!(invocations.len(), 2, "two attempts: {invocations:?}");
    for invocation in invocations {
        assert_eq!(invocation["outcome"], "error", "{invocation}");
        assert_eq!(invocation["batch_size"], 2, "{invocation}");
        assert_eq!(
            invocation["error"],
            format!("flaky: message {} asked to fail the batch", ids[0]),
            "{invocation}"
        );
    }
}

#[tokio::test]
async fn sends_to_missing_queues_fail_at_the_send_call() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "in"})).await;
    server.deploy("ok", guest("ok"), "").await;
    let (status, result) = server
        .post(
            "/v1/functions/ok/invoke",
            json!({"messages": [{"body": "x", "attributes": {"to": "nowhere"}}]}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let text = result.to_string();
    assert!(
        text.contains("nowhere"),
        "the send error names the queue: {result}"
    );
    assert_eq!(result["sent"], 0, "{result}");
}

#[tokio::test]
async fn sigterm_settles_in_flight_batches_and_restart_finishes_the_rest() {
    let (mut server, dir) = Server::start().await;
    server
        .create_queue(json!({"name": "work", "visibility_timeout_ms": 60_000}))
        .await;
    server.deploy("ok", guest("ok"), "").await;
    server
        .enqueue_all("work", (0..5_000).map(|i| json!({"body": format!("m{i}")})))
        .await;
    server
        .trigger(
            "ok",
            json!({"queue": "work", "batch_size": 50, "max_concurrency": 4}),
        )
        .await;
    let started = wait_for(Duration::from_secs(60), || async {
        server.stats("work").await["acked_total"]
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await;
    assert!(started);
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    // Everything in flight settled before exit, so the rest drains well before an abandoned
    // 60 s lease could have expired.
    let server = Server::start_in(dir.path()).await;
    assert!(
        drained(&server, "work", Duration::from_secs(30)).await,
        "{}",
        server.stats("work").await
    );
    let stats = server.stats("work").await;
    assert_eq!(stats["acked_total"], 5_000, "{stats}");
    assert_eq!(stats["retried_total"], 0, "{stats}");
}
