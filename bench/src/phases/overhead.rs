//! The `overhead` phase: a fresh instance + call through the executor at batches of 1, 100 and
//! 1000, beside bare wasmtime; the timing loops are shared with the `polyglot` phase.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use sluice::executor::{Compiler, Executor, ExecutorConfig, KEEP_RESIDENT_BYTES, OutboxCheck};
use sluice::functions::FunctionConfig;
use sluice::store::Message;

use crate::BenchArgs;
use crate::bare::BareHandler;
use crate::components::Components;
use crate::load::{body, histogram};
use crate::report::Report;

/// An outbox check that accepts every queue and topic: nothing these runs send is committed.
pub(crate) fn accept_all() -> OutboxCheck {
    OutboxCheck::new(|_| Ok(()), |_| Ok(()))
}

/// Fresh instance + call through the executor, batches of 1, 100 and 1000.
pub(crate) async fn run(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    dir: &Path,
) -> anyhow::Result<()> {
    let executor = Executor::new(ExecutorConfig {
        cache_dir: dir.to_owned(),
        max_memory_bytes: 256 * 1024 * 1024,
        max_instances: 8,
        keep_resident_bytes: KEEP_RESIDENT_BYTES,
        compiler: Compiler::this_binary(),
    })?;
    let handler = executor.prepare(&c.sum)?;
    let limits = FunctionConfig::default().limits("bench");
    let check = accept_all();
    let budget = if args.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    for size in [1usize, 100, 1000] {
        let hist = time_calls(
            &executor,
            &handler,
            &limits,
            &check,
            batch(size, args),
            budget,
        )
        .await?;
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        let key = format!("overhead.batch_{size}");
        if size == 1 {
            report.target(format!("{key}.p50_us"), us(0.5), "µs", "<=", 30.0);
        } else {
            report.add(format!("{key}.p50_us"), us(0.5), "µs");
        }
        report.add(format!("{key}.mean_us"), hist.mean() / 1000.0, "µs");
        if size == 1 {
            let bare = time_bare_calls(&executor, &handler, batch(size, args), budget).await?;
            let bare_us = bare.value_at_quantile(0.5) as f64 / 1000.0;
            report.add("overhead.bare_wasmtime.batch_1.p50_us", bare_us, "µs");
            report.target(
                "overhead.batch_1.to_bare",
                us(0.5) / bare_us.max(f64::MIN_POSITIVE),
                "x",
                "<=",
                1.5,
            );
        }
    }
    Ok(())
}

/// Bare wasmtime instantiate + call of `handler` on `batch` ([`BareHandler`]), repeated one
/// after another for `budget` (at least 10 calls), asynchronously as the host runs them: the
/// histogram of each call's nanoseconds.
pub(crate) async fn time_bare_calls(
    executor: &Executor,
    handler: &sluice::executor::Handler,
    batch: Vec<Message>,
    budget: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let bare = BareHandler::new(executor, handler)?;
    let mut hist = histogram();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget || calls < 10 {
        let took = bare.time_call(&batch).await?;
        hist.saturating_record(took.as_nanos() as u64);
        calls += 1;
    }
    Ok(hist)
}

/// A batch of `size` messages as the dispatcher hands them to the executor.
pub(crate) fn batch(size: usize, args: &BenchArgs) -> Vec<Message> {
    (0..size)
        .map(|i| Message {
            id: i.to_string(),
            queue: "bench".into(),
            body: body(i as u64, args.body_bytes).into_bytes(),
            attributes: Vec::new(),
            attempt: 1,
            enqueued_at_ms: 0,
            priority: sluice::store::DEFAULT_PRIORITY,
            group: None,
            first_leased_at_ms: None,
        })
        .collect()
}

/// Fresh instance + call of `handler` on `batch`, repeated for `budget` (at least 10 calls):
/// the histogram of each call's nanoseconds.
pub(crate) async fn time_calls(
    executor: &Executor,
    handler: &sluice::executor::Handler,
    limits: &sluice::executor::Limits,
    check: &OutboxCheck,
    batch: Vec<Message>,
    budget: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = histogram();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget || calls < 10 {
        // The clone is part of the cost: the dispatcher hands the executor its own copy.
        let t = Instant::now();
        let invocation = executor
            .invoke(handler, limits, batch.clone(), check.clone())
            .await;
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        if !matches!(invocation.outcome, sluice::executor::Outcome::Ok(_)) {
            bail!("the handler failed: {:?}", invocation.outcome);
        }
        calls += 1;
    }
    Ok(hist)
}
