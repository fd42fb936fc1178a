//! The `steady` phase: paced single enqueues with a trigger consuming, then saturating batch
//! producers (the `saturation.*` figures).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::ensure;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::components::Components;
use crate::host::Bench;
use crate::load::{answered_ids, body};
use crate::report::Report;
use crate::starts::track;

/// Producers and the trigger together: paced single enqueues at `rate`, then saturating
/// batch producers; returns the saturation's enqueued + handled msg/s.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    host.queue("bench-steady", json!({})).await?;
    host.deploy("bench-steady", &c.sum, "").await?;
    host.trigger(
        "bench-steady",
        "bench-steady",
        a.batch_size,
        a.concurrency,
        false,
    )
    .await?;

    let paced = host
        .paced("bench-steady", a.rate as f64, 1, a.duration)
        .await?;
    let (from_ack, from_send, n, elapsed) = paced;
    let mut requests = JoinSet::new();
    report.add("steady.offered_msgs_per_s", a.rate as f64, "msg/s");
    report.add("steady.handled_msgs_per_s", n as f64 / elapsed, "msg/s");
    report.latency("steady.commit_to_start_lower", &from_ack, Some(10.0));
    report.latency("steady.send_to_start_upper", &from_send, None);

    // Saturation: batch producers as fast as they go for `duration` (and at most `capacity`
    // messages), the trigger draining.
    let capacity = (a.messages as usize * 4).clamp(100_000, 4_000_000);
    let tracker = track("bench-steady", true);
    let url = format!("{}/v1/queues/bench-steady/messages/batch", host.url);
    let next = Arc::new(AtomicU64::new(0));
    let batch = a.batch_size.max(1) as u64;
    let end = Instant::now() + a.duration;
    let started = Instant::now();
    for _ in 0..a.batch_clients.max(1) {
        let (http, url, next, t, size) = (
            host.http.clone(),
            url.clone(),
            next.clone(),
            tracker.clone(),
            a.body_bytes,
        );
        requests.spawn(async move {
            while Instant::now() < end {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first + batch > capacity as u64 {
                    break;
                }
                let messages: Vec<Value> = (first..first + batch)
                    .map(|s| json!({"body": body(s, size)}))
                    .collect();
                let sent = t.now();
                let r = http
                    .post(&url)
                    .json(&json!({"messages": messages}))
                    .send()
                    .await?;
                ensure!(r.status().is_success(), "batch enqueue: {}", r.status());
                let acked = t.now();
                t.sent(answered_ids(&r.json().await?), sent, acked);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = requests.join_next().await {
        r??;
    }
    let window = started.elapsed().as_secs_f64();
    let handled = tracker.started.load(Ordering::Relaxed);
    let produced = next.load(Ordering::Relaxed).min(capacity as u64);
    host.wait_empty(&["bench-steady"], host.drain_deadline())
        .await?;
    let (from_ack, _, _) = tracker.latencies();
    report.add(
        "saturation.enqueued_msgs_per_s",
        produced as f64 / window,
        "msg/s",
    );
    report.add(
        "saturation.handled_msgs_per_s",
        handled as f64 / window,
        "msg/s",
    );
    report.target(
        "saturation.handled_to_enqueued",
        handled as f64 / produced.max(1) as f64,
        "x",
        ">=",
        0.9,
    );
    report.latency("saturation.commit_to_start_lower", &from_ack, None);
    host.trigger(
        "bench-steady",
        "bench-steady",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    Ok(())
}
