//! The `chain` phase: a backlog through two steps, `ok` forwarding each message to the second
//! queue's `sum`.

use anyhow::{Context, ensure};
use serde_json::json;

use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;
use crate::starts::track;

/// A backlog through two steps: `ok` forwards each message to the second queue, `sum` acks.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    host.queue("bench-chain-a", json!({})).await?;
    host.queue("bench-chain-b", json!({})).await?;
    host.deploy("bench-hop", &c.ok, "").await?;
    host.deploy("bench-chain-sum", &c.sum, "").await?;
    host.trigger(
        "bench-hop",
        "bench-chain-a",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    host.trigger(
        "bench-chain-sum",
        "bench-chain-b",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    host.backlog("bench-chain-a", a.messages, &[("to", "bench-chain-b")])
        .await?;
    let tracker = track("bench-chain-a", false);
    host.trigger(
        "bench-chain-sum",
        "bench-chain-b",
        a.batch_size,
        a.concurrency,
        false,
    )
    .await?;
    host.trigger(
        "bench-hop",
        "bench-chain-a",
        a.batch_size,
        a.concurrency,
        false,
    )
    .await?;
    let end = host
        .wait_empty(&["bench-chain-a", "bench-chain-b"], host.drain_deadline())
        .await?;
    let first = tracker.first_start().context("no handler started")?;
    report.add(
        "chain.msgs_per_s",
        a.messages as f64 / end.duration_since(first).as_secs_f64(),
        "msg/s",
    );
    let b = host.store.get_queue("bench-chain-b").await?.stats;
    ensure!(
        b.acked_total == a.messages,
        "chain delivered {} of {}",
        b.acked_total,
        a.messages
    );
    Ok(())
}
