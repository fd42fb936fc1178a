//! The OpenAPI document: served without a token, OpenAPI 3.x, and in step with the router
//! (every route documented, every documented operation served).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Server, client_with, into_json};

/// Every operation the router serves.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/queues"),
    ("get", "/v1/queues"),
    ("get", "/v1/queues/{queue}"),
    ("patch", "/v1/queues/{queue}"),
    ("delete", "/v1/queues/{queue}"),
    ("post", "/v1/queues/{queue}/messages"),
    ("get", "/v1/queues/{queue}/messages"),
    ("get", "/v1/queues/{queue}/dead-letter-reasons"),
    ("post", "/v1/queues/{queue}/messages/batch"),
    ("get", "/v1/schedules"),
    ("get", "/v1/schedules/{name}"),
    ("put", "/v1/schedules/{name}"),
    ("delete", "/v1/schedules/{name}"),
    ("post", "/v1/queues/{queue}/messages/receive"),
    ("post", "/v1/queues/{queue}/messages/ack"),
    ("post", "/v1/queues/{queue}/messages/retry"),
    ("post", "/v1/queues/{queue}/messages/dead-letter"),
    ("post", "/v1/queues/{queue}/messages/extend"),
    ("delete", "/v1/queues/{queue}/messages/{id}"),
    ("get", "/v1/replies/{message_id}"),
    ("post", "/v1/queues/{queue}/purge"),
    ("post", "/v1/queues/{queue}/redrive"),
    ("get", "/v1/queues/{queue}/series"),
    ("get", "/v1/series"),
    ("get", "/v1/functions"),
    ("put", "/v1/functions/{name}"),
    ("get", "/v1/functions/{name}"),
    ("delete", "/v1/functions/{name}"),
    ("post", "/v1/functions/{name}/rollback"),
    ("post", "/v1/functions/{name}/invoke"),
    ("put", "/v1/functions/{name}/trigger"),
    ("delete", "/v1/functions/{name}/trigger"),
    ("get", "/v1/functions/{name}/invocations"),
    ("get", "/v1/functions/{name}/invocations/stream"),
    ("get", "/v1/functions/{name}/invocations/stats"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("get", "/v1/tokens/self"),
    ("delete", "/v1/tokens/{id}"),
    ("get", "/v1/topics"),
    ("post", "/v1/topics"),
    ("get", "/v1/topics/{topic}"),
    ("delete", "/v1/topics/{topic}"),
    ("put", "/v1/topics/{topic}/subscriptions/{queue}"),
    ("delete", "/v1/topics/{topic}/subscriptions/{queue}"),
    ("post", "/v1/topics/{topic}/messages"),
    ("post", "/v1/topics/{topic}/messages/batch"),
    ("get", "/v1/kv"),
    ("put", "/v1/kv/{bucket}"),
    ("get", "/v1/kv/{bucket}"),
    ("delete", "/v1/kv/{bucket}"),
    ("get", "/v1/kv/{bucket}/keys"),
    ("get", "/v1/kv/{bucket}/keys/{key}"),
    ("put", "/v1/kv/{bucket}/keys/{key}"),
    ("delete", "/v1/kv/{bucket}/keys/{key}"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| ((*method).to_owned(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_is_public_and_lists_every_route() {
    let (server, _dir) = Server::start().await;
    let anonymous = client_with(None);
    let response = anonymous
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = serde_json::from_slice(&response.bytes().await.unwrap()).expect("JSON");

    let version = doc["openapi"].as_str().expect("`openapi` field");
    assert!(version.starts_with("3."), "openapi {version}");

    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented(&doc), expected);

    // Bearer auth everywhere but the three open routes, and the shared error schema.
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for (method, path) in &expected {
        let operation = &doc["paths"][path][method];
        let open = ["/healthz", "/readyz", "/openapi.json"].contains(&path.as_str());
        assert_eq!(
            operation["responses"].get("401").is_some(),
            !open,
            "{method} {path}: 401 documented only where a token is needed"
        );
    }
}

/// Every documented operation reaches a handler: none answers with the router's fallback.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let (server, _dir) = Server::start().await;
    let (_, doc) = into_json(server.http.get(server.url("/openapi.json")).send().await).await;
    for (method, path) in documented(&doc) {
        let concrete = path
            .replace("{queue}", "no-such-queue")
            .replace("{name}", "no-such-function")
            .replace("{id}", "no-such-token");
        let request = server.http.request(
            method.to_uppercase().parse().unwrap(),
            server.url(&concrete),
        );
        let (status, body) = into_json(request.send().await).await;
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.starts_with("no such route"),
            "{method} {path} is documented but not routed: {body}"
        );
    }
}
