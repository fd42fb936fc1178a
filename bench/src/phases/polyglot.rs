//! The `polyglot` phase (only when named): Python and JavaScript no-ops beside Rust's `sum`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};
use sluice::executor::{Compiler, Executor, ExecutorConfig, KEEP_RESIDENT_BYTES};
use sluice::functions::FunctionConfig;

use super::overhead::{accept_all, batch, time_bare_calls, time_calls};
use crate::BenchArgs;
use crate::child::{Child, authorized_client, wait_acked};
use crate::components::{self, Components, Polyglot};
use crate::host::Bench;
use crate::report::Report;
use crate::wasm::{custom_section, distinct};

/// Python and JavaScript no-ops beside Rust's `sum`: compile time, the cost of a fresh instance
/// (batches of 1 and 100, through the executor), the drain rate through a trigger, and the
/// resident memory of a `sluice serve` with `--polyglot-functions` distinct ones deployed and
/// exercised, anonymous and file-backed apart.
pub(crate) async fn run(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    dir: &Path,
) -> anyhow::Result<()> {
    let poly =
        &components::load_polyglot(args.components.as_deref(), args.wasm_target_dir.as_deref())?;
    let limits = FunctionConfig::default().limits("bench");
    let check = accept_all();
    let budget = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    let languages = [("sum", &c.sum), ("python", &poly.python), ("js", &poly.js)];
    // The same components with the pool's slots released after every instance (what the host
    // did before it kept them resident) and kept resident (what it does now), in the same run.
    for keep_resident_bytes in [0, KEEP_RESIDENT_BYTES] {
        let executor = Executor::new(ExecutorConfig {
            cache_dir: dir.join("cache"),
            max_memory_bytes: 256 * 1024 * 1024,
            max_instances: 8,
            keep_resident_bytes,
            compiler: Compiler::this_binary(),
        })?;
        let variant = if keep_resident_bytes == 0 {
            " (slots released, as before)"
        } else {
            ""
        };
        for (name, wasm) in languages {
            let (prepare, handler) = {
                let (executor, wasm) = (executor.clone(), wasm.clone());
                let t = Instant::now();
                let handler =
                    tokio::task::spawn_blocking(move || executor.prepare(&wasm)).await??;
                (t.elapsed(), handler)
            };
            if keep_resident_bytes == 0 {
                report.add(
                    format!("polyglot.compile.{name}_s ({} KiB)", wasm.len() / 1024),
                    prepare.as_secs_f64(),
                    "s",
                );
            }
            for size in [1usize, 100] {
                let hist = time_calls(
                    &executor,
                    &handler,
                    &limits,
                    &check,
                    batch(size, args),
                    budget,
                )
                .await?;
                let key = format!("polyglot.overhead.{name}.batch_{size}.p50_us{variant}");
                let p50 = hist.value_at_quantile(0.5) as f64 / 1000.0;
                if size == 1 && name != "sum" && keep_resident_bytes > 0 {
                    report.target(key, p50, "µs", "<=", 300.0);
                } else {
                    report.add(key, p50, "µs");
                }
                if size == 1 && keep_resident_bytes > 0 {
                    // The same component's bare wasmtime instantiate + call: what the runtime
                    // alone costs per batch, below which no host can go.
                    let bare = time_bare_calls(&executor, &handler, batch(1, args), budget).await?;
                    let bare_us = bare.value_at_quantile(0.5) as f64 / 1000.0;
                    report.add(
                        format!("polyglot.overhead.{name}.bare_wasmtime.batch_1.p50_us"),
                        bare_us,
                        "µs",
                    );
                    report.add(
                        format!("polyglot.overhead.{name}.batch_1.to_bare"),
                        p50 / bare_us.max(f64::MIN_POSITIVE),
                        "x",
                    );
                }
            }
        }
    }

    // Drain through a real trigger, at the configured batch size and concurrency.
    let bench = Bench::start(dir.join("host"), args, None).await?;
    let n = args.messages.min(50_000);
    let mut rates = Vec::new();
    for (name, wasm) in languages {
        let (function, queue) = (format!("poly-{name}"), format!("poly-{name}"));
        bench.queue(&queue, json!({})).await?;
        bench.deploy(&function, wasm, "").await?;
        bench
            .trigger(&function, &queue, args.batch_size, args.concurrency, true)
            .await?;
        let rate = bench.drain_once(&function, &queue, n).await?;
        report.add(
            format!("polyglot.drain.{name}.batch_{}.msgs_per_s", args.batch_size),
            rate,
            "msg/s",
        );
        rates.push(rate);
    }

    // A Rust trigger drains while a Python component (new bytes, so not in the cache) compiles.
    let upload = {
        let mut wasm = poly.python.clone();
        wasm.extend_from_slice(&custom_section("sluice-bench", &rand::random::<[u8; 8]>()));
        let (http, url) = (bench.http.clone(), bench.url.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = http
                .put(format!("{url}/v1/functions/poly-compiling"))
                .header("content-type", "application/wasm")
                .body(wasm)
                .send()
                .await?;
            ensure!(
                response.status().is_success(),
                "upload: {}",
                response.status()
            );
            anyhow::Ok(started.elapsed())
        })
    };
    let during = bench.drain_once("poly-sum", "poly-sum", n).await?;
    let compile = upload.await??;
    report.add(
        "polyglot.compile_while_draining.python_s",
        compile.as_secs_f64(),
        "s",
    );
    report.add(
        format!(
            "polyglot.drain.sum_while_compiling.batch_{}.msgs_per_s",
            args.batch_size
        ),
        during,
        "msg/s",
    );
    report.target(
        "polyglot.drain.sum_while_compiling_to_alone",
        during / rates[0],
        "x",
        ">=",
        0.8,
    );
    bench.stop().await;
    for (i, name) in [(1, "python"), (2, "js")] {
        report.target(
            format!("polyglot.drain.{name}_to_sum"),
            rates[i] / rates[0],
            "x",
            ">=",
            0.5,
        );
    }

    polyglot_memory(report, args, poly, &dir.join("memory")).await
}

