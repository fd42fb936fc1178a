//! The command-line client against a real server: queues, send, peek, deploy, invoke, and the
//! example chain applied from its manifest.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Server, cli, examples_dir, wait_for};

#[tokio::test]
async fn queue_send_peek_deploy_and_invoke() {
    let (server, _dir) = Server::start().await;
    cli(
        &server,
        &[
            "queue",
            "create",
            "jobs",
            "--max-attempts",
            "3",
            "--visibility-timeout",
            "5s",
        ],
    );
    let id = cli(&server, &["send", "jobs", "hello", "--attr", "k=v"]);
    assert!(!id.trim().is_empty());
    let peeked = cli(&server, &["peek", "jobs"]);
    let message: Value = serde_json::from_str(peeked.lines().next().unwrap()).unwrap();
    assert_eq!(message["body"], "hello");
    assert_eq!(message["attributes"]["k"], "v");
    let shown: Value = serde_json::from_str(&cli(&server, &["queue", "show", "jobs"])).unwrap();
    assert_eq!(shown["settings"]["visibility_timeout_ms"], 5000);
    assert!(cli(&server, &["queue", "list"]).contains("jobs"));

    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: String = (0..1200)
        .map(|i| format!("{{\"body\": \"line {i}\"}}\n"))
        .collect();
    std::fs::write(file.path(), lines).unwrap();
    cli(
        &server,
        &["send", "jobs", "--file", file.path().to_str().unwrap()],
    );
    assert_eq!(server.stats("jobs").await["visible"], 1201);

    let log = examples_dir().join("log.wasm");
    let deployed = cli(
        &server,
        &[
            "deploy",
            log.to_str().unwrap(),
            "--name",
            "log",
            "--env",
            "A=1",
        ],
    );
    assert!(deployed.contains("version 1"), "{deployed}");
    let invoked: Value =
        serde_json::from_str(&cli(&server, &["invoke", "log", "--message", "hi there"])).unwrap();
    assert_eq!(invoked["outcome"], "ok", "{invoked}");
    assert!(invoked["logs"].as_str().unwrap().contains("hi there"));
    assert!(cli(&server, &["functions", "list"]).contains("log"));
    let token = cli(&server, &["token", "create", "--scope", "read"]);
    assert!(token.trim().starts_with("sluice_"), "{token}");
}

#[tokio::test]
async fn the_example_chain_applies_from_its_manifest_and_runs() {
    let (server, dir) = Server::start().await;
    let manifest =
        std::fs::read_to_string(crate::support::repo().join("examples/chain/sluice.toml")).unwrap();
    let built = format!("{}/", examples_dir().display());
    let manifest = manifest.replace("../target/wasm32-wasip2/release/", &built);
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, manifest).unwrap();

    let first = cli(&server, &["apply", path.to_str().unwrap()]);
    assert!(
        first.contains("function notify: deployed version 1"),
        "{first}"
    );
    let second = cli(&server, &["apply", path.to_str().unwrap()]);
    assert!(
        second.contains("function notify: unchanged"),
        "idempotent: {second}"
    );
    let (_, notify) = server.get("/v1/functions/notify").await;
    assert_eq!(notify["versions"].as_array().unwrap().len(), 1);

    cli(
        &server,
        &[
            "send",
            "orders",
            r#"{"id": "o-1", "kind": "book", "amount": 12.5}"#,
        ],
    );
    cli(&server, &["send", "orders", "not an order"]);
    let arrived = wait_for(Duration::from_secs(30), || async {
        server.stats("notifications").await["visible"] == 1
            && server.stats("chain-dlq").await["visible"] == 1
    })
    .await;
    assert!(
        arrived,
        "chain did not deliver: {}",
        server.stats("notifications").await
    );
    let peeked = cli(&server, &["peek", "notifications"]);
    assert!(
        peeked.contains("o-1") && peeked.contains("1250 cents"),
        "{peeked}"
    );
    let logs = cli(&server, &["logs", "notify"]);
    assert!(logs.contains("ok batch=1"), "{logs}");
}
