//! Request-reply through the real binary: a producer waits on `Sluice-Reply-Timeout-Ms` and
//! gets the reply a consumer (a pull consumer, or a handler component through its outbox)
//! commits with the ack; a wait that runs out answers 504 with the message id while the
//! message stays queued; a reply is fetched later by id; waits and replies meet across two
//! hosts on PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_test_support::testdb::TestDatabase;

use crate::support::{DataDir, Server, assert_error, cli, example, into_json, wait_for};

/// Starts a single enqueue that waits up to `timeout_ms` for its reply.
fn ask(
    server: &Server,
    queue: &str,
    body: &str,
    timeout_ms: u64,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = server
        .http
        .post(server.url(&format!("/v1/queues/{queue}/messages")))
        .header("sluice-reply-timeout-ms", timeout_ms.to_string())
        .body(body.to_owned());
    tokio::spawn(async move { into_json(request.send().await).await })
}

/// Receives one message of `queue` as a pull consumer, waiting for it.
async fn receive_one(server: &Server, queue: &str) -> Value {
    let (status, answer) = server
        .post(
            &format!("/v1/queues/{queue}/messages/receive"),
            json!({"max_messages": 1, "wait_ms": 10_000}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["messages"][0].clone()
}

async fn ack_with_reply(server: &Server, queue: &str, receipt: &Value, reply: Value) -> Value {
    let mut reply = reply;
    reply["receipt"] = receipt.clone();
    let (status, answer) = server
        .post(
            &format!("/v1/queues/{queue}/messages/ack"),
            json!({"receipts": [receipt], "replies": [reply]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn a_producer_gets_the_reply_a_pull_consumer_acks_with() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "quotes"})).await;
    let waiting = ask(&server, "quotes", "how much?", 30_000);
    let message = receive_one(&server, "quotes").await;
    assert_eq!(message["body"], "how much?");
    let answered = Instant::now();
    ack_with_reply(
        &server,
        "quotes",
        &message["receipt"],
        json!({"body": "42", "attributes": {"currency": "EUR"}}),
    )
    .await;
    let (status, reply) = waiting.await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert!(
        answered.elapsed() < Duration::from_secs(5),
        "woken by the commit, not by its deadline"
    );
    assert_eq!(reply["message_id"], message["id"]);
    assert_eq!(
        (reply["queue"].as_str(), reply["body"].as_str()),
        (Some("quotes"), Some("42"))
    );
    assert_eq!(reply["attributes"], json!({"currency": "EUR"}));

    // The same reply, later, by id; and through the CLI.
    let id = message["id"].as_str().unwrap();
    let (status, again) = server.get(&format!("/v1/replies/{id}")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, reply);
    assert_eq!(cli(&server, &["reply", id]).trim(), "42");
    let (status, stats) = server.get("/v1/queues/quotes").await;
    assert_eq!(status, 200);
    assert_eq!(stats["stats"]["acked_total"], 1, "{stats}");
}

#[tokio::test]
async fn a_wait_that_runs_out_answers_504_and_the_message_stays_queued() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "slow"})).await;
    let started = Instant::now();
    let (status, answer) = ask(&server, "slow", "later", 300).await.unwrap();
    let waited = started.elapsed();
    assert_error(status, &answer, 504, "reply_timeout");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
    let id = answer["error"]["message_id"]
        .as_str()
        .expect("the message id")
        .to_owned();
    let (_, peeked) = server.get("/v1/queues/slow/messages").await;
    assert_eq!(
        peeked["messages"][0]["id"],
        id.as_str(),
        "still queued: {peeked}"
    );

    let (status, none) = server.get(&format!("/v1/replies/{id}")).await;
    assert_error(status, &none, 404, "not_found");
    let message = receive_one(&server, "slow").await;
    ack_with_reply(
        &server,
        "slow",
        &message["receipt"],
        json!({"body_base64": "//4="}),
    )
    .await;
    let (status, reply) = server.get(&format!("/v1/replies/{id}")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["body"].clone(), reply["body_base64"].as_str()),
        (Value::Null, Some("//4="))
    );
}

