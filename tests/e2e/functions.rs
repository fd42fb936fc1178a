//! Functions end to end: upload real components, invoke them, check results, logs and sends;
//! misbehaving guests fail clearly without hurting the host; invalid uploads store nothing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, assert_error, example, guest};

#[tokio::test]
async fn examples_upload_and_invoke_with_logs_and_sends() {
    let (server, _dir) = Server::start().await;
    let record = server.deploy("log", example("log"), "").await;
    assert_eq!(record["active_version"], 1);

    let (status, result) = server
        .post(
            "/v1/functions/log/invoke",
            json!({"messages": [{"body": "hello there", "attributes": {"k": "v"}}, {"body": "second"}]}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["outcome"], "ok", "{result}");
    assert_eq!(result["batch_size"], 2);
    let logs = result["logs"].as_str().unwrap();
    assert!(
        logs.contains("hello there") && logs.contains("second"),
        "logs captured: {logs}"
    );

    for queue in ["orders-books", "orders-music", "orders-other"] {
        server.create_queue(json!({ "name": queue })).await;
    }
    server.deploy("router", example("router"), "").await;
    let (status, result) = server
        .post(
            "/v1/functions/router/invoke",
            json!({"messages": [
                {"body": json!({"id": "1", "kind": "book", "amount": 3.5}).to_string()},
                {"body": json!({"id": "2", "kind": "music", "amount": 9.0}).to_string()},
                {"body": "not json"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["outcome"], "ok", "{result}");
    let sends = result["sends"].as_array().unwrap();
    let targets: Vec<_> = sends.iter().map(|s| s["queue"].as_str().unwrap()).collect();
    assert_eq!(targets, ["orders-books", "orders-music"], "{result}");
    let failures = result["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{result}");
    assert_eq!(failures[0]["id"], "invoke-3");
    assert_eq!(failures[0]["disposition"], "dead_letter");
    // A dry run commits nothing.
    assert_eq!(server.stats("orders-books").await["visible"], 0);

    let (_, invocations) = server.get("/v1/functions/router/invocations").await;
    assert_eq!(invocations["invocations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn versions_list_show_rollback_and_delete() {
    let (server, _dir) = Server::start().await;
    server.deploy("f", guest("ok"), "").await;
    let second = server
        .deploy("f", example("log"), "timeout_ms=5000&memory_mb=32&env=A=1")
        .await;
    assert_eq!(second["active_version"], 2);
    assert_eq!(second["versions"].as_array().unwrap().len(), 2);
    assert_eq!(second["versions"][1]["config"]["env"]["A"], "1");

    let (_, list) = server.get("/v1/functions").await;
    assert_eq!(list["functions"].as_array().unwrap().len(), 1);
    let (status, rolled) = server.post("/v1/functions/f/rollback", json!({})).await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["active_version"], 1);
    let (status, body) = server
        .post("/v1/functions/f/rollback", json!({"version": 9}))
        .await;
    assert_error(status, &body, 404, "not_found");

    let (status, _) = server.delete("/v1/functions/f").await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/functions/f").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server
        .post("/v1/functions/f/invoke", json!({"messages": []}))
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn misbehaving_guests_fail_clearly_and_the_host_keeps_serving() {
    let (server, _dir) = Server::start().await;
    let cases = [
        ("trap", "", "trap"),
        ("panic", "", "panic"),
        ("loop", "timeout_ms=500", "timeout"),
        ("oom", "memory_mb=16", "out_of_memory"),
        ("recurse", "", "stack_overflow"),
    ];
    for (name, query, _) in cases {
        server.deploy(name, guest(name), query).await;
    }
    server.deploy("ok", guest("ok"), "").await;
    for (name, _, outcome) in cases {
        let path = format!("/v1/functions/{name}/invoke");
        let invoke = server.post(&path, json!({"messages": [{"body": "x"}]}));
        // While the guest misbehaves, the host answers other requests promptly.
        let probe = async {
            let started = Instant::now();
            let (status, _) = server.get("/healthz").await;
            assert_eq!(status, 200);
            started.elapsed()
        };
        let ((status, result), probe_time) = tokio::join!(invoke, probe);
        assert_eq!(status, 200, "{name}: {result}");
        assert_eq!(result["outcome"], outcome, "{name}: {result}");
        assert!(
            result["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {result}"
        );
        assert!(
            probe_time < Duration::from_secs(2),
            "{name}: host stalled for {probe_time:?}"
        );

        let (status, ok) = server
            .post(
                "/v1/functions/ok/invoke",
                json!({"messages": [{"body": "x"}]}),
            )
            .await;
        assert_eq!(
            (status, ok["outcome"].as_str()),
            (200, Some("ok")),
            "after {name}: {ok}"
        );
    }
}

#[tokio::test]
async fn the_sandbox_grants_nothing_but_configured_env() {
    let (server, _dir) = Server::start().await;
    server
        .deploy("sandbox", guest("sandbox"), "env=GRANTED=yes")
        .await;
    let (status, result) = server
        .post(
            "/v1/functions/sandbox/invoke",
            json!({"messages": [{"body": "x"}]}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["outcome"], "ok", "every probe denied: {result}");
    let logs = result["logs"].as_str().unwrap();
    for probe in [
        "read /etc/passwd",
        "env HOME",
        "env PATH",
        "tcp connect",
        "udp bind",
        "dns lookup",
    ] {
        assert!(
            logs.contains(&format!("denied: {probe}")),
            "`{probe}` denied: {logs}"
        );
    }
    assert!(!logs.contains("ALLOWED"), "{logs}");
    let env: Vec<_> = logs.lines().filter(|l| l.starts_with("env: ")).collect();
    assert_eq!(
        env,
        ["env: GRANTED=yes"],
        "only the configured env is visible"
    );
}

#[tokio::test]
async fn invalid_uploads_are_refused_with_a_reason_and_store_nothing() {
    let (server, _dir) = Server::start().await;
    let core_module = wat::parse_str("(module (func (export \"handle\")))").unwrap();
    let no_export = wat::parse_str("(component)").unwrap();
    let foreign_import = wat::parse_str(
        r#"(component
             (import "acme:db/query@1.0.0" (instance (export "run" (func))))
             (core module $m (func (export "f")))
             (core instance $i (instantiate $m))
             (func (export "handle") (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "garbage",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly",
        ),
        ("core", core_module, "wasm32-wasip2"),
        ("no-export", no_export, "handle"),
        ("foreign-import", foreign_import, "acme:db/query@1.0.0"),
    ];
    for (name, bytes, expected) in cases {
        let (status, body) = server
            .put_wasm(&format!("/v1/functions/{name}"), bytes)
            .await;
        assert_error(status, &body, 422, "invalid_component");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{name}: `{message}` should mention `{expected}`"
        );
        let (status, _) = server.get(&format!("/v1/functions/{name}")).await;
        assert_eq!(status, 404, "{name}: nothing stored");
    }
    let response = server
        .http
        .put(server.url("/v1/functions/f"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await;
    let (status, body) = crate::support::into_json(response).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, body) = server
        .put_wasm("/v1/functions/bad%20name", guest("ok"))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server
        .put_wasm("/v1/functions/f?memory_mb=0", guest("ok"))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (_, list) = server.get("/v1/functions").await;
    assert_eq!(list["functions"].as_array().unwrap().len(), 0);
}
