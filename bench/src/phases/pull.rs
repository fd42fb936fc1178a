//! The `pull` phase: HTTP pull consumers draining a backlog, then long polls woken by enqueues.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::ensure;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::host::Bench;
use crate::load::histogram;
use crate::report::Report;

/// Pull consumers over HTTP: the same backlog as the drain, received in batches and acked by
/// receipt by `concurrency` clients; then long polls woken by single enqueues.
pub(crate) async fn run(host: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let a = &host.args;
    let queue = "bench-pull";
    host.queue(queue, json!({})).await?;
    host.backlog(queue, a.messages, &[]).await?;
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut consumers = JoinSet::new();
    for _ in 0..a.concurrency {
        let (http, received) = (host.http.clone(), received.clone());
        let (receive, ack) = (
            format!("{}/v1/queues/{queue}/messages/receive", host.url),
            format!("{}/v1/queues/{queue}/messages/ack", host.url),
        );
        let batch = a.batch_size;
        consumers.spawn(async move {
            loop {
                let r = http
                    .post(&receive)
                    .json(&json!({"max_messages": batch}))
                    .send()
                    .await?;
                ensure!(r.status().is_success(), "receive: {}", r.status());
                let answer: Value = r.json().await?;
                let receipts: Vec<&Value> = answer["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| &m["receipt"])
                    .collect();
                if receipts.is_empty() {
                    return anyhow::Ok(());
                }
                let r = http
                    .post(&ack)
                    .json(&json!({ "receipts": receipts }))
                    .send()
                    .await?;
                ensure!(r.status().is_success(), "ack: {}", r.status());
                received.fetch_add(receipts.len() as u64, Ordering::Relaxed);
            }
        });
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let rate = received.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    ensure!(
        received.load(Ordering::Relaxed) == a.messages,
        "pulled {} of {}",
        received.load(Ordering::Relaxed),
        a.messages
    );
    report.add("pull.http_msgs_per_s", rate, "msg/s");
    if let Some(drain) = report.get("drain.msgs_per_s") {
        report.target("pull.ratio_to_drain", rate / drain, "x", ">=", 0.8);
    }

    // Long polling: one consumer waits, one producer enqueues; from the enqueue's request
    // (so its commit is included) to the long poll's answer.
    let mut wake = histogram();
    let receive = format!("{}/v1/queues/{queue}/messages/receive", host.url);
    let enqueue = format!("{}/v1/queues/{queue}/messages", host.url);
    for _ in 0..200 {
        let http = host.http.clone();
        let receive = receive.clone();
        let waiting = tokio::spawn(async move {
            let r = http
                .post(&receive)
                .json(&json!({"wait_ms": 10_000, "max_messages": 1}))
                .send()
                .await?;
            let answer: Value = r.json().await?;
            anyhow::Ok((Instant::now(), answer))
        });
        let sent = Instant::now();
        let r = host.http.post(&enqueue).body("wake").send().await?;
        ensure!(r.status().is_success(), "enqueue: {}", r.status());
        let (answered, answer) = waiting.await??;
        let receipt = answer["messages"][0]["receipt"].clone();
        ensure!(
            !receipt.is_null(),
            "the long poll returned nothing: {answer}"
        );
        host.call(
            reqwest::Method::POST,
            &format!("/v1/queues/{queue}/messages/ack"),
            Some(json!({ "receipts": [receipt] })),
        )
        .await?;
        wake.saturating_record(answered.saturating_duration_since(sent).as_micros() as u64);
    }
    report.latency("pull.enqueue_to_long_poll_answer", &wake, Some(5.0));
    Ok(())
}
