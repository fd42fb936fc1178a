//! Hostile handlers under load: while a well-behaved trigger drains a backlog, other functions
//! trap, loop forever, exhaust their memory and recurse without bound on every batch. The host
//! stays up, every hostile message ends in its dead-letter queue, and the backlog drains.

use std::time::Duration;

use serde_json::json;

use crate::support::{Server, guest, wait_for};

const BACKLOG: usize = 5_000;
const HOSTILE_MESSAGES: usize = 20;

/// Function name, guest, extra config.
const HOSTILE: [(&str, &str, &str); 5] = [
    ("trap", "trap", "timeout_ms=2000"),
    ("panic", "panic", "timeout_ms=2000"),
    ("loop", "loop", "timeout_ms=1000"),
    ("oom", "oom", "timeout_ms=5000&memory_mb=8"),
    ("recurse", "recurse", "timeout_ms=5000"),
];

#[tokio::test]
async fn hostile_handlers_dead_letter_while_a_good_trigger_drains_its_backlog() {
    let (server, _dir) = Server::start().await;
    server
        .create_queue(json!({"name": "good", "visibility_timeout_ms": 30_000}))
        .await;
    server
        .enqueue_all(
            "good",
            (0..BACKLOG).map(|i| json!({"body": format!("m{i}")})),
        )
        .await;
    for (name, wasm, config) in HOSTILE {
        let dlq = format!("{name}-dlq");
        server.create_queue(json!({"name": dlq})).await;
        server
            .create_queue(json!({
                "name": name,
                "visibility_timeout_ms": 1000,
                "max_attempts": 2,
                "backoff": {"initial_ms": 10, "max_ms": 50, "jitter": false},
                "dead_letter_queue": dlq
            }))
            .await;
        server
            .enqueue_all(
                name,
                (0..HOSTILE_MESSAGES).map(|i| json!({"body": format!("{name}-{i}")})),
            )
            .await;
        server.deploy(name, guest(wasm), config).await;
        server
            .trigger(
                name,
                json!({"queue": name, "batch_size": 2, "max_concurrency": 2}),
            )
            .await;
    }
    server.deploy("good", guest("ok"), "").await;
    server
        .trigger(
            "good",
            json!({"queue": "good", "batch_size": 50, "max_concurrency": 2}),
        )
        .await;

    let empty =
        |s: &serde_json::Value| s["visible"] == 0 && s["delayed"] == 0 && s["in_flight"] == 0;
    let done = wait_for(Duration::from_secs(180), || async {
        let mut all = empty(&server.stats("good").await);
        for (name, _, _) in HOSTILE {
            all &= empty(&server.stats(name).await);
        }
        all
    })
    .await;
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200, "the host stays up");
    let good = server.stats("good").await;
    let mut report = format!("good: acked {}", good["acked_total"]);
    for (name, _, _) in HOSTILE {
        let stats = server.stats(name).await;
        let dlq = server.stats(&format!("{name}-dlq")).await;
        report += &format!(
            "; {name}: retried {} dead-lettered {} (dlq holds {})",
            stats["retried_total"], stats["dead_lettered_total"], dlq["visible"]
        );
    }
    println!("hostile handlers: {report}");
    assert!(done, "queues did not drain: {report}");
    assert_eq!(good["acked_total"], BACKLOG as u64, "{report}");
    assert_eq!(good["retried_total"], 0, "{report}");
    for (name, _, _) in HOSTILE {
        let dlq = server.stats(&format!("{name}-dlq")).await;
        assert_eq!(
            dlq["visible"], HOSTILE_MESSAGES as u64,
            "every `{name}` message is dead-lettered: {report}"
        );
    }
}
