//! `sluice deploy`, `sluice functions ...` and `sluice invoke`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::segment;
use super::{Remote, parse_duration, parse_pair, print_json};

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The component (.wasm), e.g. from `cargo build --release --target wasm32-wasip2`.
    file: PathBuf,
    /// The function's name.
    #[arg(long)]
    name: String,
    /// An environment variable the handler may read, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Time limit per invocation.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Memory limit per instance, in MiB.
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Consume this queue (creates or replaces the function's trigger).
    #[arg(long)]
    queue: Option<String>,
    /// Messages per invocation, 1 to 1000.
    #[arg(long, default_value_t = 10, requires = "queue")]
    batch_size: u32,
    /// Wait up to this long to fill a batch once a message is visible.
    #[arg(long, value_parser = parse_duration, requires = "queue")]
    max_wait: Option<Duration>,
    /// Invocations in flight at once.
    #[arg(long, default_value_t = 4, requires = "queue")]
    concurrency: u32,
    /// Create the trigger paused.
    #[arg(long, requires = "queue")]
    paused: bool,
    #[command(flatten)]
    remote: Remote,
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let wasm =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut query: Vec<(String, String)> = Vec::new();
    if let Some(timeout) = args.timeout {
        query.push(("timeout_ms".into(), timeout.as_millis().to_string()));
    }
    if let Some(memory) = args.memory_mb {
        query.push(("memory_mb".into(), memory.to_string()));
    }
    for (key, value) in &args.env {
        query.push(("env".into(), format!("{key}={value}")));
    }
    let client = args.remote.client();
    let request = client
        .request(
            Method::PUT,
            &format!("/v1/functions/{}", segment(&args.name)),
        )
        .query(&query)
        .header("content-type", "application/wasm")
        .body(wasm);
    let record = client.send(request).await?;
    println!(
        "deployed {} version {}",
        args.name, record["active_version"]
    );
    if let Some(queue) = &args.queue {
        let trigger = json!({
            "queue": queue,
            "batch_size": args.batch_size,
            "max_wait_ms": args.max_wait.map(|d| d.as_millis() as u64).unwrap_or(0),
            "max_concurrency": args.concurrency,
            "paused": args.paused,
        });
        let request = client
            .request(
                Method::PUT,
                &format!("/v1/functions/{}/trigger", segment(&args.name)),
            )
            .json(&trigger);
        let status = client.send(request).await?;
        println!(
            "{} consumes {queue} ({})",
            args.name,
            status["state"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// List functions and their active versions.
    List(ListArgs),
    /// Show a function with its versions and trigger.
    Show(NameArgs),
    /// Activate an earlier version (the previous one by default).
    Rollback(RollbackArgs),
    /// Delete a function, its versions and its trigger.
    Delete(NameArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    name: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    name: String,
    /// The version to activate.
    #[arg(long)]
    version: Option<u32>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(command: FunctionsCommand) -> anyhow::Result<()> {
    match command {
        FunctionsCommand::List(args) => {
            let list = args.remote.client().get("/v1/functions").await?;
            println!(
                "{:<32} {:>8} {:>9} {:<24}",
                "FUNCTION", "ACTIVE", "VERSIONS", "QUEUE"
            );
            for f in list["functions"].as_array().into_iter().flatten() {
                println!(
                    "{:<32} {:>8} {:>9} {:<24}",
                    f["name"].as_str().unwrap_or("?"),
                    f["active_version"],
                    f["versions"].as_array().map(Vec::len).unwrap_or(0),
                    f["trigger"]["queue"].as_str().unwrap_or("-"),
                );
            }
        }
        FunctionsCommand::Show(args) => {
            print_json(
                &args
                    .remote
                    .client()
                    .get(&format!("/v1/functions/{}", segment(&args.name)))
                    .await?,
            );
        }
        FunctionsCommand::Rollback(args) => {
            let path = format!("/v1/functions/{}/rollback", segment(&args.name));
            let record = args
                .remote
                .client()
                .post_json(&path, &json!({ "version": args.version }))
                .await?;
            println!(
                "{} now runs version {}",
                args.name, record["active_version"]
            );
        }
        FunctionsCommand::Delete(args) => {
            args.remote
                .client()
                .delete(&format!("/v1/functions/{}", segment(&args.name)))
                .await?;
            println!("deleted function {}", args.name);
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function.
    name: String,
    /// A message body (repeatable: one message each).
    #[arg(long = "message", required = true)]
    messages: Vec<String>,
    /// An attribute on every message, KEY=VALUE (repeatable).
    #[arg(long = "attr", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn invoke(args: InvokeArgs) -> anyhow::Result<()> {
    let attributes: serde_json::Map<String, Value> = args
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let messages: Vec<Value> = args
        .messages
        .iter()
        .map(|body| json!({ "body": body, "attributes": attributes }))
        .collect();
    let path = format!("/v1/functions/{}/invoke", segment(&args.name));
    let result = args
        .remote
        .client()
        .post_json(&path, &json!({ "messages": messages }))
        .await?;
    print_json(&result);
    Ok(())
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function.
    name: String,
    /// Keep printing new invocations as they happen.
    #[arg(long, short)]
    follow: bool,
    /// How many recent invocations to show first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    remote: Remote,
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.remote.client();
    let path = format!(
        "/v1/functions/{}/invocations?limit=100",
        segment(&args.name)
    );
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut first = true;
    loop {
        let answer = client.get(&path).await?;
        let mut fresh: Vec<&Value> = answer["invocations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| {
                seen.insert(format!(
                    "{}-{}-{}",
                    i["started_at_ms"], i["duration_ms"], i["batch_size"]
                ))
            })
            .collect();
        fresh.reverse();
        if first {
            let skip = fresh.len().saturating_sub(args.limit);
            fresh.drain(..skip);
            first = false;
        }
        for invocation in fresh {
            print_invocation(invocation);
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn print_invocation(invocation: &Value) {
    println!(
        "{} v{} {} batch={} {:.2}ms{}",
        invocation["started_at_ms"],
        invocation["version"],
        invocation["outcome"].as_str().unwrap_or("?"),
        invocation["batch_size"],
        invocation["duration_ms"].as_f64().unwrap_or(0.0),
        invocation["error"]
            .as_str()
            .map(|e| format!(" error: {e}"))
            .unwrap_or_default(),
    );
    for line in invocation["logs"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
}
