//! The invocation log: persisted across restarts, paged, filtered by outcome, dry runs marked,
//! trimmed to its retention, and followed live (`sluice logs --follow`, server-sent events).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sluice_test_support::testdb::TestDatabase;

use crate::support::{ADMIN_TOKEN, DataDir, Server, assert_error, example, wait_for};

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

/// `p` (0 to 1) of ascending `sorted`, interpolated between the nearest two: the percentile the
/// stats are documented to give (PostgreSQL's `percentile_cont`).
fn percentile_cont(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor(), position.ceil());
    let (below, above) = (sorted[low as usize], sorted[high as usize]);
    below + (above - below) * (position - low)
}

/// A function's stats over HTTP agree with its log: each bucket counts the invocations the
/// log shows started in it (dry runs left out), those not `ok`, and the percentiles of their
/// durations; bad windows are refused with what to ask instead.
async fn invocation_stats_agree_with_the_log(server: &Server) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    server.deploy("flaky", example("flaky"), "").await;
    // One attempt: an error drops the message instead of retrying it.
    server
        .create_queue(json!({"name": "jobs", "max_attempts": 1}))
        .await;
    server
        .trigger("flaky", json!({"queue": "jobs", "batch_size": 1}))
        .await;
    let mut messages: Vec<Value> = (0..8).map(|i| json!({"body": format!("ok {i}")})).collect();
    messages.extend((0..3).map(|_| json!({"body": "bad", "attributes": {"fail": "panic"}})));
    let (status, sent) = server
        .post(
            "/v1/queues/jobs/messages/batch",
            json!({ "messages": messages }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    invoke(server, "flaky", json!({})).await;
    let logged = wait_for(Duration::from_secs(30), || async {
        let (_, page) = server.get("/v1/functions/flaky/invocations").await;
        page["invocations"].as_array().unwrap().len() == 12
    })
    .await;
    assert!(logged, "the invocations were not logged");
    let (_, page) = server.get("/v1/functions/flaky/invocations").await;
    let real: Vec<&Value> = page["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["dry_run"] == false)
        .collect();
    assert_eq!(real.len(), 11);

    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1;
    let (status, stats) = server
        .get(&format!(
            "/v1/functions/flaky/invocations/stats?since_ms={since}&until_ms={until}&bucket_ms=1000"
        ))
        .await;
    assert_eq!(status, 200, "{stats}");
    let buckets = stats["buckets"].as_array().unwrap();
    let start = stats["start_ms"].as_u64().unwrap();
    assert_eq!(start, since, "buckets from `since_ms` on");
    assert!(stats["end_ms"].as_u64().unwrap() >= until);
    assert_eq!(stats["bucket_ms"], 1000);
    let mut total = 0;
    for (i, bucket) in buckets.iter().enumerate() {
        let from = start + i as u64 * 1000;
        assert_eq!(bucket["start_ms"], from, "buckets in order, none skipped");
        let mine: Vec<&&Value> = real
            .iter()
            .filter(|r| (from..from + 1000).contains(&r["started_at_ms"].as_u64().unwrap()))
            .collect();
        let mut durations: Vec<f64> = mine
            .iter()
            .map(|r| r["duration_ms"].as_f64().unwrap())
            .collect();
        durations.sort_by(f64::total_cmp);
        let errors = mine.iter().filter(|r| r["outcome"] != "ok").count();
        assert_eq!(bucket["invocations"], mine.len(), "{bucket}");
        assert_eq!(bucket["errors"], errors, "{bucket}");
        // Within a millionth of a percent: JSON numbers are read back here to within a unit
        // in the last place, not always exactly.
        for (key, p) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
            match (bucket[key].as_f64(), durations.is_empty()) {
                (None, true) => {}
                (Some(got), false) => {
                    let expected = percentile_cont(&durations, p);
                    assert!(
                        (got - expected).abs() <= expected.abs() * 1e-9,
                        "{key} of {bucket}: expected {expected}"
                    );
                }
                _ => panic!("{key} of {bucket} with {} durations", durations.len()),
            }
        }
        total += mine.len();
    }
    assert_eq!(total, 11, "every real invocation in some bucket");
    let errors: u64 = buckets.iter().map(|b| b["errors"].as_u64().unwrap()).sum();
    assert_eq!(errors, 3);

    // Without a window: the last hour, in buckets of a minute.
    let (status, hour) = server.get("/v1/functions/flaky/invocations/stats").await;
    assert_eq!(status, 200, "{hour}");
    assert_eq!(hour["bucket_ms"], 60_000);
    let counted: u64 = hour["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["invocations"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 11);

    let refused = |path: String| async move {
        let (status, body) = server.get(&path).await;
        assert_error(status, &body, 400, "bad_request");
        body["error"]["message"].as_str().unwrap().to_owned()
    };
    let base = "/v1/functions/flaky/invocations/stats";
    let narrow = refused(format!("{base}?bucket_ms=10")).await;
    assert!(narrow.contains("at least 1000"), "{narrow}");
    let many = refused(format!(
        "{base}?since_ms=0&until_ms=86400000&bucket_ms=1000"
    ))
    .await;
    assert!(many.contains("`bucket_ms` of at least 60"), "{many}");
    let backwards = refused(format!("{base}?since_ms={until}&until_ms={since}")).await;
    assert!(backwards.contains("must be after"), "{backwards}");
    let wide = refused(format!("{base}?since_ms=0")).await;
    assert!(wide.contains("31 days"), "{wide}");
    let unknown = refused(format!("{base}?bucket=1000")).await;
    assert!(unknown.contains("bucket"), "{unknown}");
    let (status, body) = server.get("/v1/functions/nope/invocations/stats").await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn invocation_stats_agree_with_the_log_on_sqlite() {
    let (server, _dir) = Server::start().await;
    invocation_stats_agree_with_the_log(&server).await;
}

#[tokio::test]
async fn invocation_stats_agree_with_the_log_on_postgres() {
    let db = TestDatabase::create().await;
    let dir = DataDir::new();
    let server = Server::start_on_postgres(dir.path(), &db.url).await;
    invocation_stats_agree_with_the_log(&server).await;
}
