//! The command-line client against a real server: queues, send, peek, deploy, invoke, and the
//! example chain applied from its manifest.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Server, cli, cli_output, examples_dir, repo, wait_for};

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
    let peeked = cli(&server, &["peek", "jobs", "--json"]);
    let message: Value = serde_json::from_str(peeked.lines().next().unwrap()).unwrap();
    assert_eq!(message["body"], "hello");
    assert_eq!(message["attributes"]["k"], "v");
    let human = cli(&server, &["peek", "jobs"]);
    assert!(
        human.contains("k: v") && human.contains("  hello"),
        "{human}"
    );
    let shown: Value =
        serde_json::from_str(&cli(&server, &["queue", "show", "jobs", "--json"])).unwrap();
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
    let invoked: Value = serde_json::from_str(&cli(
        &server,
        &["invoke", "log", "--message", "hi there", "--json"],
    ))
    .unwrap();
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

/// The column (in characters) where `header`'s text ends in the first line of `table`.
fn header_end(table: &str, header: &str) -> usize {
    let first = table.lines().next().unwrap();
    first
        .find(header)
        .unwrap_or_else(|| panic!("{header} in {first}"))
        + header.len()
}

#[tokio::test]
async fn read_commands_line_up_for_people_and_print_json_on_request() {
    let (server, _dir) = Server::start().await;
    cli(&server, &["queue", "create", "a"]);
    cli(
        &server,
        &[
            "queue",
            "create",
            "a-rather-long-queue-name",
            "--visibility-timeout",
            "45s",
        ],
    );
    server
        .enqueue_all(
            "a-rather-long-queue-name",
            (0..1234).map(|i| serde_json::json!({ "body": format!("m{i}") })),
        )
        .await;

    let list = cli(&server, &["queue", "list"]);
    // Every count ends exactly where its header ends (right-aligned under it).
    for header in ["VISIBLE", "DELAYED", "IN FLIGHT"] {
        let end = header_end(&list, header);
        for line in list.lines().skip(1) {
            let before = &line[..end];
            assert!(
                before.ends_with(|c: char| c.is_ascii_digit()),
                "{header} not aligned in:\n{list}"
            );
            assert!(
                line[end..].starts_with(' '),
                "{header} not aligned in:\n{list}"
            );
        }
    }
    assert!(list.contains("1234"), "{list}");

    let shown = cli(&server, &["queue", "show", "a-rather-long-queue-name"]);
    assert!(
        shown.contains("visibility timeout") && shown.contains("45s"),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("visible") && l.ends_with(" 1234")),
        "{shown}"
    );
    let json: Value = serde_json::from_str(&cli(&server, &["queue", "list", "--json"])).unwrap();
    assert_eq!(json["queues"].as_array().unwrap().len(), 2);

    let log = examples_dir().join("log.wasm");
    cli(&server, &["deploy", log.to_str().unwrap(), "--name", "log"]);
    let function = cli(&server, &["functions", "show", "log"]);
    assert!(
        function.contains("trigger   none") && function.contains("*        1"),
        "{function}"
    );
    let json: Value =
        serde_json::from_str(&cli(&server, &["functions", "show", "log", "--json"])).unwrap();
    assert_eq!(json["active_version"], 1);
    let invoked = cli(&server, &["invoke", "log", "--message", "hi"]);
    assert!(
        invoked.contains(" ok batch=1 ")
            && invoked.contains("(dry run)")
            && invoked.contains("]: hi"),
        "{invoked}"
    );
    // Times are for people: an RFC 3339 date, not milliseconds since 1970.
    assert!(
        invoked.starts_with("20") && invoked.contains('T'),
        "{invoked}"
    );
}