/// Resident memory of a `sluice serve` with `--polyglot-functions` distinct Python and
/// JavaScript functions (half each) deployed and each run on a few batches.
async fn polyglot_memory(
    report: &mut Report,
    args: &BenchArgs,
    poly: &Polyglot,
    dir: &Path,
) -> anyhow::Result<()> {
    let http = authorized_client()?;
    let child = Child::spawn(dir)?;
    let url = child.url.clone();
    let count = args.polyglot_functions.max(2);
    let names: Vec<String> = (0..count)
        .map(|i| format!("{}-{i:02}", if i % 2 == 0 { "py" } else { "js" }))
        .collect();
    let deploying = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let wasm = if i % 2 == 0 { &poly.python } else { &poly.js };
        let r = http
            .post(format!("{url}/v1/queues"))
            .json(&json!({"name": name}))
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "create queue {name}: {}",
            r.status()
        );
        let r = http
            .put(format!("{url}/v1/functions/{name}"))
            .header("content-type", "application/wasm")
            .body(distinct(wasm, name))
            .send()
            .await?;
        ensure!(r.status().is_success(), "deploy {name}: {}", r.status());
        let r = http
            .put(format!("{url}/v1/functions/{name}/trigger"))
            .json(&json!({"queue": name, "batch_size": 10, "max_wait_ms": 0, "max_concurrency": 2}))
            .send()
            .await?;
        ensure!(r.status().is_success(), "trigger {name}: {}", r.status());
        let messages: Vec<Value> = (0..100).map(|i| json!({"body": format!("m{i}")})).collect();
        let r = http
            .post(format!("{url}/v1/queues/{name}/messages/batch"))
            .json(&json!({ "messages": messages }))
            .send()
            .await?;
        ensure!(r.status().is_success(), "enqueue on {name}: {}", r.status());
    }
    report.add(
        format!("polyglot.deploy_s ({count} distinct components)"),
        deploying.elapsed().as_secs_f64(),
        "s",
    );
    for name in &names {
        wait_acked(&http, &url, name, 100, Duration::from_secs(120)).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory = child.memory()?;
    let key = format!("polyglot.rss ({count} functions)");
    report.target(format!("{key}.total_mib"), memory.rss, "MiB", "<=", 400.0);
    report.add(format!("{key}.anon_mib"), memory.anon, "MiB");
    report.add(format!("{key}.file_mib"), memory.file, "MiB");
    report.add(format!("{key}.shmem_mib"), memory.shmem, "MiB");
    // What the file-backed part is mapped from: the compiled components in the host's cache.
    let mut images = 0u64;
    for entry in std::fs::read_dir(dir.join("data").join("compiled"))? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            images += entry.metadata()?.len();
        }
    }
    let images = images as f64 / (1024.0 * 1024.0);
    report.add(format!("{key}.compiled_images_on_disk_mib"), images, "MiB");
    report.add(
        format!("{key}.file_to_compiled_images"),
        memory.file / images.max(f64::MIN_POSITIVE),
        "x",
    );
    Ok(())
}
