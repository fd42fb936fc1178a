//! The `depth` phase: costs that must not grow with a queue's depth.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::json;
use sluice::store::NewMessage;
use tokio::task::JoinSet;

use crate::host::Bench;
use crate::load::{SEQ_DIGITS, body, histogram};
use crate::report::Report;

/// Costs that must not grow with a queue's depth, on a queue of `--depth-messages`: peek
/// near its tail, its stats, and the enqueue latency of another queue while it is purged.
pub(crate) async fn run(host: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let n = host.args.depth_messages;
    let (deep, other) = ("bench-deep", "bench-other");
    host.queue(deep, json!({})).await?;
    host.queue(other, json!({})).await?;
    let start = Instant::now();
    let mut ids = Vec::with_capacity(2);
    let mut seq = 0;
    while seq < n {
        let chunk: Vec<NewMessage> = (seq..n.min(seq + 5_000))
            .map(|s| NewMessage {
                body: body(s, SEQ_DIGITS).into_bytes(),
                ..NewMessage::default()
            })
            .collect();
        seq += chunk.len() as u64;
        let enqueued = host.store.enqueue(deep, chunk).await?;
        if seq >= n * 95 / 100 && ids.is_empty() {
            ids.extend(enqueued.first().map(|e| e.id.clone()));
        }
    }
    report.add(
        "depth.fill_msgs_per_s",
        n as f64 / start.elapsed().as_secs_f64(),
        "msg/s",
    );
    let after = ids.pop().context("no message enqueued")?;

    // Each read once to warm the caches, then timed.
    const READS: usize = 50;
    let timed = |path: String| async move {
        let mut hist = histogram();
        for i in 0..=READS {
            let t = Instant::now();
            host.call(reqwest::Method::GET, &path, None).await?;
            if i > 0 {
                hist.saturating_record(t.elapsed().as_micros() as u64);
            }
        }
        anyhow::Ok(hist)
    };
    let peek = timed(format!("/v1/queues/{deep}/messages?limit=1&after={after}")).await?;
    report.latency("depth.peek_tail", &peek, Some(50.0));
    let stats = timed(format!("/v1/queues/{deep}")).await?;
    report.latency("depth.stats", &stats, Some(50.0));

    // Another queue's enqueues, timed one by one from a few clients, while the deep queue is
    // purged over HTTP.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = JoinSet::new();
    for _ in 0..4 {
        let (http, stop) = (host.http.clone(), stop.clone());
        let url = format!("{}/v1/queues/{other}/messages", host.url);
        clients.spawn(async move {
            let mut hist = histogram();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = http.post(&url).body("x").send().await?;
                ensure!(r.status().is_success(), "enqueue: {}", r.status());
                r.bytes().await?;
                hist.saturating_record(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(hist)
        });
    }
    let start = Instant::now();
    let purged = host
        .call(
            reqwest::Method::POST,
            &format!("/v1/queues/{deep}/purge"),
            Some(json!({})),
        )
        .await?;
    let purge_time = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut during = histogram();
    while let Some(hist) = clients.join_next().await {
        during.add(hist??)?;
    }
    ensure!(
        purged["purged"] == json!(n),
        "purge removed {} of {n} messages",
        purged["purged"]
    );
    report.add("depth.purge_s", purge_time.as_secs_f64(), "s");
    report.add("depth.other_enqueues_during_purge", during.len() as f64, "");
    report.latency("depth.other_enqueue_during_purge", &during, Some(50.0));
    host.store.purge(other).await?;
    Ok(())
}
