//! The `topics` phase: publishing to a topic with ten subscribed queues, beside the batch
//! enqueue of the same run.

use serde_json::json;

use crate::host::Bench;
use crate::report::Report;

/// Queues subscribed to the `topics` phase's topic.
const FANOUT_QUEUES: usize = 10;

/// Fan-out: publishing to a topic with [`FANOUT_QUEUES`] subscribed queues, the same
/// batches and clients as the batch enqueue; the ratio to that enqueue in the same run is
/// the cost of the copies.
pub(crate) async fn run(host: &Bench, report: &mut Report) -> anyhow::Result<()> {
    host.call(
        reqwest::Method::POST,
        "/v1/topics",
        Some(json!({"name": "bench-topic"})),
    )
    .await?;
    let queues: Vec<String> = (0..FANOUT_QUEUES)
        .map(|i| format!("bench-fanout-{i}"))
        .collect();
    for queue in &queues {
        host.queue(queue, json!({})).await?;
        host.call(
            reqwest::Method::PUT,
            &format!("/v1/topics/bench-topic/subscriptions/{queue}"),
            Some(json!({})),
        )
        .await?;
    }
    let rate = host
        .post_batches("/v1/topics/bench-topic/messages/batch")
        .await?;
    report.add("topics.fanout_10.publish_msgs_per_s", rate, "msg/s");
    report.add(
        "topics.fanout_10.copies_per_s",
        rate * FANOUT_QUEUES as f64,
        "msg/s",
    );
    if let Some(enqueue) = report.get("enqueue.batch_msgs_per_s") {
        report.add("topics.fanout_10.publish_to_enqueue", rate / enqueue, "x");
        report.target(
            "topics.fanout_10.copies_to_enqueue",
            rate * FANOUT_QUEUES as f64 / enqueue,
            "x",
            ">=",
            0.7,
        );
    }
    for queue in &queues {
        host.store.unsubscribe("bench-topic", queue).await?;
        host.store.purge(queue).await?;
    }
    Ok(())
}
