//! The `reply` phase: request-reply round trips through `examples/reply`.

use std::time::Instant;

use anyhow::ensure;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;

/// Sequential request-reply round trips of the reply phase.
const REPLY_ROUND_TRIPS: u64 = 1_000;

/// Request-reply: [`REPLY_ROUND_TRIPS`] requests one after another, each a single enqueue
/// with `Sluice-Reply-Timeout-Ms` answered by `examples/reply` (batch 1) through its
/// outbox; the time from sending the request to holding the reply, which spans the enqueue's
/// commit, the wake-up, a lease, a fresh instance, the settle's commit with the reply, and
/// the waiter's wake-up.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    host.queue("bench-reply", json!({})).await?;
    host.deploy("bench-quote", &c.reply, "").await?;
    host.trigger("bench-quote", "bench-reply", 1, 1, false)
        .await?;
    let url = format!("{}/v1/queues/bench-reply/messages", host.url);
    let mut round_trips = Histogram::<u64>::new(3)?;
    let rounds = if host.args.quick {
        100
    } else {
        REPLY_ROUND_TRIPS
    };
    for qty in 0..rounds {
        let body = format!(r#"{{"sku": "C-3", "qty": {}}}"#, qty % 1000 + 1);
        let started = Instant::now();
        let answer = host
            .http
            .post(&url)
            .header("sluice-reply-timeout-ms", "10000")
            .body(body)
            .send()
            .await?;
        let status = answer.status();
        let reply: Value = answer.json().await?;
        ensure!(status.is_success(), "request-reply: {status}: {reply}");
        round_trips.record(started.elapsed().as_micros() as u64)?;
    }
    report.latency("reply.round_trip", &round_trips, None);
    Ok(())
}
