//! Authentication and scopes: every route × no token, a wrong token, and each scope.

use serde_json::{Value, json};

use crate::support::{Server, assert_error, client_with, guest};

/// Every route, with what it needs: `A` admin, `D` deploy, `P` produce to queue `q`, `R` read.
fn routes() -> Vec<(&'static str, &'static str, char)> {
    vec![
        ("GET", "/metrics", 'R'),
        ("POST", "/v1/queues", 'A'),
        ("GET", "/v1/queues", 'R'),
        ("GET", "/v1/queues/q", 'R'),
        ("PATCH", "/v1/queues/q", 'A'),
        ("DELETE", "/v1/queues/missing", 'A'),
        ("POST", "/v1/queues/q/messages", 'P'),
        ("POST", "/v1/queues/q/messages/batch", 'P'),
        ("GET", "/v1/queues/q/messages", 'R'),
        ("POST", "/v1/queues/q/purge", 'A'),
        ("POST", "/v1/queues/q/redrive", 'A'),
        ("PUT", "/v1/functions/f", 'D'),
        ("GET", "/v1/functions", 'R'),
        ("GET", "/v1/functions/f", 'R'),
        ("DELETE", "/v1/functions/missing", 'D'),
        ("POST", "/v1/functions/f/rollback", 'D'),
        ("POST", "/v1/functions/f/invoke", 'D'),
        ("PUT", "/v1/functions/f/trigger", 'D'),
        ("DELETE", "/v1/functions/f/trigger", 'D'),
        ("GET", "/v1/functions/f/invocations", 'R'),
        ("POST", "/v1/tokens", 'A'),
        ("GET", "/v1/tokens", 'A'),
        ("DELETE", "/v1/tokens/missing", 'A'),
    ]
}

fn allowed(scope: &str, need: char, method: &str) -> bool {
    match scope {
        "admin" => true,
        "deploy" => need == 'D' || (need == 'R' && method == "GET"),
        "read" => need == 'R',
        "produce" | "produce:q" => need == 'P',
        "produce:other" => false,
        _ => unreachable!(),
    }
}

async fn status(
    client: &reqwest::Client,
    server: &Server,
    method: &str,
    path: &str,
) -> (u16, Value) {
    let request = client.request(method.parse().unwrap(), server.url(path));
    let request = match path {
        "/v1/queues/q/messages" => request.body("x"),
        _ => request.json(&json!({})),
    };
    crate::support::into_json(request.send().await).await
}

#[tokio::test]
async fn every_route_needs_a_token_with_the_right_scope() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    server.deploy("f", guest("ok"), "").await;

    let mut tokens = Vec::new();
    for scope in [
        "admin",
        "deploy",
        "read",
        "produce",
        "produce:q",
        "produce:other",
    ] {
        let (status, created) = server
            .post("/v1/tokens", json!({"name": scope, "scopes": [scope]}))
            .await;
        assert_eq!(status, 201, "{created}");
        tokens.push((scope, created["token"].as_str().unwrap().to_owned()));
    }

    let anonymous = client_with(None);
    let wrong = client_with(Some("sluice_000000000000_0000"));
    let mut checked = 0;
    for (method, path, need) in routes() {
        let (code, body) = status(&anonymous, &server, method, path).await;
        assert_error(code, &body, 401, "unauthorized");
        let (code, body) = status(&wrong, &server, method, path).await;
        assert_error(code, &body, 401, "unauthorized");
        for (scope, token) in &tokens {
            let (code, body) = status(&client_with(Some(token)), &server, method, path).await;
            if allowed(scope, need, method) {
                assert!(
                    code != 401 && code != 403,
                    "{scope} {method} {path}: {code} {body}"
                );
            } else {
                assert_error(code, &body, 403, "forbidden");
            }
            checked += 1;
        }
    }
    println!(
        "auth matrix: {} routes × 8 credentials, {checked} scoped checks",
        routes().len()
    );

    // Liveness and readiness need nothing.
    let (code, _) = status(&anonymous, &server, "GET", "/healthz").await;
    assert_eq!(code, 200);
    let (code, _) = status(&anonymous, &server, "GET", "/readyz").await;
    assert_eq!(code, 200);
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
