//! The `latency` phase: send → handler start under paced load, and afterwards (the host
//! stopped) the same loads against the SQLite floor.

use std::path::Path;

use serde_json::json;

use crate::BenchArgs;
use crate::components::Components;
use crate::floor::{self, sqlite};
use crate::host::Bench;
use crate::load::histogram;
use crate::report::Report;

/// Latency under load (issue 12, target 4): single enqueues paced at 5,000 msg/s, then
/// batches of 10 paced at half of this run's end-to-end maximum (the `e2e` phase's figure;
/// without that phase, half of 5,000 × 10). Send → handler start, HTTP included; [`floor`]
/// reads the two loads' rates and p99s from the report once the host has stopped.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    host.queue("bench-latency", json!({})).await?;
    host.deploy("bench-latency", &c.sum, "").await?;
    host.trigger(
        "bench-latency",
        "bench-latency",
        a.batch_size,
        a.concurrency,
        false,
    )
    .await?;
    let single = 5_000.0;
    let (from_ack, from_send, _, _) = host.paced("bench-latency", single, 1, a.duration).await?;
    report.add("latency.single.offered_msgs_per_s", single, "msg/s");
    report.latency("latency.single.commit_to_start", &from_ack, None);
    report.latency("latency.single.send_to_start", &from_send, Some(1.0));

    let e2e_rate = report.get("e2e.sluice_msgs_per_s");
    let half = e2e_rate.unwrap_or(single * 10.0) / 2.0;
    let (from_ack, from_send, _, _) = host.paced("bench-latency", half, 10, a.duration).await?;
    report.add(
        "latency.batch_10.offered_msgs_per_s (half of e2e)",
        half,
        "msg/s",
    );
    report.latency("latency.batch_10.commit_to_start", &from_ack, None);
    report.latency("latency.batch_10.send_to_start", &from_send, Some(5.0));
    Ok(())
}

/// Reports `latencies` under `key`; returns their p99 in milliseconds (never zero).
fn record(report: &mut Report, key: &str, latencies: &[std::time::Duration]) -> f64 {
    let mut hist = histogram();
    for latency in latencies {
        hist.saturating_record(latency.as_micros() as u64);
    }
    report.latency(key, &hist, None);
    (hist.value_at_quantile(0.99) as f64 / 1000.0).max(f64::MIN_POSITIVE)
}

/// The `latency` phase's two loads: their names and messages per request.
const LOADS: [(&str, usize); 2] = [("single", 1), ("batch_10", 10)];

/// The `latency` phase's loads against the SQLite floor ([`sqlite::measure_latency`]: a group
/// commit with its fsync, then a lease, nothing else), in-process and behind HTTP, after the
/// host has stopped: how much of the host's send → start p99 the disk alone already costs, and
/// the disk and the transport together.
pub(crate) async fn floor(report: &mut Report, args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for (i, (name, per_request)) in LOADS.into_iter().enumerate() {
        // The rate and p99 each load ran at on the host, as the phase reported them.
        let offered = report
            .rows
            .iter()
            .find(|row| {
                row.key
                    .starts_with(&format!("latency.{name}.offered_msgs_per_s"))
            })
            .map(|row| row.value);
        let (Some(rate), Some(p99_ms)) = (
            offered,
            report.get(&format!("latency.{name}.send_to_start.p99")),
        ) else {
            continue;
        };
        let (dir, duration, body) = (dir.join(i.to_string()), args.duration, args.body_bytes);
        let latencies = tokio::task::spawn_blocking({
            let dir = dir.join("in-process");
            move || sqlite::measure_latency(&dir, rate, per_request, duration, body)
        })
        .await??;
        let floor_p99 = record(
            report,
            &format!("latency.{name}.floor_send_to_start"),
            &latencies,
        );
        report.add(
            format!("latency.{name}.send_to_start_p99_to_floor"),
            p99_ms / floor_p99,
            "x",
        );
        // The same floor with its requests sent over HTTP, paced as the host's were: how much
        // of the host's p99 the transport every producer uses already costs.
        let latencies =
            floor::http::latency(&http, &dir.join("http"), rate, per_request, duration, body)
                .await?;
        let http_p99 = record(
            report,
            &format!("latency.{name}.http_floor_send_to_start"),
            &latencies,
        );
        report.add(
            format!("latency.{name}.http_floor_p99_to_floor"),
            http_p99 / floor_p99,
            "x",
        );
        report.add(
            format!("latency.{name}.send_to_start_p99_to_http_floor"),
            p99_ms / http_p99,
            "x",
        );
    }
    Ok(())
}
