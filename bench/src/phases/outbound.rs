//! The `outbound` phase: handlers that wait on the network (the webhook example against a slow
//! local upstream), beside the same trigger shape with a no-op.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::components::Components;
use crate::host::Bench;
use crate::memory::ThreadSampler;
use crate::report::Report;
use crate::starts::track;

/// Invocations the `outbound` phase's trigger runs at once, and how long its upstream takes.
const OUTBOUND_CONCURRENCY: u32 = 256;
const UPSTREAM_LATENCY: Duration = Duration::from_millis(50);

/// An HTTP server on loopback that answers every request with 200 after `latency`, as a slow
/// API would; it serves until the process ends.
async fn slow_upstream(latency: Duration) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(latency).await;
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Handlers that wait on the network: the webhook example at batch 1 and concurrency
/// [`OUTBOUND_CONCURRENCY`] against a local upstream that answers every POST after
/// [`UPSTREAM_LATENCY`]. The ceiling is the lower of what the upstream allows (concurrency
/// ÷ latency) and what the host does at batch 1 with a no-op handler (the same trigger
/// shape, no network), both measured here; the host's threads and resident memory are
/// read at the end of the outbound drain.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    let n = if a.quick { 2_000 } else { 20_000 };
    let upstream = slow_upstream(UPSTREAM_LATENCY).await?;
    let url = format!("http://{upstream}/hook");
    let allow = format!("http://{upstream}");
    let query = serde_urlencoded::to_string([
        ("env", "WEBHOOK_SECRET=bench"),
        ("allowed_outbound_host", allow.as_str()),
    ])?;
    host.queue("bench-outbound", json!({})).await?;
    host.deploy("bench-webhook", &c.webhook, &query).await?;
    host.backlog("bench-outbound", n, &[("webhook-url", &url)])
        .await?;
    let tracker = track("bench-outbound", false);
    let threads = ThreadSampler::start();
    host.trigger(
        "bench-webhook",
        "bench-outbound",
        1,
        OUTBOUND_CONCURRENCY,
        false,
    )
    .await?;
    let end = host
        .wait_empty(&["bench-outbound"], host.drain_deadline())
        .await?;
    let (max_threads, max_rss) = threads.stop().await;
    let first = tracker.first_start().context("no handler started")?;
    let rate = n as f64 / end.duration_since(first).as_secs_f64();

    host.queue("bench-outbound-noop", json!({})).await?;
    host.deploy("bench-noop", &c.ok, "").await?;
    host.trigger(
        "bench-noop",
        "bench-outbound-noop",
        1,
        OUTBOUND_CONCURRENCY,
        true,
    )
    .await?;
    host.backlog("bench-outbound-noop", n, &[]).await?;
    let tracker = track("bench-outbound-noop", false);
    host.trigger(
        "bench-noop",
        "bench-outbound-noop",
        1,
        OUTBOUND_CONCURRENCY,
        false,
    )
    .await?;
    let end = host
        .wait_empty(&["bench-outbound-noop"], host.drain_deadline())
        .await?;
    let first = tracker.first_start().context("no handler started")?;
    let noop = n as f64 / end.duration_since(first).as_secs_f64();

    let ideal = OUTBOUND_CONCURRENCY as f64 / UPSTREAM_LATENCY.as_secs_f64();
    report.add("outbound.invocations_per_s", rate, "inv/s");
    report.add("outbound.upstream_bound_per_s", ideal, "inv/s");
    report.add("outbound.noop_batch_1_drain_per_s", noop, "inv/s");
    report.target(
        "outbound.to_ceiling",
        rate / ideal.min(noop),
        "x",
        ">=",
        0.7,
    );
    report.target("outbound.max_threads", max_threads as f64, "", "<=", 64.0);
    report.add("outbound.max_rss_mib", max_rss as f64 / 1048576.0, "MiB");
    Ok(())
}
