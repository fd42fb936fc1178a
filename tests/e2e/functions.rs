//! Functions end to end: upload real components, invoke them, check results, logs and sends;
//! misbehaving guests fail clearly without hurting the host; invalid uploads store nothing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, assert_error, client_with, example, guest, into_json};

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
    assert_eq!(second["versions"][1]["config"]["env_names"], json!(["A"]));

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
        ("loop", "timeout_ms=1000", "timeout"),
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
    // A time limit shorter than the executor can hold to is refused, with the minimum.
    let (status, body) = server
        .put_wasm("/v1/functions/f?timeout_ms=1", guest("ok"))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("timeout_ms must be between 1000 and 900000, got 1"),
        "{message}"
    );
    let (_, list) = server.get("/v1/functions").await;
    assert_eq!(list["functions"].as_array().unwrap().len(), 0);
}

/// A component with `functions` functions of real code (a few milliseconds of compiling per
/// hundred) whose `handle` has the wrong type, so it is refused after compiling; with `import`,
/// it also imports an interface Sluice does not provide.
fn heavy_component(functions: usize, import: Option<&str>) -> Vec<u8> {
    let mut text = String::from("(component\n");
    if let Some(name) = import {
        text.push_str(&format!(
            "(import \"{name}\" (instance (export \"run\" (func))))\n"
        ));
    }
    text.push_str("(core module $m\n");
    for i in 0..functions {
        text.push_str(&format!(
            "(func (param $x i32) (result i32) (local $a i32)
               (loop $l
                 (local.set $a (i32.add (i32.mul (local.get $a) (i32.const {i})) (local.get $x)))
                 (local.set $a (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 7))))
                 (local.set $x (i32.sub (local.get $x) (i32.const 1)))
                 (br_if $l (local.get $x)))
               (local.get $a))\n"
        ));
    }
    text.push_str(
        r#"(func (export "f")))
           (core instance $i (instantiate $m))
           (func (export "handle") (canon lift (core func $i "f"))))"#,
    );
    wat::parse_str(text).unwrap()
}

/// An upload importing what Sluice does not provide is refused from its type information,
/// before it is compiled: the compilation counter does not move, however often it is retried,
/// and the refusal takes a fraction of what compiling the same code takes.
#[tokio::test]
async fn a_foreign_import_is_refused_without_compiling() {
    use crate::triggers::metric;
    let (server, _dir) = Server::start().await;
    let compilations = || metric(&server, "sluice_component_compilations_total", "");
    let functions = 2_000;

    // The known compile: the same code without the foreign import.
    let started = Instant::now();
    let (status, body) = server
        .put_wasm("/v1/functions/heavy", heavy_component(functions, None))
        .await;
    let compiled_in = started.elapsed();
    assert_error(status, &body, 422, "invalid_component");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("matches neither the worlds"), "{message}");
    assert_eq!(compilations().await, 1.0);

    let foreign = heavy_component(functions, Some("acme:db/query@1.0.0"));
    for attempt in 1..=2 {
        let started = Instant::now();
        let (status, body) = server
            .put_wasm("/v1/functions/heavy", foreign.clone())
            .await;
        let refused_in = started.elapsed();
        assert_error(status, &body, 422, "invalid_component");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(
                "the component imports `acme:db/query@1.0.0`, which Sluice does not provide."
            ),
            "{message}"
        );
        println!(
            "{} KB component with {functions} functions: compiled and refused in {compiled_in:?}; \
             with a foreign import refused in {refused_in:?} (attempt {attempt})",
            foreign.len() / 1024
        );
        assert_eq!(
            compilations().await,
            1.0,
            "attempt {attempt} compiled nothing"
        );
        assert!(
            refused_in < compiled_in,
            "refusing took {refused_in:?}, compiling {compiled_in:?}"
        );
    }
}

/// Environment values are secrets: write-only through the API and the CLI, for every scope.
#[tokio::test]
async fn environment_values_are_never_shown_to_any_scope() {
    const SECRET: &str = "supersecret-123";
    let (server, _dir) = Server::start().await;
    let (status, uploaded) = server
        .put_wasm(
            &format!("/v1/functions/f?env=API_KEY={SECRET}&env=REGION=eu"),
            guest("ok"),
        )
        .await;
    assert_eq!(status, 201, "{uploaded}");
    let mut answers = vec![("upload".to_owned(), uploaded.clone())];
    assert_eq!(
        uploaded["versions"][0]["config"]["env_names"],
        json!(["API_KEY", "REGION"]),
        "names are shown: {uploaded}"
    );

    for scope in ["admin", "deploy", "read"] {
        let (_, created) = server.post("/v1/tokens", json!({"scopes": [scope]})).await;
        let client = client_with(created["token"].as_str());
        for path in [
            "/v1/functions",
            "/v1/functions/f",
            "/v1/functions/f/invocations",
        ] {
            let (status, body) = into_json(client.get(server.url(path)).send().await).await;
            assert_eq!(status, 200, "{scope} GET {path}: {body}");
            answers.push((format!("{scope} GET {path}"), body));
        }
    }
    // Re-uploading the same component and config with `if_changed` adds no version...
    let (status, same) = server
        .put_wasm(
            &format!("/v1/functions/f?if_changed=true&env=REGION=eu&env=API_KEY={SECRET}"),
            guest("ok"),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["versions"].as_array().unwrap().len(), 1, "{same}");
    answers.push(("unchanged upload".to_owned(), same));
    // ...but a changed value, which nobody can read back, does.
    let (status, changed) = server
        .put_wasm(
            "/v1/functions/f?if_changed=true&env=REGION=eu&env=API_KEY=rotated",
            guest("ok"),
        )
        .await;
    assert_eq!(status, 201, "{changed}");
    assert_eq!(changed["active_version"], 2, "{changed}");
    let (status, rolled) = server.post("/v1/functions/f/rollback", json!({})).await;
    assert_eq!(status, 200, "{rolled}");
    answers.push(("rollback".to_owned(), rolled));
    answers.push(("openapi".to_owned(), server.get("/openapi.json").await.1));

    for (what, answer) in &answers {
        let text = answer.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("rotated"),
            "{what} shows an environment value: {text}"
        );
    }
    let shown = crate::support::cli(&server, &["functions", "show", "f"]);
    let listed = crate::support::cli(&server, &["functions", "list"]);
    for output in [shown, listed] {
        assert!(!output.contains(SECRET), "the CLI shows a secret: {output}");
    }
}
