//! The invocation log: persisted across restarts, paged, filtered by outcome, dry runs marked,
//! trimmed to its retention, and followed live (`sluice logs --follow`, server-sent events).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, DataDir, Server, example, wait_for};

async fn invoke(server: &Server, function: &str, attributes: Value) -> Value {
    let (status, record) = server
        .post(
            &format!("/v1/functions/{function}/invoke"),
            json!({ "messages": [{ "body": "x", "attributes": attributes }] }),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    record
}

#[tokio::test]
async fn the_log_is_kept_across_restarts_paged_and_filtered() {
    let dir = DataDir::new();
    let mut server = Server::start_in(dir.path()).await;
    server.deploy("flaky", example("flaky"), "").await;
    let ok = invoke(&server, "flaky", json!({})).await;
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["dry_run"], true, "{ok}");
    assert!(ok["id"].as_u64().unwrap() > 0, "{ok}");
    invoke(&server, "flaky", json!({"fail": "error"})).await;
    invoke(&server, "flaky", json!({})).await;
    invoke(&server, "flaky", json!({"fail": "error"})).await;

    // A real invocation, through a trigger, is not a dry run.
    server.create_queue(json!({"name": "jobs"})).await;
    server.trigger("flaky", json!({"queue": "jobs"})).await;
    server.post_raw("/v1/queues/jobs/messages", "hello").await;
    let logged = wait_for(Duration::from_secs(20), || async {
        let (_, page) = server.get("/v1/functions/flaky/invocations").await;
        page["invocations"].as_array().unwrap().len() == 5
    })
    .await;
    assert!(logged, "the triggered invocation was not logged");

    server.terminate();
    let server = Server::start_in(dir.path()).await;
    let (_, all) = server.get("/v1/functions/flaky/invocations").await;
    let all = all["invocations"].as_array().unwrap().clone();
    assert_eq!(all.len(), 5, "kept across a restart: {all:?}");
    let ids: Vec<u64> = all.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(all[0]["dry_run"], false);
    assert_eq!(all[0]["batch_size"], 1);
    assert!(all[1..].iter().all(|i| i["dry_run"] == true));

    let (_, errors) = server
        .get("/v1/functions/flaky/invocations?outcome=error")
        .await;
    let errors = errors["invocations"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|i| {
        i["outcome"] == "error"
            && i["error"]
                .as_str()
                .unwrap()
                .contains("asked to fail the batch")
    }));
    let (status, body) = server
        .get("/v1/functions/flaky/invocations?outcome=bogus")
        .await;
    assert_eq!(status, 400, "{body}");

    // Pages of two: no overlap, nothing skipped, and no cursor after the last.
    let mut seen = Vec::new();
    let mut path = "/v1/functions/flaky/invocations?limit=2".to_owned();
    loop {
        let (_, page) = server.get(&path).await;
        seen.extend(
            page["invocations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap()),
        );
        match page["next_before"].as_u64() {
            Some(before) => {
                path = format!("/v1/functions/flaky/invocations?limit=2&before={before}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // Deleting the function deletes its log.
    server.delete("/v1/functions/flaky/trigger").await;
    server.delete("/v1/functions/flaky").await;
    server.deploy("flaky", example("flaky"), "").await;
    let (_, fresh) = server.get("/v1/functions/flaky/invocations").await;
    assert_eq!(fresh["invocations"], json!([]));
}

#[tokio::test]
async fn the_log_keeps_at_most_its_retention() {
    let dir = DataDir::new();
    let server =
        Server::start_in_wrapped(dir.path(), &["env", "SLUICE_INVOCATIONS_PER_FUNCTION=3"]).await;
    server.deploy("flaky", example("flaky"), "").await;
    // The log is trimmed with a write at most once a second: keep invoking until a write has
    // trimmed it, then it holds exactly the newest three.
    let ids = std::cell::RefCell::new(Vec::new());
    let trimmed = wait_for(Duration::from_secs(15), || async {
        let id = invoke(&server, "flaky", json!({})).await["id"]
            .as_u64()
            .unwrap();
        ids.borrow_mut().push(id);
        let (_, kept) = server.get("/v1/functions/flaky/invocations").await;
        let kept: Vec<u64> = kept["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_u64().unwrap())
            .collect();
        let ids = ids.borrow();
        let newest: Vec<u64> = ids.iter().rev().take(3).copied().collect();
        ids.len() > 3 && kept == newest
    })
    .await;
    assert!(
        trimmed,
        "the log never came down to its retention of 3: {:?}",
        ids.borrow()
    );
}

#[tokio::test]
async fn logs_follow_streams_invocations_as_they_commit() {
    let (server, _dir) = Server::start().await;
    server.deploy("flaky", example("flaky"), "").await;
    invoke(&server, "flaky", json!({})).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["logs", "flaky", "--follow", "--limit", "5"])
        .env("SLUICE_SERVER", &server.url)
        .env("SLUICE_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice logs --follow");
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        received
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line for {what}"))
    };
    // The backlog first, with a readable time and the dry-run mark.
    let first = next("the backlog");
    assert!(
        first.starts_with("20") && first.contains(" ok ") && first.ends_with("(dry run)"),
        "{first}"
    );

    // Then each new invocation as it commits: a trigger's, with its captured output.
    server.create_queue(json!({"name": "jobs"})).await;
    server.trigger("flaky", json!({"queue": "jobs"})).await;
    server
        .post_raw("/v1/queues/jobs/messages", "from the queue")
        .await;
    let live = next("the triggered invocation");
    assert!(
        live.contains(" ok batch=1 ") && !live.contains("dry run"),
        "{live}"
    );
    invoke(&server, "flaky", json!({"fail": "error"})).await;
    let failed = next("the failed dry run");
    assert!(
        failed.contains(" error ") && failed.contains("asked to fail"),
        "{failed}"
    );

    let _ = child.kill();
    let _ = child.wait();
}