#[tokio::test]
async fn deploy_checks_its_queue_first_and_skips_identical_bytes() {
    let (server, _dir) = Server::start().await;
    let log = examples_dir().join("log.wasm");
    let log = log.to_str().unwrap();

    let refused = cli_output(
        &server,
        &["deploy", log, "--name", "log", "--queue", "missing"],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("nothing was deployed") && stderr.contains("`missing` does not exist"),
        "{stderr}"
    );
    let (status, _) = server.get("/v1/functions/log").await;
    assert_eq!(status, 404, "a refused deploy must not create a version");

    let first = cli(&server, &["deploy", log, "--name", "log"]);
    assert!(first.contains("deployed log version 1"), "{first}");
    let again = cli(&server, &["deploy", log, "--name", "log"]);
    assert!(again.contains("log unchanged"), "{again}");
    let (_, record) = server.get("/v1/functions/log").await;
    assert_eq!(record["versions"].as_array().unwrap().len(), 1, "{record}");

    // The same bytes with another config are a new version.
    let changed = cli(&server, &["deploy", log, "--name", "log", "--env", "A=1"]);
    assert!(changed.contains("deployed log version 2"), "{changed}");

    // Another function already consuming the queue is caught before anything is uploaded.
    cli(&server, &["queue", "create", "jobs"]);
    cli(
        &server,
        &["deploy", log, "--name", "log", "--queue", "jobs"],
    );
    let taken = cli_output(
        &server,
        &["deploy", log, "--name", "other", "--queue", "jobs"],
    );
    assert!(!taken.status.success());
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("consumed by function `log`"),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let (status, _) = server.get("/v1/functions/other").await;
    assert_eq!(status, 404);
}

/// The README's Quickstart builds the examples with a plain `cargo build --target wasm32-wasip2`
/// in `examples/`: the toolchain file there must name the target so rustup installs it.
#[test]
fn the_examples_toolchain_file_brings_the_wasm_target() {
    let toolchain = std::fs::read_to_string(repo().join("examples/rust-toolchain.toml")).unwrap();
    let toolchain: toml::Table = toml::from_str(&toolchain).unwrap();
    let targets = toolchain["toolchain"]["targets"].as_array().unwrap();
    assert!(targets.iter().any(|t| t.as_str() == Some("wasm32-wasip2")));
    // rustup reads it from examples/: the active toolchain there is the file's.
    let shown = std::process::Command::new("rustup")
        .args(["show", "active-toolchain"])
        .current_dir(repo().join("examples"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .expect("rustup");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("rust-toolchain.toml"), "{shown}");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("(cd examples && cargo build --release --target wasm32-wasip2)"));
    assert!(readme.contains("examples/rust-toolchain.toml"));
}

