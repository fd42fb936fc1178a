//! Authentication and scopes: every route × every method × no token, a wrong token, and each
//! scope, against the table in SECURITY.md.

use serde_json::{Value, json};

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{Server, assert_error, client_with, guest, repo};

/// The scopes SECURITY.md's "Scopes by route" table gives: (method, OpenAPI path) → scope.
fn documented_scopes() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(repo().join("SECURITY.md")).expect("read SECURITY.md");
    let section = text
        .split("## Scopes by route")
        .nth(1)
        .expect("SECURITY.md has a `## Scopes by route` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut scopes = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if let [method, path, scope] = cells.as_slice()
            && path.starts_with('/')
        {
            scopes.insert(
                ((*method).to_owned(), (*path).to_owned()),
                (*scope).to_owned(),
            );
        }
    }
    assert!(
        scopes.len() > 20,
        "the scopes table looks empty: {scopes:?}"
    );
    scopes
}

/// The scope SECURITY.md asks of a method a route does not serve.
fn unserved_scope(path: &str) -> &'static str {
    if ["/healthz", "/readyz", "/openapi.json"].contains(&path) {
        "none"
    } else if path.starts_with("/v1/functions") || path.starts_with("/v1/kv") {
        "deploy"
    } else {
        "admin"
    }
}

/// Whether a token with `scope` may do what needs `need` on queue `q`.
fn grants(scope: &str, need: &str) -> bool {
    match need {
        "none" | "token" => true,
        "admin" => scope == "admin",
        "deploy" => ["admin", "deploy"].contains(&scope),
        "read" => ["admin", "deploy", "read"].contains(&scope),
        "produce" => ["admin", "produce", "produce:q"].contains(&scope),
        // A reply to a message of queue `q`.
        "read or produce" => ["admin", "deploy", "read", "produce", "produce:q"].contains(&scope),
        "consume" => ["admin", "consume", "consume:q"].contains(&scope),
        other => panic!("SECURITY.md names an unknown scope `{other}`"),
    }
}

const SCOPES: [&str; 9] = [
    "admin",
    "deploy",
    "read",
    "produce",
    "produce:q",
    "produce:other",
    "consume",
    "consume:q",
    "consume:other",
];

/// Every method a client can spell, including ones no route serves and a lowercase `get`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "get", "FOO",
];

/// A concrete path for an OpenAPI path: queue `q`, function `f` and key `k` of bucket `b` exist;
/// deletions aim at names that do not, so the walk leaves the server as it found it.
fn concrete(method: &str, path: &str, reply_to: &str) -> String {
    let deleting = method == "DELETE" && !path.ends_with("/trigger");
    // A stream of a function that exists would never end; one that does not is a quick 404.
    let streaming = path.ends_with("/stream");
    let (queue, name) = match (deleting, streaming) {
        (true, _) => ("missing", "missing"),
        (false, true) => ("q", "missing"),
        (false, false) => ("q", "f"),
    };
    let (bucket, key) = if deleting {
        ("missing", "missing")
    } else {
        ("b", "k")
    };
    path.replace("{bucket}", bucket)
        .replace("{key}", key)
        .replace("{queue}", queue)
        .replace("{topic}", queue)
        .replace("{name}", name)
        .replace("{id}", "missing")
        .replace("{bucket}", name)
        .replace("{key}", "k")
        .replace("{message_id}", reply_to)
}

async fn status(
    client: &reqwest::Client,
    server: &Server,
    method: &str,
    path: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let request = client.request(method, server.url(path));
    let request = if path.ends_with("/messages") {
        request.body("x")
    } else {
        request.json(&json!({}))
    };
    crate::support::into_json(request.send().await).await
}

