//! Enqueue (single and batch), deduplication, delay and peek over HTTP, with bad input of each
//! kind.

use base64::Engine as _;
use serde_json::json;

use sluice_test_support::testdb::TestDatabase;

use crate::support::{DataDir, Server, assert_error};

#[tokio::test]
async fn single_enqueue_takes_the_raw_body_and_header_attributes() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let body: Vec<u8> = vec![0, 159, 146, 150, 255];
    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("content-type", "application/octet-stream")
        .header("Sluice-Attr-Customer", "c-42")
        .header("sluice-attr-kind", "binary")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let answer: serde_json::Value = response.json().await.unwrap();
    let id = answer["id"].as_str().expect("id").to_owned();

    let (status, peeked) = server.get("/v1/queues/q/messages?limit=10").await;
    assert_eq!(status, 200);
    let messages = peeked["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], id);
    assert_eq!(messages[0]["attributes"]["customer"], "c-42");
    assert_eq!(messages[0]["attributes"]["kind"], "binary");
    assert_eq!(messages[0]["body"], serde_json::Value::Null, "not UTF-8");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(messages[0]["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, body);

    let (_, queue) = server.get("/v1/queues/q").await;
    assert_eq!(queue["stats"]["visible"], 1);
    assert_eq!(queue["stats"]["enqueued_total"], 1);
}

#[tokio::test]
async fn delay_and_dedup() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("sluice-delay-ms", "60000")
        .header("sluice-dedup-id", "order-1")
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let first: serde_json::Value = response.json().await.unwrap();
    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("sluice-dedup-id", "order-1")
        .body("second")
        .send()
        .await
        .unwrap();
    let second: serde_json::Value = response.json().await.unwrap();
    assert_eq!(first["id"], second["id"], "dedup returns the original id");
    assert_eq!(second["duplicate"], true);

    let (_, queue) = server.get("/v1/queues/q").await;
    assert_eq!(queue["stats"]["delayed"], 1);
    assert_eq!(queue["stats"]["visible"], 0);
    assert_eq!(queue["stats"]["enqueued_total"], 1);

    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("sluice-delay-ms", "soon")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn batch_enqueue_returns_ids_in_order() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let messages: Vec<_> = (0..1000)
        .map(|i| json!({"body": format!("m{i}"), "attributes": {"n": i.to_string()}}))
        .collect();
    let (status, answer) = server
        .post(
            "/v1/queues/q/messages/batch",
            json!({ "messages": messages }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let ids = answer["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 1000);

    let (status, answer) = server
        .post(
            "/v1/queues/q/messages/batch",
            json!({"messages": [{"body_base64": "AAEC", "delay_ms": 0, "dedup_id": "d"}, {"body": "x", "dedup_id": "d"}]}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["ids"][0], answer["ids"][1],
        "duplicate within one batch"
    );
    assert_eq!(answer["duplicates"], 1);

    let (_, peeked) = server.get("/v1/queues/q/messages?limit=3").await;
    let peeked = peeked["messages"].as_array().unwrap();
    assert_eq!(peeked[0]["body"], "m0");
    assert_eq!(peeked[0]["id"], ids[0]);
    assert_eq!(peeked[2]["attributes"]["n"], "2");
}

#[tokio::test]
async fn bad_message_requests_get_clear_errors_and_store_nothing() {
    let (server, _dir) = Server::start().await;
    server
        .create_queue(json!({"name": "q", "max_message_bytes": 1024}))
        .await;
    let batch = "/v1/queues/q/messages/batch";

    let (status, body) = server.post_raw(batch, "{\"messages\": [").await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.post(batch, json!({"messages": "nope"})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.post(batch, json!({"messages": []})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .post(batch, json!({"messages": [{"body_base64": "!!!"}]}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base64"),
        "{body}"
    );
    let (status, body) = server
        .post(
            batch,
            json!({"messages": [{"body": "a", "attributes": {"n": 1}}]}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .post(batch, json!({"messages": [{"body": "a", "colour": "red"}]}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let too_many: Vec<_> = (0..1001).map(|_| json!({"body": "x"})).collect();
    let (status, body) = server.post(batch, json!({ "messages": too_many })).await;
    assert_error(status, &body, 400, "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1000"),
        "{body}"
    );

    // Over the queue's message size; the whole batch is refused.
    let (status, body) = server
        .post(
            batch,
            json!({"messages": [{"body": "ok"}, {"body": "x".repeat(2000)}]}),
        )
        .await;
    assert_error(status, &body, 413, "payload_too_large");
    // Over the server's request size limit, declared in the head. The server answers before
    // reading the body, so send only the head: a client still writing a body it was refused
    // may see the connection close under it instead of the answer.
    let head = format!(
        "POST /v1/queues/q/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-length: {}\r\n\r\n",
        crate::support::ADMIN_TOKEN,
        17 * 1024 * 1024
    );
    let answer = crate::support::raw(&server, head.as_bytes()).await;
    assert_error(answer.status, &answer.body, 413, "payload_too_large");

    let (status, body) = server.post_raw("/v1/queues/missing/messages", "x").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.get("/v1/queues/q/messages?limit=0").await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.get("/v1/queues/q/messages?limit=many").await;
    assert_error(status, &body, 400, "bad_request");

    let (_, queue) = server.get("/v1/queues/q").await;
    assert_eq!(
        queue["stats"]["enqueued_total"], 0,
        "nothing stored: {queue}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after_and_keeps_what_it_has() {
    let (server, _dir) = Server::start().await;
    server
        .create_queue(json!({"name": "small", "max_depth": 3}))
        .await;
    let (status, _) = server
        .post(
            "/v1/queues/small/messages/batch",
            json!({"messages": [{"body": "1"}, {"body": "2"}]}),
        )
        .await;
    assert_eq!(status, 201);
    let response = server
        .http
        .post(server.url("/v1/queues/small/messages/batch"))
        .json(&json!({"messages": [{"body": "3"}, {"body": "4"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full", "{body}");
    let (status, _) = server.post_raw("/v1/queues/small/messages", "3").await;
    assert_eq!(status, 201, "one more still fits");
    assert_eq!(server.stats("small").await["visible"], 3);
    let (status, body) = server
        .post("/v1/queues", json!({"name": "zero", "max_depth": 0}))
        .await;
    assert_error(status, &body, 400, "bad_request");
}

/// Dead-letters each of `reasons` (one message each, in order) from `q` into `dlq` through pull
/// consumers' receipts.
async fn dead_letter_each(server: &Server, reasons: &[&str]) {
    for (i, reason) in reasons.iter().enumerate() {
        let (status, sent) = server
            .post_raw("/v1/queues/q/messages", format!("m{i}"))
            .await;
        assert_eq!(status, 201, "{sent}");
        let (status, got) = server
            .post("/v1/queues/q/messages/receive", json!({"max_messages": 1}))
            .await;
        assert_eq!(status, 200, "{got}");
        let receipt = got["messages"][0]["receipt"].clone();
        let (status, answer) = server
            .post(
                "/v1/queues/q/messages/dead-letter",
                json!({"receipts": [receipt], "reason": reason}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
}

fn bodies(page: &serde_json::Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

/// A dead-letter queue over HTTP: its reasons counted over the whole queue (not a page), a
/// peek filtered by reason that pages within it, messages with no reason found apart, and bad
/// queries refused with what to do.
async fn dead_letters_are_filtered_and_counted_by_reason(server: &Server) {
    server.create_queue(json!({"name": "dlq"})).await;
    server
        .create_queue(json!({"name": "q", "dead_letter_queue": "dlq"}))
        .await;
    dead_letter_each(
        server,
        &[
            "poison",
            "bad input",
            "poison",
            "poison",
            "bad input",
            "poison",
        ],
    )
    .await;
    server.post_raw("/v1/queues/dlq/messages", "by hand").await;

    let (status, reasons) = server.get("/v1/queues/dlq/dead-letter-reasons").await;
    assert_eq!(status, 200, "{reasons}");
    assert_eq!(
        reasons,
        json!({
            "reasons": [{"reason": "poison", "count": 4}, {"reason": "bad input", "count": 2}],
            "distinct_reasons": 2,
            "without_reason": 1,
        })
    );
    let (_, top) = server
        .get("/v1/queues/dlq/dead-letter-reasons?limit=1")
        .await;
    assert_eq!(top["reasons"], json!([{"reason": "poison", "count": 4}]));
    assert_eq!(
        top["distinct_reasons"], 2,
        "the whole queue's, though capped"
    );

    // Pages of two within one reason: every poison message once, in order, and nothing else.
    let mut seen = Vec::new();
    let mut path = "/v1/queues/dlq/messages?limit=2&reason=poison".to_owned();
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap();
        assert!(
            messages
                .iter()
                .all(|m| m["attributes"]["sluice-dead-letter-reason"] == "poison")
        );
        seen.extend(bodies(&page));
        match messages.last() {
            Some(last) if messages.len() == 2 => {
                path = format!(
                    "/v1/queues/dlq/messages?limit=2&reason=poison&after={}",
                    last["id"].as_str().unwrap()
                );
            }
            _ => break,
        }
    }
    assert_eq!(seen, ["m0", "m2", "m3", "m5"]);
    let (_, spaced) = server
        .get("/v1/queues/dlq/messages?reason=bad%20input")
        .await;
    assert_eq!(bodies(&spaced), ["m1", "m4"]);
    let (_, by_hand) = server.get("/v1/queues/dlq/messages?no_reason=true").await;
    assert_eq!(bodies(&by_hand), ["by hand"]);
    let (_, unknown) = server.get("/v1/queues/dlq/messages?reason=never").await;
    assert_eq!(bodies(&unknown), Vec::<String>::new());

    let (status, body) = server
        .get("/v1/queues/dlq/messages?reason=poison&no_reason=true")
        .await;
    assert_error(status, &body, 400, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not both"),
        "{body}"
    );
    let (status, body) = server
        .get("/v1/queues/dlq/messages?reason=poison&after=nope")
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .get("/v1/queues/dlq/dead-letter-reasons?limit=0")
        .await;
    assert_error(status, &body, 400, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 1000"),
        "{body}"
    );
    let (status, body) = server.get("/v1/queues/nope/dead-letter-reasons").await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn dead_letters_are_filtered_and_counted_by_reason_on_sqlite() {
    let (server, _dir) = Server::start().await;
    dead_letters_are_filtered_and_counted_by_reason(&server).await;
}

#[tokio::test]
async fn dead_letters_are_filtered_and_counted_by_reason_on_postgres() {
    let db = TestDatabase::create().await;
    let dir = DataDir::new();
    let server = Server::start_on_postgres(dir.path(), &db.url).await;
    dead_letters_are_filtered_and_counted_by_reason(&server).await;
}
