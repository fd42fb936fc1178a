//! The `hostile` phase: a well-behaved trigger alone, then beside functions that fail every
//! batch (trap, endless loop, out of memory, stack overflow).

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;

use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;

pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    let n = (a.messages / 2).max(1000);
    host.queue("bench-good", json!({})).await?;
    host.deploy("bench-good", &c.sum, "").await?;
    host.trigger(
        "bench-good",
        "bench-good",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    let alone = host.drain_once("bench-good", "bench-good", n).await?;

    let failing = json!({
        "max_attempts": 1000,
        "backoff": {"initial_ms": 1, "multiplier": 1.0, "max_ms": 1, "jitter": false},
    });
    let hostile: [(&str, &[u8], &str); 4] = [
        ("bench-trap", &c.trap, ""),
        ("bench-loop", &c.looping, "timeout_ms=1000"),
        ("bench-oom", &c.oom, "memory_mb=16"),
        ("bench-recurse", &c.recurse, ""),
    ];
    for (name, wasm, query) in hostile {
        host.queue(name, failing.clone()).await?;
        host.deploy(name, wasm, query).await?;
        host.backlog(name, 1000, &[]).await?;
        host.trigger(name, name, 10, 1, false).await?;
    }
    // Measure only once every hostile function is failing batches.
    let end = Instant::now() + Duration::from_secs(30);
    for (name, _, _) in hostile {
        loop {
            let stats = host.store.get_queue(name).await?.stats;
            if stats.retried_total + stats.dead_lettered_total > 0 {
                break;
            }
            ensure!(
                Instant::now() < end,
                "hostile function {name} never failed a batch"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let with = host.drain_once("bench-good", "bench-good", n).await?;
    for (name, _, _) in hostile {
        host.trigger(name, name, 10, 1, true).await?;
    }
    report.add("hostile.alone_msgs_per_s", alone, "msg/s");
    report.add("hostile.with_hostile_msgs_per_s", with, "msg/s");
    report.target("hostile.ratio", with / alone, "x", ">=", 0.8);
    Ok(())
}