/// Every route of the OpenAPI document × every method × no token, a wrong token and each
/// scope, checked against the table in SECURITY.md: 401 without a valid token, 403 without the
/// scope, and otherwise an answer that is not an authorization failure (2xx for reads).
#[tokio::test]
async fn every_route_method_and_scope_matches_security_md() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    server.deploy("f", guest("ok"), "").await;
    let (code, body) = server
        .put_json(
            "/v1/schedules/f",
            json!({"cron": "0 0 1 1 *", "queue": "q", "body": "new year"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // A bucket `f` holding key `k`.
    let (code, body) = server.put_json("/v1/kv/f", json!({})).await;
    assert!(code < 300, "{code} {body}");
    let response = server
        .http
        .put(server.url("/v1/kv/f/keys/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    // A topic named like the queue: `produce:q` covers both.
    let (code, body) = server.post("/v1/topics", json!({"name": "q"})).await;
    assert_eq!(code, 201, "{body}");
    // A reply to a message of `q`, given by a pull consumer with its ack.
    let (code, sent) = server.post_raw("/v1/queues/q/messages", "ask").await;
    assert_eq!(code, 201, "{sent}");
    let (code, received) = server
        .post("/v1/queues/q/messages/receive", json!({"max_messages": 1}))
        .await;
    assert_eq!(code, 200, "{received}");
    let receipt = received["messages"][0]["receipt"].clone();
    let (code, acked) = server
        .post(
            "/v1/queues/q/messages/ack",
            json!({"receipts": [receipt], "replies": [{"receipt": receipt, "body": "answer"}]}),
        )
        .await;
    assert_eq!(code, 200, "{acked}");
    let reply_to = sent["id"].as_str().unwrap().to_owned();
    let (code, body) = server.put_json("/v1/kv/b", json!({})).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = server.put_json("/v1/kv/b/keys/k", json!("v")).await;
    assert_eq!(code, 204, "{body}");
    let table = documented_scopes();

    let (_, doc) = server.get("/openapi.json").await;
    let mut served = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                let key = (method.to_uppercase(), path.clone());
                let scope = table
                    .get(&key)
                    .unwrap_or_else(|| panic!("SECURITY.md does not say what {key:?} needs"));
                served.insert(key, scope.clone());
            }
        }
    }
    for key in table.keys() {
        assert!(
            served.contains_key(key),
            "SECURITY.md lists {key:?}, which /openapi.json does not"
        );
    }
    let paths: BTreeSet<String> = served.keys().map(|(_, path)| path.clone()).collect();

    let mut tokens = Vec::new();
    for scope in SCOPES {
        let (code, created) = server
            .post("/v1/tokens", json!({"name": scope, "scopes": [scope]}))
            .await;
        assert_eq!(code, 201, "{created}");
        tokens.push((scope, client_with(created["token"].as_str())));
    }
    let anonymous = client_with(None);
    let wrong = client_with(Some("sluice_000000000000_0000"));

    let mut checked = 0;
    for path in &paths {
        for method in METHODS {
            let as_get = if method == "HEAD" { "GET" } else { method };
            let documented = served.get(&(as_get.to_owned(), path.clone()));
            let need = documented.map_or(unserved_scope(path), String::as_str);
            let url = concrete(method, path, &reply_to);
            let what = format!("{method} {url} (needs {need})");
            let has_body = method != "HEAD";
            for (who, client) in [("no token", &anonymous), ("a wrong token", &wrong)] {
                let (code, body) = status(client, &server, method, &url).await;
                if need == "none" {
                    assert!(
                        code != 401 && code != 403,
                        "{what} with {who}: {code} {body}"
                    );
                } else if has_body {
                    assert_error(code, &body, 401, "unauthorized");
                } else {
                    assert_eq!(code, 401, "{what} with {who}");
                }
                checked += 1;
            }
            for (scope, client) in &tokens {
                let (code, body) = status(client, &server, method, &url).await;
                let context = format!("{what} with {scope}: {code} {body}");
                if !grants(scope, need) {
                    if has_body {
                        assert_error(code, &body, 403, "forbidden");
                    }
                    assert_eq!(code, 403, "{context}");
                } else if documented.is_some() && as_get == "GET" && !url.ends_with("/stream") {
                    assert!((200..300).contains(&code), "{context}");
                } else {
                    assert!(code != 401 && code != 403 && code < 500, "{context}");
                }
                checked += 1;
            }
        }
    }
    println!(
        "auth matrix: {} routes × {} methods × {} credentials = {checked} checks",
        paths.len(),
        METHODS.len(),
        SCOPES.len() + 2
    );

    // Liveness and readiness need nothing.
    let (code, _) = status(&anonymous, &server, "GET", "/healthz").await;
    assert_eq!(code, 200);
    let (code, _) = status(&anonymous, &server, "GET", "/readyz").await;
    assert_eq!(code, 200);
    // The console's page and assets load without a token; its API calls carry one.
    for path in ["/ui", "/ui/app.js", "/ui/style.css"] {
        let response = anonymous.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_token_can_ask_what_it_may_do() {
    let (server, _dir) = Server::start().await;
    let (_, created) = server
        .post(
            "/v1/tokens",
            json!({"name": "shop", "scopes": ["produce:orders", "read"]}),
        )
        .await;
    let client = client_with(created["token"].as_str());
    let (code, me) = status(&client, &server, "GET", "/v1/tokens/self").await;
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["id"], created["id"]);
    assert_eq!(me["name"], "shop");
    assert_eq!(me["scopes"], json!(["produce:orders", "read"]));
    assert!(
        me.get("token").is_none() && me.get("hash").is_none(),
        "{me}"
    );
    let (_, admin) = server.get("/v1/tokens/self").await;
    assert_eq!(admin["scopes"], json!(["admin"]));
}

#[tokio::test]
async fn refusals_do_not_reveal_what_exists() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let (_, created) = server
        .post("/v1/tokens", json!({"scopes": ["produce:q"]}))
        .await;
    let producer = client_with(created["token"].as_str());
    let anonymous = client_with(None);
    for path in ["/v1/queues/q/messages", "/v1/queues/secret/messages"] {
        let (code, _) = status(&anonymous, &server, "POST", path).await;
        assert_eq!(code, 401, "{path}");
    }
    let (code, _) = status(&producer, &server, "POST", "/v1/queues/secret/messages").await;
    assert_eq!(code, 403, "a missing queue looks like a forbidden one");
    let (code, _) = status(&anonymous, &server, "GET", "/v1/no-such-route").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn tokens_are_revocable_and_never_listed_with_secrets() {
    let (server, _dir) = Server::start().await;
    let (status_code, created) = server
        .post("/v1/tokens", json!({"name": "ci", "scopes": ["read"]}))
        .await;
    assert_eq!(status_code, 201);
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let reader = client_with(Some(&token));
    assert_eq!(status(&reader, &server, "GET", "/v1/queues").await.0, 200);

    let (_, list) = server.get("/v1/tokens").await;
    let text = list.to_string();
    assert!(text.contains(&id) && !text.contains(&token), "{list}");
    assert!(!text.contains("hash"), "{list}");

    let (code, body) = server.post("/v1/tokens", json!({"scopes": ["root"]})).await;
    assert_error(code, &body, 400, "bad_request");
    let (code, _) = server.delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(code, 204);
    assert_eq!(status(&reader, &server, "GET", "/v1/queues").await.0, 401);
}
