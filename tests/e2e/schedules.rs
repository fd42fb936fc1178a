//! Schedules: a cron schedule firing every second across a SIGKILL and restart fires each tick
//! exactly once, coalesces the ticks missed while down into one message that says how many it
//! stands for, and bad schedules are refused with what to fix.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{DataDir, Server, assert_error, cli, wait_for};

async fn queued(server: &Server, queue: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/v1/queues/{queue}/messages?limit=1000"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().cloned().unwrap_or_default()
}

async fn wait_for_depth(server: &Server, queue: &str, depth: usize) {
    let reached = wait_for(Duration::from_secs(20), || async {
        queued(server, queue).await.len() >= depth
    })
    .await;
    assert!(reached, "queue {queue} never reached {depth} messages");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn attribute(message: &Value, name: &str) -> u64 {
    message["attributes"][name]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("message without {name}: {message}"))
}

#[tokio::test]
async fn a_schedule_fires_every_tick_once_across_a_crash() {
    let dir = DataDir::new();
    let mut server = Server::start_in(dir.path()).await;
    server.create_queue(json!({"name": "ticks"})).await;
    let (status, body) = server
        .put_json(
            "/v1/schedules/every-second",
            json!({"cron": "* * * * * *", "queue": "ticks", "body": "tick",
                   "attributes": {"kind": "heartbeat"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["next_tick_ms"].as_u64().unwrap() > now_ms() - 1_000,
        "{body}"
    );
    wait_for_depth(&server, "ticks", 3).await;

    // Killed without warning, and down for at least two ticks.
    server.kill9();
    let until = now_ms() + 2_500;
    assert!(wait_for(Duration::from_secs(10), || async { now_ms() > until }).await);
    let server = Server::start_in(dir.path()).await;
    let before = queued(&server, "ticks").await.len();
    wait_for_depth(&server, "ticks", before + 3).await;

    let messages = queued(&server, "ticks").await;
    let mut ticks: Vec<(u64, u64)> = messages
        .iter()
        .map(|m| {
            assert_eq!(m["body"], "tick");
            assert_eq!(m["attributes"]["kind"], "heartbeat");
            assert_eq!(m["attributes"]["sluice-schedule"], "every-second");
            (
                attribute(m, "sluice-schedule-tick"),
                attribute(m, "sluice-schedule-missed"),
            )
        })
        .collect();
    ticks.sort();
    let distinct: BTreeSet<u64> = ticks.iter().map(|(t, _)| *t).collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    // Every tick from the first to the last is accounted for exactly once: fired, or counted
    // as missed by the message before it.
    for pair in ticks.windows(2) {
        let ((tick, missed), (next, _)) = (pair[0], pair[1]);
        assert_eq!(
            next,
            tick + 1_000 * (missed + 1),
            "a gap or overlap: {ticks:?}"
        );
    }
    assert!(
        ticks.iter().any(|(_, missed)| *missed >= 1),
        "the ticks missed while down were not coalesced: {ticks:?}"
    );

    let listed = cli(&server, &["schedule", "list"]);
    assert!(
        listed.contains("every-second") && listed.contains("* * * * * *"),
        "{listed}"
    );
    let (status, body) = server.delete("/v1/queues/ticks").await;
    assert_error(status, &body, 409, "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("every-second"),
        "{body}"
    );
    cli(&server, &["schedule", "delete", "every-second"]);
    let (status, _) = server.get("/v1/schedules/every-second").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_schedules_are_refused_with_what_to_fix() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let cases = [
        (json!({"cron": "every day", "queue": "q"}), 400, "5 fields"),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "queue": "q"}),
            400,
            "IANA",
        ),
        (
            json!({"cron": "* * * * *", "queue": "missing"}),
            404,
            "missing",
        ),
        (
            json!({"cron": "* * * * *", "queue": "q", "attributes": {"sluice-x": "1"}}),
            400,
            "reserved",
        ),
        (
            json!({"cron": "* * * * *", "queue": "q", "body": "a", "body_base64": "YQ=="}),
            400,
            "not both",
        ),
        (json!({"queue": "q"}), 400, "cron"),
    ];
    for (body, status, says) in cases {
        let (got, answer) = server.put_json("/v1/schedules/s", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body} → {message}");
    }
    let (status, body) = server
        .put_json(
            "/v1/schedules/bad.name",
            json!({"cron": "* * * * *", "queue": "q"}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (_, list) = server.get("/v1/schedules").await;
    assert_eq!(list["schedules"], json!([]), "nothing was stored");
}
