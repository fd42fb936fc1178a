//! Enqueue (single and batch), deduplication, delay and peek over HTTP, with bad input of each
//! kind.

use base64::Engine as _;
use serde_json::json;

use crate::support::{Server, assert_error};

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
