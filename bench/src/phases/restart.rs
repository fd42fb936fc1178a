//! The `restart` phase: a `sluice serve` with `--functions` functions restarted (time to the
//! first invocation), then its resident memory once idle.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};
use sluice::store::{NewMessage, Store};

use crate::BenchArgs;
use crate::child::{Child, authorized_client};
use crate::components::Components;
use crate::report::Report;

/// A `sluice serve` child with `functions` functions deployed: restarted, how long until the
/// first invocation, and its resident memory once idle.
pub(crate) async fn run(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    dir: &Path,
) -> anyhow::Result<()> {
    let http = authorized_client()?;
    let mut child = Child::spawn(dir)?;
    let url = child.url.clone();
    let call = |method: reqwest::Method, path: String, body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .request(method, format!("{url}{path}"))
                .json(&body)
                .send()
                .await?;
            ensure!(r.status().is_success(), "{path}: {}", r.status());
            anyhow::Ok(())
        }
    };
    for i in 0..args.functions {
        let name = format!("fn-{i:03}");
        call(
            reqwest::Method::POST,
            "/v1/queues".into(),
            json!({"name": name}),
        )
        .await?;
        let r = http
            .put(format!("{url}/v1/functions/{name}"))
            .header("content-type", "application/wasm")
            .body(c.sum.clone())
            .send()
            .await?;
        ensure!(r.status().is_success(), "deploy {name}: {}", r.status());
        call(
            reqwest::Method::PUT,
            format!("/v1/functions/{name}/trigger"),
            json!({"queue": name, "batch_size": 100, "max_wait_ms": 0}),
        )
        .await?;
    }
    child.stop();
    // While the host is down, one message waits on the last function's queue.
    {
        let store = Store::open(&dir.join("data"), sluice::store::StoreOptions::default())?;
        let last = format!("fn-{:03}", args.functions.saturating_sub(1));
        store
            .enqueue(
                &last,
                vec![NewMessage {
                    body: b"wake".to_vec(),
                    ..NewMessage::default()
                }],
            )
            .await?;
    }
    let started = Instant::now();
    let child = Child::spawn(dir)?;
    let last = format!("fn-{:03}", args.functions.saturating_sub(1));
    let first = loop {
        let r = http
            .get(format!("{}/v1/functions/{last}/invocations", child.url))
            .send()
            .await;
        if let Ok(r) = r
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
            && v["invocations"].as_array().is_some_and(|a| !a.is_empty())
        {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no invocation within 60 s of restart"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    report.target(
        format!("restart.first_invocation_ms ({} functions)", args.functions),
        first.as_secs_f64() * 1000.0,
        "ms",
        "<=",
        100.0,
    );
    tokio::time::sleep(Duration::from_secs(if args.quick { 1 } else { 3 })).await;
    report.target(
        format!("idle.rss_mib ({} functions)", args.functions),
        child.rss_mib()?,
        "MiB",
        "<=",
        150.0,
    );
    Ok(())
}
