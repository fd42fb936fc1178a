//! The `state` phase: a backlog drained through `examples/counter` (an increment and a set per
//! message, committed with each batch's ack) beside the same drain through a no-op, and an
//! operator's set + get round trip through the HTTP API.

use std::time::Instant;

use anyhow::ensure;
use reqwest::Method;
use serde_json::json;

use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;

/// The customers the backlog's messages name (`count:<customer>` keys in bucket `counts`).
const CUSTOMERS: u64 = 100;

pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    let n = a.messages;
    host.call(Method::PUT, "/v1/kv/counts", Some(json!({})))
        .await?;
    host.call(
        Method::PUT,
        "/v1/kv/seen",
        Some(json!({"ttl_ms": 3_600_000})),
    )
    .await?;
    host.queue("bench-state", json!({})).await?;
    host.deploy(
        "bench-counter",
        &c.counter,
        "kv_bucket=counts&kv_bucket=seen",
    )
    .await?;
    host.trigger(
        "bench-counter",
        "bench-state",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    // One customer per run of n / CUSTOMERS messages, so a batch touches a few keys, as a
    // real stream of orders would.
    for customer in 0..CUSTOMERS {
        let share = n / CUSTOMERS + u64::from(customer < n % CUSTOMERS);
        let name = format!("c{customer}");
        host.backlog("bench-state", share, &[("customer", &name)])
            .await?;
    }
    let counter = host
        .drain_backlog("bench-counter", "bench-state", n)
        .await?;
    // Every message counted exactly once.
    let mut counted = 0;
    for customer in 0..CUSTOMERS {
        let key = format!("/v1/kv/counts/keys/count:c{customer}");
        if let Ok(text) = host.text(&key).await {
            counted += text.parse::<u64>()?;
        }
    }
    ensure!(
        counted == n,
        "the counter counted {counted} of {n} messages"
    );

    host.queue("bench-state-plain", json!({})).await?;
    host.deploy("bench-state-noop", &c.ok, "").await?;
    host.trigger(
        "bench-state-noop",
        "bench-state-plain",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    let plain = host
        .drain_once("bench-state-noop", "bench-state-plain", n)
        .await?;

    // An operator's write, committed at once, and its read, one after the other.
    let trips: u32 = if a.quick { 100 } else { 1_000 };
    let started = Instant::now();
    for i in 0..trips {
        let key = format!("/v1/kv/counts/keys/trip:{i}");
        host.put_bytes(&key, i.to_string().into_bytes()).await?;
        ensure!(
            host.text(&key).await? == i.to_string(),
            "{key} read back wrong"
        );
    }
    let round_trip_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(trips);

    report.add("state.counter_drain_per_s", counter, "msg/s");
    report.add("state.noop_drain_per_s", plain, "msg/s");
    report.target("state.to_noop", counter / plain, "x", ">=", 0.7);
    report.add("state.set_get_round_trip_us", round_trip_us, "us");
    Ok(())
}
