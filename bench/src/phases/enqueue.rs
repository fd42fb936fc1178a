//! The `enqueue` phase: HTTP batch enqueue (`--batch-clients` × `--batch-size`) and
//! single-message enqueue (`--single-clients`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::ensure;
use bytes::Bytes;
use serde_json::json;
use tokio::task::JoinSet;

use crate::host::Bench;
use crate::load::body;
use crate::report::Report;

/// HTTP batch enqueue (4 × 100) and single-message enqueue (64 clients).
pub(crate) async fn run(host: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let a = &host.args;
    host.queue("bench-enqueue", json!({})).await?;
    let rate = host
        .post_batches("/v1/queues/bench-enqueue/messages/batch")
        .await?;
    report.target("enqueue.batch_msgs_per_s", rate, "msg/s", ">=", 150_000.0);
    host.store.purge("bench-enqueue").await?;

    let url = format!("{}/v1/queues/bench-enqueue/messages", host.url);
    let payload = Bytes::from(body(0, a.body_bytes));
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + a.duration;
    let start = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..a.single_clients.max(1) {
        let (http, url, payload, done) = (
            host.http.clone(),
            url.clone(),
            payload.clone(),
            done.clone(),
        );
        clients.spawn(async move {
            while Instant::now() < end {
                let r = http.post(&url).body(payload.clone()).send().await?;
                ensure!(r.status().is_success(), "enqueue: {}", r.status());
                r.bytes().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = clients.join_next().await {
        r??;
    }
    report.target(
        "enqueue.single_msgs_per_s",
        done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        "msg/s",
        ">=",
        15_000.0,
    );
    host.store.purge("bench-enqueue").await?;
    Ok(())
}