/// The stderr of a CLI run that must fail.
fn failure(output: std::process::Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn triggers_are_bound_paused_resumed_and_removed_from_the_cli() {
    let (server, _dir) = Server::start().await;
    let log = examples_dir().join("log.wasm");
    cli(&server, &["queue", "create", "jobs"]);
    cli(&server, &["deploy", log.to_str().unwrap(), "--name", "log"]);

    let refused = failure(cli_output(&server, &["functions", "pause", "log"]));
    assert!(
        refused.contains("has no trigger") && refused.contains("functions trigger log --queue"),
        "{refused}"
    );

    let bound = cli(
        &server,
        &[
            "functions",
            "trigger",
            "log",
            "--queue",
            "jobs",
            "--batch-size",
            "5",
            "--max-wait",
            "20ms",
            "--concurrency",
            "2",
            "--paused",
        ],
    );
    assert_eq!(bound.trim(), "log consumes jobs (paused)");
    let (_, record) = server.get("/v1/functions/log").await;
    assert_eq!(record["trigger"]["paused"], true, "{record}");

    // Resuming keeps every other setting of the trigger, and the queue drains.
    cli(&server, &["send", "jobs", "while paused"]);
    let resumed = cli(&server, &["functions", "resume", "log"]);
    assert!(
        resumed.starts_with("log resumed: consumes jobs"),
        "{resumed}"
    );
    let drained = wait_for(Duration::from_secs(30), || async {
        let stats = server.stats("jobs").await;
        stats["visible"] == 0 && stats["in_flight"] == 0
    })
    .await;
    assert!(
        drained,
        "not consumed after resume: {}",
        server.stats("jobs").await
    );
    let (_, record) = server.get("/v1/functions/log").await;
    let trigger = &record["trigger"];
    assert_eq!(
        (
            &trigger["batch_size"],
            &trigger["max_wait_ms"],
            &trigger["max_concurrency"],
            &trigger["paused"]
        ),
        (&5.into(), &20.into(), &2.into(), &false.into()),
        "{record}"
    );
    let paused = cli(&server, &["functions", "pause", "log"]);
    assert!(paused.starts_with("log paused"), "{paused}");
    let shown: Value =
        serde_json::from_str(&cli(&server, &["functions", "show", "log", "--json"])).unwrap();
    assert_eq!(shown["trigger"]["state"], "paused", "{shown}");
    assert_eq!(shown["trigger"]["batch_size"], 5, "{shown}");

    // A paused trigger still owns its queue: the 409s for pulling from it and for binding
    // another function name the command that frees it, and that command does.
    cli(&server, &["send", "jobs", "for a pull consumer"]);
    let pull = failure(cli_output(&server, &["receive", "jobs"]));
    assert!(pull.contains("`sluice functions untrigger log`"), "{pull}");
    let other = failure(cli_output(
        &server,
        &["functions", "trigger", "log2", "--queue", "jobs"],
    ));
    assert!(other.contains("404"), "no function log2 yet: {other}");
    cli(
        &server,
        &["deploy", log.to_str().unwrap(), "--name", "log2"],
    );
    let taken = failure(cli_output(
        &server,
        &["functions", "trigger", "log2", "--queue", "jobs"],
    ));
    assert!(
        taken.contains("409") && taken.contains("`sluice functions untrigger log`"),
        "{taken}"
    );
    let unbound = cli(&server, &["functions", "untrigger", "log"]);
    assert!(
        unbound.starts_with("log no longer consumes jobs"),
        "{unbound}"
    );
    let received = cli(&server, &["receive", "jobs", "--ack"]);
    assert!(received.contains("for a pull consumer"), "{received}");
    let again = cli(&server, &["functions", "untrigger", "log"]);
    assert_eq!(again.trim(), "log had no trigger; nothing changed");
    let (_, record) = server.get("/v1/functions/log").await;
    assert!(record["trigger"].is_null(), "{record}");
}

/// The example chain's manifest with its components' paths pointing at the built examples,
/// written into `dir`.
fn chain_manifest(dir: &std::path::Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let manifest = std::fs::read_to_string(repo().join("examples/chain/sluice.toml")).unwrap();
    let built = format!("{}/", examples_dir().display());
    let manifest = edit(manifest.replace("../target/wasm32-wasip2/release/", &built));
    let path = dir.join("sluice.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

#[tokio::test]
async fn apply_dry_run_reports_the_plan_and_changes_nothing() {
    let (server, dir) = Server::start().await;
    let path = chain_manifest(dir.path(), |m| m);
    let path = path.to_str().unwrap();

    let planned = cli(&server, &["apply", "--dry-run", path]);
    for line in [
        "queue orders: create",
        "function router: deploy version 1",
        "function router: consume orders",
        "dry run: nothing was changed",
    ] {
        assert!(planned.lines().any(|l| l == line), "{line} in:\n{planned}");
    }
    let (_, queues) = server.get("/v1/queues").await;
    assert_eq!(queues["queues"], serde_json::json!([]), "{queues}");
    let (_, functions) = server.get("/v1/functions").await;
    assert_eq!(functions["functions"], serde_json::json!([]), "{functions}");

    let applied = cli(&server, &["apply", path]);
    assert!(applied.contains("queue orders: created"), "{applied}");
    let again = cli(&server, &["apply", path]);
    assert!(again.contains("queue orders: unchanged"), "{again}");
    let planned = cli(&server, &["apply", "--dry-run", path]);
    for line in [
        "queue orders: unchanged",
        "function router: trigger unchanged",
    ] {
        assert!(planned.lines().any(|l| l == line), "{line} in:\n{planned}");
    }
    assert!(
        planned.contains("function router: unchanged (version 1) unless an env value changed"),
        "{planned}"
    );

    // Changes are listed setting by setting, and still not made.
    let path = chain_manifest(dir.path(), |m| {
        m.replacen("max_attempts = 5", "max_attempts = 9", 1)
            .replacen("timeout_ms = 5000", "timeout_ms = 7000", 1)
            .replacen("batch_size = 100", "batch_size = 50", 1)
    });
    let path = path.to_str().unwrap();
    let planned = cli(&server, &["apply", "--dry-run", path]);
    for line in [
        "queue orders: update (max_attempts 5 → 9)",
        "function router: deploy version 2 (timeout_ms 5000 → 7000)",
        "function router: trigger update (batch_size 100 → 50)",
    ] {
        assert!(planned.lines().any(|l| l == line), "{line} in:\n{planned}");
    }
    let (_, orders) = server.get("/v1/queues/orders").await;
    assert_eq!(orders["settings"]["max_attempts"], 5, "{orders}");
    let (_, router) = server.get("/v1/functions/router").await;
    assert_eq!(router["versions"].as_array().unwrap().len(), 1, "{router}");
    assert_eq!(router["trigger"]["batch_size"], 100, "{router}");
}

#[tokio::test]
async fn apply_refuses_a_manifest_the_server_would_refuse_before_changing_anything() {
    let (server, dir) = Server::start().await;
    let log = examples_dir().join("log.wasm");
    cli(&server, &["queue", "create", "orders"]);
    cli(
        &server,
        &[
            "deploy",
            log.to_str().unwrap(),
            "--name",
            "log",
            "--queue",
            "orders",
        ],
    );
    let (_, before) = server.get("/v1/queues/orders").await;
    // The chain's router wants `orders`, which `log` consumes, and its dead-letter queue is
    // left out of the manifest.
    let path = chain_manifest(dir.path(), |m| m.replace("[queues.chain-dlq]\n", ""));
    let path = path.to_str().unwrap();
    for args in [vec!["apply", "--dry-run", path], vec!["apply", path]] {
        let output = cli_output(&server, &args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let refused = failure(output);
        assert!(refused.contains("nothing was changed"), "{refused}");
        let said = stdout + &refused;
        assert!(
            said.contains("queue `orders` is consumed by function `log`")
                && said.contains("`sluice functions untrigger log`")
                && said.contains("dead-letter queue `chain-dlq` does not exist"),
            "{args:?}: {said}"
        );
    }
    let (_, queues) = server.get("/v1/queues").await;
    assert_eq!(queues["queues"].as_array().unwrap().len(), 1, "{queues}");
    let (_, after) = server.get("/v1/queues/orders").await;
    assert_eq!(before["settings"], after["settings"]);
    let (_, functions) = server.get("/v1/functions").await;
    assert_eq!(functions["functions"].as_array().unwrap().len(), 1);
}

/// `queue create` takes every setting the API takes, and `queue show`/`queue list` say which
/// function consumes a queue, with sizes and durations for people.
#[tokio::test]
async fn queue_create_takes_every_setting_and_views_name_the_consumer() {
    let (server, _dir) = Server::start().await;
    cli(
        &server,
        &[
            "queue",
            "create",
            "tuned",
            "--dedup-window",
            "2m",
            "--max-depth",
            "500",
            "--delay",
            "5s",
            "--receive-wait",
            "10s",
            "--no-backoff-jitter",
            "--max-message-bytes",
            "1048576",
        ],
    );
    let shown: Value =
        serde_json::from_str(&cli(&server, &["queue", "show", "tuned", "--json"])).unwrap();
    let settings = &shown["settings"];
    assert_eq!(settings["dedup_window_ms"], 120_000, "{settings}");
    assert_eq!(settings["max_depth"], 500, "{settings}");
    assert_eq!(settings["delay_ms"], 5_000, "{settings}");
    assert_eq!(settings["receive_wait_ms"], 10_000, "{settings}");
    assert_eq!(settings["backoff"]["jitter"], false, "{settings}");

    let log = examples_dir().join("log.wasm");
    cli(
        &server,
        &[
            "deploy",
            log.to_str().unwrap(),
            "--name",
            "log",
            "--queue",
            "tuned",
        ],
    );
    let human = cli(&server, &["queue", "show", "tuned"]);
    for expected in ["consumer", "log", "1.0 MiB", "2m", "max depth"] {
        assert!(human.contains(expected), "no {expected:?} in:\n{human}");
    }
    let list = cli(&server, &["queue", "list"]);
    let row = list.lines().find(|l| l.starts_with("tuned")).unwrap();
    assert!(list.contains("CONSUMER") && row.ends_with("log"), "{list}");
}

/// A refused command prints one line saying what was wrong and what to do, and exits 1, even
/// with `RUST_BACKTRACE=1` set; a malformed command line exits 2.
#[tokio::test]
async fn errors_are_one_line_without_a_backtrace_and_exit_codes_say_which() {
    let (server, _dir) = Server::start().await;
    cli(&server, &["queue", "create", "taken"]);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["queue", "create", "taken"])
        .env("SLUICE_SERVER", &server.url)
        .env("SLUICE_TOKEN", crate::support::ADMIN_TOKEN)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("already exists"),
        "{stderr}"
    );
    let usage = cli_output(&server, &["queue", "create"]);
    assert_eq!(usage.status.code(), Some(2));
}

/// `sluice kv`: buckets created, shown, listed and deleted; keys set (from an argument or a
/// file, bytes as they are), read back, listed by prefix a page at a time, and unset.
#[tokio::test]
async fn kv_buckets_and_keys_from_the_cli() {
    let (server, _dir) = Server::start().await;
    assert!(cli(&server, &["kv", "create", "seen", "--ttl", "1h"]).contains("1h"));
    cli(&server, &["kv", "create", "counts"]);
    let shown = cli(&server, &["kv", "show", "counts"]);
    assert!(shown.contains("never"), "{shown}");
    let list = cli(&server, &["kv", "list"]);
    assert!(list.contains("seen") && list.contains("counts"), "{list}");

    cli(&server, &["kv", "set", "counts", "count:acme", "41"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), [0u8, 159, 146, 150]).unwrap();
    let path = file.path().to_str().unwrap();
    cli(
        &server,
        &["kv", "set", "counts", "raw/bytes", "--file", path],
    );
    assert_eq!(cli(&server, &["kv", "get", "counts", "count:acme"]), "41");
    let raw = cli_output(&server, &["kv", "get", "counts", "raw/bytes"]);
    assert_eq!(raw.stdout, [0u8, 159, 146, 150]);
    for i in 0..5 {
        cli(
            &server,
            &["kv", "set", "counts", &format!("count:c{i}"), "1"],
        );
    }
    let keys = cli(
        &server,
        &["kv", "keys", "counts", "--prefix", "count:", "--limit", "4"],
    );
    assert_eq!(
        keys.lines().collect::<Vec<_>>(),
        ["count:acme", "count:c0", "count:c1", "count:c2"]
    );

    cli(&server, &["kv", "unset", "counts", "count:acme"]);
    let gone = cli_output(&server, &["kv", "get", "counts", "count:acme"]);
    assert_eq!(gone.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(stderr.contains("no value"), "{stderr}");
    cli(&server, &["kv", "delete", "seen"]);
    assert!(!cli(&server, &["kv", "list"]).contains("seen"));
}

/// `sluice apply` creates the manifest's buckets (`[kv.NAME]`) before the functions that name
/// them, refuses a function naming a bucket that exists nowhere, and leaves unchanged buckets
/// alone.
#[tokio::test]
async fn apply_creates_buckets_before_the_functions_that_name_them() {
    let (server, _dir) = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples_dir().join("log.wasm"), dir.path().join("log.wasm")).unwrap();
    let manifest = dir.path().join("sluice.toml");
    let write = |buckets: &str| {
        std::fs::write(
            &manifest,
            format!(
                "[kv.counts]\n[kv.seen]\nttl_ms = 3600000\n\n[functions.log]\n\
                 component = \"log.wasm\"\nkv_buckets = [{buckets}]\n"
            ),
        )
        .unwrap()
    };
    let path = manifest.to_str().unwrap();

    write("\"counts\", \"elsewhere\"");
    let refused = cli_output(&server, &["apply", path]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("bucket `elsewhere` does not exist"),
        "{stderr}"
    );
    assert!(
        !cli(&server, &["kv", "list"]).contains("counts"),
        "nothing was changed"
    );

    write("\"counts\", \"seen\"");
    let planned = cli(&server, &["apply", "--dry-run", path]);
    assert!(planned.contains("bucket counts: create"), "{planned}");
    let applied = cli(&server, &["apply", path]);
    assert!(
        applied.contains("bucket counts: created") && applied.contains("bucket seen: created"),
        "{applied}"
    );
    assert!(cli(&server, &["kv", "show", "seen"]).contains("1h"));
    let again = cli(&server, &["apply", path]);
    assert!(again.contains("bucket seen: unchanged"), "{again}");
}
