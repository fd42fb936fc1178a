//! Pull consumers over HTTP: receive with receipts, ack, retry, dead-letter and extend by
//! receipt, stale receipts refused without a change, long polling that wakes on the enqueue,
//! attempts counted to the dead-letter queue, one kind of consumer per queue, and the CLI.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, assert_error, cli, guest, wait_for};

async fn receive(server: &Server, queue: &str, body: Value) -> Vec<Value> {
    let (status, answer) = server
        .post(&format!("/v1/queues/{queue}/messages/receive"), body)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["messages"].as_array().cloned().unwrap_or_default()
}

async fn settle(server: &Server, queue: &str, verb: &str, body: Value) -> (u16, Value) {
    server
        .post(&format!("/v1/queues/{queue}/messages/{verb}"), body)
        .await
}

fn receipts(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["receipt"].clone()).collect()
}

#[tokio::test]
async fn received_messages_are_settled_by_receipt() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "dlq"})).await;
    server
        .create_queue(json!({"name": "q", "max_attempts": 2, "dead_letter_queue": "dlq"}))
        .await;
    for body in ["ack me", "retry me", "bury me", "keep me"] {
        let response = server
            .http
            .post(server.url("/v1/queues/q/messages"))
            .header("sluice-attr-kind", "test")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    let got = receive(&server, "q", json!({"max_messages": 4})).await;
    assert_eq!(got.len(), 4);
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["ack me", "retry me", "bury me", "keep me"]);
    assert!(
        got.iter()
            .all(|m| m["attempt"] == 1 && m["attributes"]["kind"] == "test")
    );
    assert_eq!(server.stats("q").await["in_flight"], 4);
    // Nothing else to lease while they are held.
    assert!(receive(&server, "q", json!({})).await.is_empty());

    let (status, answer) = settle(
        &server,
        "q",
        "ack",
        json!({"receipts": [got[0]["receipt"]]}),
    )
    .await;
    assert_eq!(
        (status, answer["succeeded"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    let (status, answer) = settle(
        &server,
        "q",
        "retry",
        json!({"receipts": [got[1]["receipt"]], "delay_ms": 0}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = settle(
        &server,
        "q",
        "dead-letter",
        json!({"receipts": [got[2]["receipt"]], "reason": "cannot parse it"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = settle(
        &server,
        "q",
        "extend",
        json!({"receipts": [got[3]["receipt"]], "visibility_timeout_ms": 120_000}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // The retried one comes back as its second attempt; retrying its last attempt
    // dead-letters it, as a trigger's retry would.
    let again = receive(&server, "q", json!({"wait_ms": 5_000})).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0]["body"].as_str(), again[0]["attempt"].as_u64()),
        (Some("retry me"), Some(2))
    );
    let (status, answer) =
        settle(&server, "q", "retry", json!({"receipts": receipts(&again)})).await;
    assert_eq!(status, 200, "{answer}");

    let (_, dead) = server.get("/v1/queues/dlq/messages").await;
    let dead = dead["messages"].as_array().unwrap().clone();
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap(),
                m["attributes"]["sluice-dead-letter-reason"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{dead:?}");
    assert!(
        reasons.contains(&("bury me", "cannot parse it")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(body, why)| *body == "retry me" && why.contains("retry")),
        "{reasons:?}"
    );
    let stats = server.stats("q").await;
    assert_eq!(
        stats["in_flight"], 1,
        "the extended one is still held: {stats}"
    );
    assert_eq!(stats["acked_total"], 1, "{stats}");

    // A receipt used twice is stale; junk and another queue's receipts are refused; nothing
    // changes.
    let (status, body) = settle(
        &server,
        "q",
        "ack",
        json!({"receipts": [got[0]["receipt"]]}),
    )
    .await;
    assert_error(status, &body, 409, "stale_receipt");
    let (status, body) = settle(&server, "q", "ack", json!({"receipts": ["junk"]})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = settle(
        &server,
        "dlq",
        "ack",
        json!({"receipts": [got[3]["receipt"]]}),
    )
    .await;
    assert_error(status, &body, 400, "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("`q`"),
        "{body}"
    );
    let (status, body) = settle(&server, "q", "ack", json!({"receipts": []})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = settle(&server, "missing", "ack", json!({"receipts": ["x"]})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = receive_status(&server, "q", json!({"wait_ms": 20_001})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = receive_status(&server, "q", json!({"max_messages": 0})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = receive_status(&server, "q", json!({"bogus": 1})).await;
    assert_error(status, &body, 400, "bad_request");

    // A batch with a stale and a live receipt applies the live one and names the stale one.
    let (status, answer) = settle(
        &server,
        "q",
        "ack",
        json!({"receipts": [got[0]["receipt"], got[3]["receipt"]]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["succeeded"], 1);
    assert_eq!(answer["failed"][0]["receipt"], got[0]["receipt"]);
    assert_eq!(answer["failed"][0]["code"], "stale_receipt");
    assert_eq!(server.stats("q").await["in_flight"], 0);
}

async fn receive_status(server: &Server, queue: &str, body: Value) -> (u16, Value) {
    server
        .post(&format!("/v1/queues/{queue}/messages/receive"), body)
        .await
}

/// A receipt whose lease expired and whose message was received again changes nothing; the
/// new receipt settles it. Lease expiry counts attempts: past `max_attempts` the message is
/// dead-lettered with the reason.
#[tokio::test]
async fn an_expired_lease_makes_its_receipt_stale_and_counts_an_attempt() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "dlq"})).await;
    server
        .create_queue(json!({"name": "q", "max_attempts": 2, "dead_letter_queue": "dlq"}))
        .await;
    server.post_raw("/v1/queues/q/messages", "slow work").await;

    let first = receive(&server, "q", json!({"visibility_timeout_ms": 200})).await;
    assert_eq!(first.len(), 1);
    // The long poll wakes when the lease expires, not at the end of its wait.
    let started = Instant::now();
    let second = receive(
        &server,
        "q",
        json!({"visibility_timeout_ms": 200, "wait_ms": 10_000}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["attempt"], 2);
    assert_ne!(second[0]["receipt"], first[0]["receipt"]);

    let (status, body) = settle(&server, "q", "ack", json!({"receipts": receipts(&first)})).await;
    assert_error(status, &body, 409, "stale_receipt");
    let (status, body) = settle(
        &server,
        "q",
        "extend",
        json!({"receipts": receipts(&first), "visibility_timeout_ms": 1000}),
    )
    .await;
    assert_error(status, &body, 409, "stale_receipt");
    assert_eq!(server.stats("q").await["in_flight"], 1, "nothing changed");

    // Its last attempt's lease expires too: the next receive dead-letters it.
    let third = receive(&server, "q", json!({"wait_ms": 3_000})).await;
    assert!(third.is_empty(), "{third:?}");
    let dead = receive(&server, "dlq", json!({"wait_ms": 5_000})).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["body"], "slow work");
    let reason = dead[0]["attributes"]["sluice-dead-letter-reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("lease expired"), "{reason}");
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_message_is_enqueued() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let url = server.url("/v1/queues/q/messages/receive");
    let http = server.http.clone();
    let waiting = tokio::spawn(async move {
        let response = http
            .post(url)
            .json(&json!({"wait_ms": 15_000}))
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        (Instant::now(), answer)
    });
    // The receive has looked at the empty queue and is parked before anything is enqueued,
    // so only the enqueue's wake-up can answer it within its 15 s.
    let parked = wait_for(Duration::from_secs(10), || async {
        crate::triggers::metric(&server, "sluice_pull_waiting", "queue=\"q\"").await == 1.0
    })
    .await;
    assert!(parked, "the receive never parked on the empty queue");
    assert!(
        !waiting.is_finished(),
        "answered before anything was enqueued"
    );
    let sent = Instant::now();
    let (status, _) = server.post_raw("/v1/queues/q/messages", "wake up").await;
    assert_eq!(status, 201);
    let (answered, answer) = waiting.await.unwrap();
    assert_eq!(answer["messages"][0]["body"], "wake up", "{answer}");
    let woke_after = answered - sent;
    assert!(
        woke_after < Duration::from_secs(5),
        "woke {woke_after:?} after the enqueue"
    );

    // With nothing to receive, the wait runs out and the answer is empty.
    let started = Instant::now();
    let empty = receive(&server, "q", json!({"wait_ms": 300})).await;
    assert!(empty.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_queue_has_one_kind_of_consumer_at_a_time() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "triggered"})).await;
    server.create_queue(json!({"name": "pulled"})).await;
    server.deploy("f", guest("ok"), "").await;
    server.deploy("g", guest("ok"), "").await;
    server
        .trigger("f", json!({"queue": "triggered", "paused": true}))
        .await;

    let (status, body) = receive_status(&server, "triggered", json!({})).await;
    assert_error(status, &body, 409, "conflict");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("`f`"),
        "{body}"
    );

    server.post_raw("/v1/queues/pulled/messages", "held").await;
    let held = receive(&server, "pulled", json!({})).await;
    assert_eq!(held.len(), 1);
    let response = server
        .http
        .put(server.url("/v1/functions/g/trigger"))
        .json(&json!({"queue": "pulled"}))
        .send()
        .await;
    let (status, body) = crate::support::into_json(response).await;
    assert_error(status, &body, 409, "conflict");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("pull"),
        "{body}"
    );
    let (status, _) = settle(
        &server,
        "pulled",
        "ack",
        json!({"receipts": receipts(&held)}),
    )
    .await;
    assert_eq!(status, 200);
    server
        .trigger("g", json!({"queue": "pulled", "paused": true}))
        .await;
}

#[tokio::test]
async fn consume_tokens_pull_only_their_queue_and_the_cli_receives() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    server.create_queue(json!({"name": "other"})).await;
    let (_, token) = server
        .post(
            "/v1/tokens",
            json!({"name": "worker", "scopes": ["consume:q"]}),
        )
        .await;
    let worker = crate::support::client_with(token["token"].as_str());
    for (path, expected) in [
        ("/v1/queues/q/messages/receive", 200),
        ("/v1/queues/other/messages/receive", 403),
    ] {
        let status = worker
            .post(server.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected, "{path}");
    }
    let status = worker
        .post(server.url("/v1/queues/q/messages"))
        .body("x")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403, "consume does not produce");

    server
        .post_raw("/v1/queues/q/messages", "from the cli")
        .await;
    let out = cli(&server, &["receive", "q", "--wait", "5s", "--ack"]);
    assert!(
        out.contains("from the cli") && out.contains("receipt:"),
        "{out}"
    );
    let stats = server.stats("q").await;
    assert_eq!(
        (stats["visible"].as_u64(), stats["acked_total"].as_u64()),
        (Some(0), Some(1)),
        "{stats}"
    );
}
