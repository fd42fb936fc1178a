//! Queue management over HTTP: create, list, show, change, delete, purge, and every kind of bad
//! input a client can send.

use serde_json::json;

use crate::support::{Server, assert_error};

#[tokio::test]
async fn queue_lifecycle() {
    let (server, _dir) = Server::start().await;
    let created = server
        .create_queue(json!({"name": "orders", "visibility_timeout_ms": 5000, "max_attempts": 3}))
        .await;
    assert_eq!(created["name"], "orders");
    assert_eq!(created["settings"]["visibility_timeout_ms"], 5000);
    assert_eq!(created["settings"]["max_attempts"], 3);
    assert_eq!(created["stats"]["visible"], 0);

    let (status, list) = server.get("/v1/queues").await;
    assert_eq!(status, 200);
    assert_eq!(list["queues"].as_array().unwrap().len(), 1);

    let (status, changed) = server
        .patch(
            "/v1/queues/orders",
            json!({"max_attempts": 7, "backoff": {"initial_ms": 50}}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["settings"]["max_attempts"], 7);
    assert_eq!(changed["settings"]["backoff"]["initial_ms"], 50);
    assert_eq!(
        changed["settings"]["visibility_timeout_ms"], 5000,
        "unpatched settings kept"
    );

    let (status, _) = server.post_raw("/v1/queues/orders/messages", "hello").await;
    assert_eq!(status, 201);
    let (status, purged) = server.post("/v1/queues/orders/purge", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(purged["purged"], 1);

    let (status, _) = server.delete("/v1/queues/orders").await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/queues/orders").await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn dead_letter_queue_cannot_be_deleted_from_under_its_source() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "orders-dlq"})).await;
    server
        .create_queue(json!({"name": "orders", "dead_letter_queue": "orders-dlq"}))
        .await;
    let (status, body) = server.delete("/v1/queues/orders-dlq").await;
    assert_error(status, &body, 409, "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orders"),
        "{body}"
    );

    let (status, body) = server
        .post(
            "/v1/queues",
            json!({"name": "x", "dead_letter_queue": "missing"}),
        )
        .await;
    assert!(status == 400 || status == 404, "{status} {body}");
}

#[tokio::test]
async fn bad_queue_requests_get_clear_errors() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;

    let (status, body) = server.post("/v1/queues", json!({"name": "q"})).await;
    assert_error(status, &body, 409, "conflict");

    for name in ["", "has space", "slash/y", "dot.ted", &"x".repeat(81)] {
        let (status, body) = server.post("/v1/queues", json!({ "name": name })).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = server.post("/v1/queues", json!({"name": "bad name"})).await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("A-Z"),
        "{status} {body}"
    );

    let (status, body) = server.post_raw("/v1/queues", "{not json").await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.post("/v1/queues", json!({"name": 12})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.post("/v1/queues", json!({})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .post("/v1/queues", json!({"name": "a", "max_attempts": "three"}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .post(
            "/v1/queues",
            json!({"name": "a", "visibilty_timeout_ms": 10}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("visibilty_timeout_ms"),
        "{body}"
    );
    let (status, body) = server
        .post("/v1/queues", json!({"name": "a", "max_attempts": 0}))
        .await;
    assert_error(status, &body, 400, "bad_request");

    let (status, body) = server
        .patch("/v1/queues/nope", json!({"max_attempts": 2}))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.patch("/v1/queues/q", json!([1, 2])).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.delete("/v1/queues/nope").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.post("/v1/queues/nope/purge", json!({})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.get("/v1/nothing-here").await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn dead_letter_cycles_are_refused() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "a"})).await;
    server
        .create_queue(json!({"name": "b", "dead_letter_queue": "a"}))
        .await;
    let (status, body) = server
        .patch("/v1/queues/a", json!({"dead_letter_queue": "b"}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("a → b → a"), "{message}");
    let (_, a) = server.get("/v1/queues/a").await;
    assert!(a["settings"]["dead_letter_queue"].is_null(), "{a}");
}

#[tokio::test]
async fn producers_cannot_set_reserved_attributes() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("sluice-attr-sluice-source-queue", "elsewhere")
        .body("x")
        .send()
        .await;
    let (status, body) = crate::support::into_json(response).await;
    assert_error(status, &body, 400, "bad_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("sluice-source-queue") && message.contains("reserved"),
        "{message}"
    );

    let (status, body) = server
        .post(
            "/v1/queues/q/messages/batch",
            json!({"messages": [{"body": "x", "attributes": {"Sluice-Attempts": "1"}}]}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    assert_eq!(server.stats("q").await["enqueued_total"], 0);

    // Other names are the producer's, `sluice` inside them included.
    let (status, body) = server
        .post(
            "/v1/queues/q/messages/batch",
            json!({"messages": [{"body": "x", "attributes": {"my-sluice-tag": "1"}}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn deleted_queues_leave_metrics() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "doomed"})).await;
    server.create_queue(json!({"name": "kept"})).await;
    for queue in ["doomed", "kept"] {
        let (status, _) = server
            .post_raw(&format!("/v1/queues/{queue}/messages"), "x")
            .await;
        assert_eq!(status, 201);
    }
    let scrape = || async {
        server
            .http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    assert!(before.contains("queue=\"doomed\""), "{before}");
    server.post("/v1/queues/doomed/purge", json!({})).await;
    let (status, _) = server.delete("/v1/queues/doomed").await;
    assert_eq!(status, 204);
    let after = scrape().await;
    assert!(!after.contains("queue=\"doomed\""), "{after}");
    assert!(
        after.contains("sluice_enqueued_total{queue=\"kept\"} 1"),
        "{after}"
    );
}

#[tokio::test]
async fn single_messages_are_deleted_and_chosen_ones_redriven_by_id() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let (_, sent) = server.post_raw("/v1/queues/q/messages", "doomed").await;
    let id = sent["id"].as_str().unwrap().to_owned();
    let (status, body) = server.delete(&format!("/v1/queues/q/messages/{id}")).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(server.stats("q").await["visible"], 0);
    let (status, body) = server.delete(&format!("/v1/queues/q/messages/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    // Ids are opaque: one this store never gave out names no message.
    let (status, body) = server.delete("/v1/queues/q/messages/abc").await;
    assert_error(status, &body, 404, "not_found");

    let (status, body) = server
        .post("/v1/queues/q/redrive", json!({"ids": ["1"], "limit": 1}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let many: Vec<String> = (1..=1001).map(|i| i.to_string()).collect();
    let (status, body) = server
        .post("/v1/queues/q/redrive", json!({ "ids": many }))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .post("/v1/queues/q/redrive", json!({"ids": ["999"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["moved"], 0);
}

#[tokio::test]
async fn many_queues_series_come_in_one_request() {
    let (server, _dir) = Server::start_with(&["--series-interval", "100ms"]).await;
    for queue in ["a", "b", "c"] {
        server.create_queue(json!({"name": queue})).await;
    }
    for _ in 0..3 {
        let (status, _) = server.post_raw("/v1/queues/a/messages", "x").await;
        assert_eq!(status, 201);
    }
    let (status, _) = server.post_raw("/v1/queues/b/messages", "x").await;
    assert_eq!(status, 201);

    // The queues asked for, by name; a name that is no queue is left out.
    let (status, body) = server.get("/v1/series?queues=a,b,ghost").await;
    assert_eq!(status, 200, "{body}");
    let queues = body["queues"].as_object().unwrap();
    assert_eq!(queues.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(body["interval_ms"], 100);
    let live = |name: &str| {
        body["queues"][name]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone()
    };
    assert_eq!(live("a")["visible"], 3);
    assert_eq!(live("b")["visible"], 1);

    // Without a list, every queue; `last=1` is the live sample alone.
    let (status, body) = server.get("/v1/series?last=1").await;
    assert_eq!(status, 200, "{body}");
    let queues = body["queues"].as_object().unwrap();
    assert_eq!(queues.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    for samples in queues.values() {
        assert_eq!(samples.as_array().unwrap().len(), 1, "{body}");
    }

    for bad in ["/v1/series?limit=5", "/v1/series?last=0"] {
        let (status, body) = server.get(bad).await;
        assert_error(status, &body, 400, "bad_request");
    }
}