#[tokio::test]
async fn bad_reply_requests_are_refused_and_change_nothing() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    for bad in ["0", "60001", "soon", "-5"] {
        let (status, answer) = into_json(
            server
                .http
                .post(server.url("/v1/queues/q/messages"))
                .header("sluice-reply-timeout-ms", bad)
                .body("x")
                .send()
                .await,
        )
        .await;
        assert_error(status, &answer, 400, "bad_request");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Sluice-Reply-Timeout-Ms"),
            "{answer}"
        );
    }
    let (_, stats) = server.get("/v1/queues/q").await;
    assert_eq!(stats["stats"]["visible"], 0, "nothing enqueued: {stats}");

    // A reply must name one of the receipts acked, once.
    server.post_raw("/v1/queues/q/messages", "m").await;
    let message = receive_one(&server, "q").await;
    let receipt = &message["receipt"];
    for replies in [
        json!([{"receipt": "someone-else", "body": "x"}]),
        json!([{"receipt": receipt, "body": "x"}, {"receipt": receipt, "body": "y"}]),
        json!([{"receipt": receipt, "body": "x", "body_base64": "eA=="}]),
        // Attribute names of Sluice's own are refused here as on every enqueue.
        json!([{"receipt": receipt, "body": "x", "attributes": {"Sluice-Attempts": "1"}}]),
    ] {
        let (status, answer) = server
            .post(
                "/v1/queues/q/messages/ack",
                json!({"receipts": [receipt], "replies": replies}),
            )
            .await;
        assert_error(status, &answer, 400, "bad_request");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("replies["),
            "names the reply: {answer}"
        );
    }
    let (_, stats) = server.get("/v1/queues/q").await;
    assert_eq!(stats["stats"]["in_flight"], 1, "not acked: {stats}");
}

/// A producer waiting on one host gets the reply committed through another (LISTEN/NOTIFY).
#[tokio::test]
async fn a_wait_on_one_host_wakes_on_a_reply_through_another() {
    let db = TestDatabase::create().await;
    let (dir_a, dir_b) = (DataDir::new(), DataDir::new());
    let a = Server::start_on_postgres(dir_a.path(), &db.url).await;
    let b = Server::start_on_postgres(dir_b.path(), &db.url).await;
    a.create_queue(json!({"name": "work"})).await;
    let waiting = ask(&a, "work", "ping", 30_000);
    let message = receive_one(&b, "work").await;
    let answered = Instant::now();
    ack_with_reply(&b, "work", &message["receipt"], json!({"body": "pong"})).await;
    let (status, reply) = waiting.await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["body"], "pong");
    assert!(
        answered.elapsed() < Duration::from_secs(5),
        "woken by NOTIFY"
    );
    let id = message["id"].as_str().unwrap();
    let (status, again) = a.get(&format!("/v1/replies/{id}")).await;
    assert_eq!((status, again["body"].as_str()), (200, Some("pong")));
}

/// A handler component built with the SDK (`examples/reply`) answers through its outbox: the
/// waiting producer gets the quote; a request the handler dead-letters gets no reply (504) and
/// its reason is in the dead-letter queue.
#[tokio::test]
async fn a_handler_replies_through_its_outbox_and_a_dead_letter_gets_none() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "quotes-dlq"})).await;
    server
        .create_queue(json!({"name": "quotes", "dead_letter_queue": "quotes-dlq"}))
        .await;
    server.deploy("quote", example("reply"), "").await;
    server
        .trigger("quote", json!({"queue": "quotes", "batch_size": 10}))
        .await;

    let (status, reply) = ask(&server, "quotes", r#"{"sku": "A-1", "qty": 3}"#, 30_000)
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    let quote: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(quote["total_cents"], 750, "{quote}");
    assert_eq!(reply["attributes"]["currency"], "EUR");

    // Several waiting at once, each gets the answer to its own request.
    let asks: Vec<_> = (1..=20)
        .map(|qty| {
            let body = format!(r#"{{"sku": "C-3", "qty": {qty}}}"#);
            (qty, ask(&server, "quotes", &body, 30_000))
        })
        .collect();
    for (qty, waiting) in asks {
        let (status, reply) = waiting.await.unwrap();
        assert_eq!(status, 200, "{reply}");
        let quote: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
        assert_eq!(quote["total_cents"], 99 * qty, "{quote}");
    }

    let (status, answer) = ask(&server, "quotes", r#"{"sku": "Z-9", "qty": 1}"#, 2_000)
        .await
        .unwrap();
    assert_error(status, &answer, 504, "reply_timeout");
    let id = answer["error"]["message_id"].as_str().unwrap().to_owned();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            server.stats("quotes-dlq").await["visible"] == 1
        })
        .await,
        "dead-lettered"
    );
    let dead = crate::durability::all_messages(&server, "quotes-dlq").await;
    assert!(
        dead[0]["attributes"]["sluice-dead-letter-reason"]
            .as_str()
            .unwrap()
            .contains("Z-9"),
        "{dead:?}"
    );
    let (status, none) = server.get(&format!("/v1/replies/{id}")).await;
    assert_error(status, &none, 404, "not_found");
}
