//! The `backlog` phase: a `sluice serve` fills with a deep backlog and drains it while its
//! resident memory is sampled.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::BenchArgs;
use crate::child::{Child, authorized_client, wait_acked};
use crate::components::Components;
use crate::load::body;
use crate::memory::rss_kib;
use crate::report::Report;

/// A `sluice serve` takes `--backlog-messages` (5M) over HTTP from four batch producers while
/// nothing consumes, then a `sum` trigger drains them; its resident memory is sampled every
/// 100 ms throughout, and the peak is held to issue 12's 300 MiB. The drain rate is held
/// against the drain phase's (a 200k backlog), which a backlog 25 times deeper should keep.
pub(crate) async fn run(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    dir: &Path,
) -> anyhow::Result<()> {
    let drain_rate = report.get("drain.msgs_per_s");
    let http = authorized_client()?;
    let child = Child::spawn(dir)?;
    let url = child.url.clone();
    let n = args.backlog_messages.max(1);
    let queue = "bench-backlog";
    let r = http
        .post(format!("{url}/v1/queues"))
        .json(&json!({ "name": queue }))
        .send()
        .await?;
    ensure!(r.status().is_success(), "create queue: {}", r.status());
    let r = http
        .put(format!("{url}/v1/functions/{queue}"))
        .header("content-type", "application/wasm")
        .body(c.sum.clone())
        .send()
        .await?;
    ensure!(r.status().is_success(), "deploy: {}", r.status());

    // The sampler: the peak of VmRSS (KiB) until told to stop.
    let pid = child.process.id();
    let peak_kib = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak_kib, sampling) = (peak_kib.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            while sampling.load(Ordering::Relaxed) {
                every.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    peak_kib.fetch_max(kib, Ordering::Relaxed);
                }
            }
        })
    };

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let per_request = 1_000u64;
    let mut producers = JoinSet::new();
    for _ in 0..4 {
        let (http, url, next, size) = (
            http.clone(),
            format!("{url}/v1/queues/{queue}/messages/batch"),
            next.clone(),
            args.body_bytes,
        );
        producers.spawn(async move {
            loop {
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                if first >= n {
                    return anyhow::Ok(());
                }
                let messages: Vec<Value> = (first..(first + per_request).min(n))
                    .map(|s| json!({"body": body(s, size)}))
                    .collect();
                let r = http
                    .post(&url)
                    .json(&json!({ "messages": messages }))
                    .send()
                    .await?;
                ensure!(r.status().is_success(), "batch enqueue: {}", r.status());
                r.bytes().await?;
            }
        });
    }
    while let Some(r) = producers.join_next().await {
        r??;
    }
    let filled = started.elapsed();
    let fill_peak = peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;

    let draining = Instant::now();
    let r = http
        .put(format!("{url}/v1/functions/{queue}/trigger"))
        .json(&json!({
            "queue": queue,
            "batch_size": args.batch_size,
            "max_wait_ms": 0,
            "max_concurrency": args.concurrency,
        }))
        .send()
        .await?;
    ensure!(r.status().is_success(), "trigger: {}", r.status());
    let within = Duration::from_secs(60) + Duration::from_millis(n / 10);
    wait_acked(&http, &url, queue, n, within).await?;
    let drained = draining.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let peak = peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;

    report.add(
        format!("backlog.fill_msgs_per_s ({n} messages)"),
        n as f64 / filled.as_secs_f64(),
        "msg/s",
    );
    let rate = n as f64 / drained.as_secs_f64();
    report.add(
        format!("backlog.drain_msgs_per_s ({n} messages)"),
        rate,
        "msg/s",
    );
    if let Some(drain) = drain_rate {
        report.target("backlog.drain_to_drain_phase", rate / drain, "x", ">=", 0.9);
    }
    report.add("backlog.rss_peak_while_filling_mib", fill_peak, "MiB");
    report.target("backlog.rss_peak_mib", peak, "MiB", "<=", 300.0);
    Ok(())
}
