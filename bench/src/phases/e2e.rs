//! The `e2e` phase: one producer waiting for each batch's 2xx while a trigger consumes, and
//! afterwards (the host stopped) the same shape on its peers: the strong plain queue on SQLite
//! and, with `--peer-database`, on PostgreSQL, each in-process and behind HTTP.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use sluice_test_support::testdb::TestDatabase;

use crate::BenchArgs;
use crate::components::Components;
use crate::floor::plain::Take;
use crate::floor::{self, on_floor};
use crate::host::Bench;
use crate::load::BatchRequests;
use crate::report::Report;

/// End to end, shaped as the peers measure it: one producer that sends batches over HTTP
/// and waits for each one's 2xx (its durable commit) while a trigger consumes with `sum`;
/// messages ÷ the time until the last one is acknowledged.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    host.queue("bench-e2e", json!({})).await?;
    host.deploy("bench-e2e", &c.sum, "").await?;
    host.trigger("bench-e2e", "bench-e2e", a.batch_size, a.concurrency, false)
        .await?;
    let url = format!("{}/v1/queues/bench-e2e/messages/batch", host.url);
    let batch = u64::from(a.batch_size.max(1));
    let requests = BatchRequests::new(batch, a.messages, a.body_bytes)?;
    let commits = host.counter("sluice_store_commits_total").await?;
    let started = Instant::now();
    requests.send(&host.http, &url, a.messages).await?;
    let produced = started.elapsed();
    let done = host
        .wait_empty(&["bench-e2e"], host.drain_deadline())
        .await?;
    let commits = host.counter("sluice_store_commits_total").await? - commits;
    host.trigger("bench-e2e", "bench-e2e", a.batch_size, a.concurrency, true)
        .await?;
    let rate = a.messages as f64 / done.duration_since(started).as_secs_f64();
    report.add("e2e.sluice_msgs_per_s", rate, "msg/s");
    // Where it waits: the producer alone (each batch's round trip, a durable commit included),
    // and how many commits (each one fsync) the store made per batch of the producer's.
    report.add(
        "e2e.sluice_producer_msgs_per_s",
        a.messages as f64 / produced.as_secs_f64(),
        "msg/s",
    );
    report.add(
        "e2e.sluice_commits_per_batch",
        commits / a.messages.div_ceil(batch) as f64,
        "commits",
    );
    Ok(())
}

/// The `e2e` phase's peers, after the host has stopped, and Sluice's ratio to each: the strong
/// plain queue ([`floor::plain`]) on SQLite in-process and, with `--peer-database`, on
/// PostgreSQL (with one consumer and with as many as the trigger's concurrency, the faster
/// counting). Beside them, on SQLite: the least the delivery contract costs on the plain
/// queue's table ([`Take::Lease`]), the same with one index by due time
/// ([`Take::LeaseByDueTime`]), and the store's own statements in-process (a producer and
/// a consumer thread on the store's schema, one transaction per batch each), which is what
/// Sluice's schema costs with nothing else. And the plain queue and the contract minimum
/// again behind HTTP ([`floor::http`]), fed the same requests as the host was.
pub(crate) async fn peers(report: &mut Report, args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let Some(sluice) = report.get("e2e.sluice_msgs_per_s") else {
        return Ok(());
    };
    let (plain_dir, n, body_bytes, batch) = (
        dir.join("plain"),
        args.messages,
        args.body_bytes,
        args.batch_size as usize,
    );
    let sqlite = |take| {
        let dir = plain_dir.clone();
        tokio::task::spawn_blocking(move || floor::plain::sqlite(&dir, take, n, body_bytes, batch))
    };
    let plain = sqlite(Take::Delete).await??;
    report.add("e2e.plain_sqlite_msgs_per_s", plain.rate(), "msg/s");
    let contract = sqlite(Take::Lease).await??;
    report.add(
        "e2e.sqlite_contract_minimum_msgs_per_s",
        contract.rate(),
        "msg/s",
    );
    report.add(
        "e2e.sqlite_contract_minimum_to_plain",
        contract.rate() / plain.rate(),
        "x",
    );
    // The contract minimum with one order by due time, the least a queue with delays needs:
    // what Sluice's features cost on top of the contract, at the least.
    let by_due_time = sqlite(Take::LeaseByDueTime).await??;
    report.add(
        "e2e.sqlite_contract_by_due_time_msgs_per_s",
        by_due_time.rate(),
        "msg/s",
    );
    report.add(
        "e2e.sqlite_contract_by_due_time_to_plain",
        by_due_time.rate() / plain.rate(),
        "x",
    );
    report.add(
        "e2e.sluice_to_sqlite_contract_by_due_time",
        sluice / by_due_time.rate(),
        "x",
    );
    report.target(
        "e2e.sluice_to_plain_sqlite",
        sluice / plain.rate(),
        "x",
        ">=",
        0.8,
    );
    // The same two behind HTTP, sent the e2e producer's requests by the same client: what
    // the transport alone costs, and the least any queue that keeps the contract and takes
    // its producers over HTTP reaches on this machine (the floor under the 0.8 target).
    let http = reqwest::Client::new();
    for (name, take, inprocess) in [
        ("plain_sqlite", Take::Delete, plain.rate()),
        ("sqlite_contract_minimum", Take::Lease, contract.rate()),
    ] {
        let run = floor::http::sqlite(&http, &plain_dir, take, n, body_bytes, batch).await?;
        report.add(format!("e2e.{name}_http_msgs_per_s"), run.rate(), "msg/s");
        report.add(
            format!("e2e.{name}_http_to_in_process"),
            run.rate() / inprocess,
            "x",
        );
        report.add(
            format!("e2e.{name}_http_to_plain_sqlite"),
            run.rate() / plain.rate(),
            "x",
        );
        report.add(
            format!("e2e.sluice_to_{name}_http"),
            sluice / run.rate(),
            "x",
        );
    }
    let took = on_floor(args, &dir.join("store"), floor::sqlite::measure_concurrent).await?;
    let statements = args.messages as f64 / took.as_secs_f64();
    report.add(
        "e2e.sqlite_store_statements_msgs_per_s",
        statements,
        "msg/s",
    );
    report.add(
        "e2e.sluice_to_sqlite_store_statements",
        sluice / statements,
        "x",
    );
    if let Some(url) = &args.peer_database {
        let scratch = TestDatabase::create_on(url).await;
        let mut best = 0f64;
        for consumers in [1, args.concurrency.max(1) as usize] {
            let run = floor::plain::postgres(&scratch.url, n, body_bytes, batch, consumers).await?;
            report.add(
                format!("e2e.plain_postgres_{consumers}_consumers_msgs_per_s"),
                run.rate(),
                "msg/s",
            );
            best = best.max(run.rate());
        }
        report.add("e2e.plain_postgres_msgs_per_s", best, "msg/s");
        report.target(
            "e2e.sluice_to_plain_postgres",
            sluice / best,
            "x",
            ">=",
            1.0,
        );
        let consumers = args.concurrency as usize;
        let best_http =
            floor::http::postgres_best(&http, &scratch.url, n, body_bytes, batch, consumers)
                .await?;
        report.add("e2e.plain_postgres_http_msgs_per_s", best_http, "msg/s");
        report.add(
            "e2e.plain_postgres_http_to_in_process",
            best_http / best,
            "x",
        );
        report.add("e2e.sluice_to_plain_postgres_http", sluice / best_http, "x");
    }
    Ok(())
}
