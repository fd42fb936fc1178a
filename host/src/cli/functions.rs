//! `sluice deploy`, `sluice functions ...` and `sluice invoke`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, segment};
use super::view::{self, Align, Table};
use super::{Remote, parse_duration, parse_pair, print_json};
use crate::functions::FunctionConfig;

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
    /// Let the handler send HTTP requests to these hosts (repeatable; nowhere by default), as
    /// Spin writes them: `https://api.example.com`, `https://*.example.com:443`,
    /// `http://127.0.0.1:8080`.
    #[arg(long = "allow-outbound", value_name = "PATTERN")]
    allow_outbound: Vec<String>,
    /// Let the handler open this key-value bucket (repeatable; none by default).
    #[arg(long = "kv", value_name = "BUCKET")]
    kv: Vec<String>,
    /// Time an outbound request may take to its response head, connecting included.
    #[arg(long, value_parser = parse_duration)]
    outbound_timeout: Option<Duration>,
    /// Outbound requests one invocation may have in flight at once.
    #[arg(long)]
    max_outbound_requests: Option<usize>,
    /// Consume this queue (creates or replaces the function's trigger).
    #[arg(long)]
    queue: Option<String>,
    #[command(flatten)]
    trigger: TriggerSettings,
    #[command(flatten)]
    remote: Remote,
}

/// How a trigger consumes its queue (`deploy --queue` and `functions trigger`).
#[derive(Debug, Args)]
struct TriggerSettings {
    /// Messages per invocation, 1 to 1000.
    #[arg(long, default_value_t = 10, requires = "queue",
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    batch_size: u32,
    /// Wait up to this long (at most 5m) to fill a batch once a message is visible.
    #[arg(long, value_parser = parse_max_wait, requires = "queue")]
    max_wait: Option<Duration>,
    /// Invocations in flight at once, 1 to 1000.
    #[arg(long, default_value_t = 4, requires = "queue",
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,
    /// Create the trigger paused (resume it with `sluice functions resume`).
    #[arg(long, requires = "queue")]
    paused: bool,
}

impl TriggerSettings {
    /// `PUT /v1/functions/{name}/trigger`'s body.
    fn body(&self, queue: &str) -> Value {
        json!({
            "queue": queue,
            "batch_size": self.batch_size,
            "max_wait_ms": self.max_wait.map(|d| d.as_millis() as u64).unwrap_or(0),
            "max_concurrency": self.concurrency,
            "paused": self.paused,
        })
    }
}

/// Puts `name`'s trigger and returns its status (`state`: running, paused or stopped).
async fn put_trigger(client: &Client, name: &str, trigger: &Value) -> anyhow::Result<Value> {
    let request = client
        .request(
            Method::PUT,
            &format!("/v1/functions/{}/trigger", segment(name)),
        )
        .json(trigger);
    client.send(request).await
}

fn parse_max_wait(text: &str) -> Result<Duration, String> {
    let wait = parse_duration(text)?;
    if wait > Duration::from_secs(300) {
        return Err(format!("`{text}` is longer than the 5m a batch may wait"));
    }
    Ok(wait)
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let wasm =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let client = args.remote.client();
    // Everything the trigger needs is checked before anything changes, so a mistaken --queue
    // never leaves a new version behind.
    if let Some(queue) = &args.queue {
        check_trigger_queue(&client, &args.name, queue)
            .await
            .with_context(|| {
                format!("nothing was deployed: {} cannot consume {queue}", args.name)
            })?;
    }
    // The config exactly as the server stores it, so an unchanged deploy is recognised.
    let defaults = FunctionConfig::default();
    let wanted = FunctionConfig {
        env: args.env.iter().cloned().collect(),
        timeout_ms: args
            .timeout
            .map(|t| t.as_millis() as u64)
            .unwrap_or(defaults.timeout_ms),
        memory_mb: args.memory_mb.unwrap_or(defaults.memory_mb),
        allowed_outbound_hosts: args.allow_outbound.clone(),
        kv_buckets: args.kv.clone(),
        outbound_timeout_ms: args
            .outbound_timeout
            .map(|t| t.as_millis() as u64)
            .unwrap_or(defaults.outbound_timeout_ms),
        max_outbound_requests: args
            .max_outbound_requests
            .unwrap_or(defaults.max_outbound_requests),
        ..defaults
    };
    let size = wasm.len();
    let current = match client
        .get(&format!("/v1/functions/{}", segment(&args.name)))
        .await
    {
        Ok(record) => Some(record),
        Err(e) if e.to_string().starts_with("404") => None,
        Err(e) => return Err(e),
    };
    // Environment values never come back from the server, so the server compares: with
    // `if_changed` it adds no version when the bytes and config equal the active version's.
    let request = client
        .request(
            Method::PUT,
            &format!("/v1/functions/{}", segment(&args.name)),
        )
        .query(&config_query(&wanted))
        .header("content-type", "application/wasm")
        .body(wasm);
    // A large component (a Python or JavaScript runtime inside) compiles on the server for
    // seconds: show that the request is alive and how long it has taken. indicatif draws only
    // on a terminal, so scripts see just the final line.
    let progress = indicatif::ProgressBar::new_spinner().with_message(format!(
        "uploading {} ({:.1} MiB) and compiling it on the server",
        args.file.display(),
        size as f64 / (1024.0 * 1024.0)
    ));
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let record = client.send(request).await;
    progress.finish_and_clear();
    let record = record?;
    let same = unchanged(current.as_ref(), &record);
    if !args.remote.json {
        if same {
            println!(
                "{} unchanged: version {} already has this component and config",
                args.name, record["active_version"]
            );
        } else {
            println!(
                "deployed {} version {} ({:.1} s to upload and compile)",
                args.name,
                record["active_version"],
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut answer = json!({ "function": record, "unchanged": same });
    if let Some(queue) = &args.queue {
        let status = put_trigger(&client, &args.name, &args.trigger.body(queue)).await?;
        if !args.remote.json {
            println!(
                "{} consumes {queue} ({})",
                args.name,
                status["state"].as_str().unwrap_or("?")
            );
        }
        answer["trigger"] = status;
    }
    if args.remote.json {
        print_json(&answer);
    }
    Ok(())
}

/// Refuses a trigger the server would refuse: the queue must exist and have no other consumer.
async fn check_trigger_queue(client: &Client, name: &str, queue: &str) -> anyhow::Result<()> {
    if let Err(e) = client.get(&format!("/v1/queues/{}", segment(queue))).await {
        if e.to_string().starts_with("404") {
            bail!(
                "queue `{queue}` does not exist; create it first with `sluice queue create {queue}`"
            );
        }
        return Err(e);
    }
    let functions = client.get("/v1/functions").await?;
    let consumer = functions["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["trigger"]["queue"] == queue && f["name"] != name);
    if let Some(other) = consumer {
        bail!(
            "queue `{queue}` is consumed by function `{other}`; delete that function's trigger \
             first (`sluice functions untrigger {other}`)",
            other = view::text(&other["name"])
        );
    }
    Ok(())
}

/// Whether an upload with `if_changed` left the function as it was: it existed and has no
/// new version.
pub(super) fn unchanged(before: Option<&Value>, after: &Value) -> bool {
    let versions = |record: &Value| record["versions"].as_array().map(Vec::len);
    before.is_some_and(|before| versions(before) == versions(after))
}

/// The upload's query string for `config`: every setting, so the stored config is exactly it,
/// and `if_changed` so an unchanged upload adds no version.
pub(super) fn config_query(config: &FunctionConfig) -> Vec<(String, String)> {
    let mut query = vec![
        ("if_changed".to_owned(), "true".to_owned()),
        ("timeout_ms".to_owned(), config.timeout_ms.to_string()),
        ("memory_mb".to_owned(), config.memory_mb.to_string()),
        ("max_sends".to_owned(), config.max_sends.to_string()),
        (
            "max_outbound_requests".to_owned(),
            config.max_outbound_requests.to_string(),
        ),
        (
            "max_outbound_response_bytes".to_owned(),
            config.max_outbound_response_bytes.to_string(),
        ),
        (
            "outbound_timeout_ms".to_owned(),
            config.outbound_timeout_ms.to_string(),
        ),
    ];
    for (key, value) in &config.env {
        query.push(("env".to_owned(), format!("{key}={value}")));
    }
    for pattern in &config.allowed_outbound_hosts {
        query.push(("allowed_outbound_host".to_owned(), pattern.clone()));
    }
    for bucket in &config.kv_buckets {
        query.push(("kv_bucket".to_owned(), bucket.clone()));
    }
    query
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
    /// Bind a function to the queue it consumes (replacing its trigger).
    Trigger(TriggerArgs),
    /// Stop a function consuming its queue (batches in flight still settle); the queue is
    /// then free for another function or for pull consumers.
    Untrigger(NameArgs),
    /// Start no new batches, keeping the trigger; messages wait in the queue.
    Pause(NameArgs),
    /// Start batches again after `pause`.
    Resume(NameArgs),
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The function.
    name: String,
    /// The queue it consumes (one function per queue).
    #[arg(long)]
    queue: String,
    #[command(flatten)]
    trigger: TriggerSettings,
    #[command(flatten)]
    remote: Remote,
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
            if args.remote.json {
                print_json(&list);
                return Ok(());
            }
            let mut table = Table::new(&[
                ("FUNCTION", Align::Left),
                ("ACTIVE", Align::Right),
                ("VERSIONS", Align::Right),
                ("QUEUE", Align::Left),
            ]);
            for f in list["functions"].as_array().into_iter().flatten() {
                table.row(vec![
                    view::text(&f["name"]),
                    view::text(&f["active_version"]),
                    f["versions"]
                        .as_array()
                        .map(Vec::len)
                        .unwrap_or(0)
                        .to_string(),
                    view::text(&f["trigger"]["queue"]),
                ]);
            }
            print!("{}", table.render());
        }
        FunctionsCommand::Show(args) => {
            let function = args
                .remote
                .client()
                .get(&format!("/v1/functions/{}", segment(&args.name)))
                .await?;
            if args.remote.json {
                print_json(&function);
            } else {
                print!("{}", show_function(&function));
            }
        }
        FunctionsCommand::Rollback(args) => {
            let path = format!("/v1/functions/{}/rollback", segment(&args.name));
            let record = args
                .remote
                .client()
                .post_json(&path, &json!({ "version": args.version }))
                .await?;
            if args.remote.json {
                print_json(&record);
            } else {
                println!(
                    "{} now runs version {}",
                    args.name, record["active_version"]
                );
            }
        }
        FunctionsCommand::Delete(args) => {
            args.remote
                .client()
                .delete(&format!("/v1/functions/{}", segment(&args.name)))
                .await?;
            if args.remote.json {
                print_json(&json!({ "deleted": args.name }));
            } else {
                println!("deleted function {}", args.name);
            }
        }
        FunctionsCommand::Trigger(args) => {
            let client = args.remote.client();
            let status = put_trigger(&client, &args.name, &args.trigger.body(&args.queue)).await?;
            if args.remote.json {
                print_json(&status);
            } else {
                println!(
                    "{} consumes {} ({})",
                    args.name,
                    args.queue,
                    view::text(&status["state"])
                );
            }
        }
        FunctionsCommand::Untrigger(args) => {
            let client = args.remote.client();
            let path = format!("/v1/functions/{}", segment(&args.name));
            let before = client.get(&path).await?;
            client.delete(&format!("{path}/trigger")).await?;
            let queue = before["trigger"]["queue"].as_str();
            if args.remote.json {
                print_json(&json!({ "function": args.name, "untriggered": queue }));
            } else if let Some(queue) = queue {
                println!(
                    "{} no longer consumes {queue} (batches in flight still settle)",
                    args.name
                );
            } else {
                println!("{} had no trigger; nothing changed", args.name);
            }
        }
        FunctionsCommand::Pause(args) => set_paused(args, true).await?,
        FunctionsCommand::Resume(args) => set_paused(args, false).await?,
    }
    Ok(())
}

/// `functions pause` and `functions resume`: puts the trigger back as it is, but for `paused`.
async fn set_paused(args: NameArgs, paused: bool) -> anyhow::Result<()> {
    let client = args.remote.client();
    let function = client
        .get(&format!("/v1/functions/{}", segment(&args.name)))
        .await?;
    let trigger = &function["trigger"];
    if trigger.is_null() {
        bail!(
            "function `{name}` has no trigger to {verb}; bind it to a queue with \
             `sluice functions trigger {name} --queue QUEUE`",
            name = args.name,
            verb = if paused { "pause" } else { "resume" },
        );
    }
    let body = json!({
        "queue": trigger["queue"],
        "batch_size": trigger["batch_size"],
        "max_wait_ms": trigger["max_wait_ms"],
        "max_concurrency": trigger["max_concurrency"],
        "paused": paused,
    });
    let was_paused = trigger["paused"] == true;
    let status = put_trigger(&client, &args.name, &body).await?;
    if args.remote.json {
        print_json(&status);
        return Ok(());
    }
    let queue = view::text(&trigger["queue"]);
    match (paused, was_paused) {
        (true, true) => println!("{} was already paused on {queue}", args.name),
        (true, false) => println!(
            "{} paused: no new batches from {queue} until `sluice functions resume {}` \
             (batches in flight still settle)",
            args.name, args.name
        ),
        (false, false) => println!(
            "{} was not paused; it consumes {queue} ({})",
            args.name,
            view::text(&status["state"])
        ),
        (false, true) => println!(
            "{} resumed: consumes {queue} ({})",
            args.name,
            view::text(&status["state"])
        ),
    }
    Ok(())
}

/// `sluice functions show`: the trigger, then every version with the active one marked.
fn show_function(function: &Value) -> String {
    let trigger = &function["trigger"];
    let trigger_line = if trigger.is_null() {
        "none".to_owned()
    } else {
        format!(
            "{} (batch {}, wait up to {}, {} at once): {}{}",
            view::text(&trigger["queue"]),
            view::text(&trigger["batch_size"]),
            view::millis_of(&trigger["max_wait_ms"]),
            view::text(&trigger["max_concurrency"]),
            view::text(&trigger["state"]),
            trigger["error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
        )
    };
    let active = function["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"] == function["active_version"]);
    let outbound: Vec<&str> = active
        .and_then(|v| v["config"]["allowed_outbound_hosts"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let outbound = match outbound.is_empty() {
        true => "none (no HTTP requests allowed)".to_owned(),
        false => outbound.join(", "),
    };
    let mut out = view::pairs(&[
        ("function", view::text(&function["name"])),
        ("active", format!("version {}", function["active_version"])),
        ("trigger", trigger_line),
        ("outbound", outbound),
    ]);
    let mut table = Table::new(&[
        ("", Align::Left),
        ("VERSION", Align::Right),
        ("CREATED", Align::Left),
        ("BYTES", Align::Right),
        ("TIMEOUT", Align::Right),
        ("MEMORY", Align::Right),
        ("SHA256", Align::Left),
    ]);
    let mut versions: Vec<&Value> = function["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v["version"].as_u64()));
    for v in versions {
        let active = v["version"] == function["active_version"];
        table.row(vec![
            if active { "*" } else { "" }.to_owned(),
            view::text(&v["version"]),
            view::time_of(&v["created_at_ms"]),
            view::text(&v["size"]),
            view::millis_of(&v["config"]["timeout_ms"]),
            format!("{} MiB", view::text(&v["config"]["memory_mb"])),
            v["sha256"]
                .as_str()
                .unwrap_or("-")
                .chars()
                .take(12)
                .collect(),
        ]);
    }
    out.push('\n');
    out.push_str(&table.render());
    out
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
    if args.remote.json {
        print_json(&result);
        return Ok(());
    }
    print_invocation(&result);
    let body = |message: &Value| {
        message["body"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("(binary) {}", view::text(&message["body_base64"])))
    };
    for send in result["sends"].as_array().into_iter().flatten() {
        println!("    sent to {}: {}", view::text(&send["queue"]), body(send));
    }
    for publish in result["publishes"].as_array().into_iter().flatten() {
        println!(
            "    published to {}: {}",
            view::text(&publish["topic"]),
            body(publish)
        );
    }
    for reply in result["replies"].as_array().into_iter().flatten() {
        println!(
            "    replied to {}: {}",
            view::text(&reply["message_id"]),
            body(reply)
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function.
    name: String,
    /// Keep printing new invocations as they commit (streamed by the server, not polled).
    #[arg(long, short)]
    follow: bool,
    /// How many recent invocations to show first, 0 to 1000.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=1000))]
    limit: u64,
    /// Only these outcomes, comma-separated: ok, error, trap, panic, timeout, out_of_memory,
    /// stack_overflow.
    #[arg(long)]
    outcome: Option<String>,
    /// Only invocations older than this id (to page back through the log).
    #[arg(long, conflicts_with = "follow")]
    before: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.remote.client();
    let mut query = Vec::new();
    if let Some(outcome) = &args.outcome {
        query.push(("outcome", outcome.clone()));
    }
    let show = |invocation: &Value| {
        if args.remote.json {
            println!("{invocation}");
        } else {
            print_invocation(invocation);
        }
    };
    if !args.follow {
        if args.limit == 0 {
            return Ok(());
        }
        query.push(("limit", args.limit.to_string()));
        if let Some(before) = args.before {
            query.push(("before", before.to_string()));
        }
        let request = client
            .request(
                Method::GET,
                &format!("/v1/functions/{}/invocations", segment(&args.name)),
            )
            .query(&query);
        let answer = client.send(request).await?;
        let page: Vec<&Value> = answer["invocations"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for invocation in page.into_iter().rev() {
            show(invocation);
        }
        return Ok(());
    }
    query.push(("backlog", args.limit.to_string()));
    let request = client
        .request(
            Method::GET,
            &format!("/v1/functions/{}/invocations/stream", segment(&args.name)),
        )
        .query(&query);
    let mut events = client.events(request).await?;
    while let Some(event) = events.next().await? {
        if event.name == "invocation" {
            let invocation: Value =
                serde_json::from_str(&event.data).context("an invocation that is not JSON")?;
            show(&invocation);
        } else if event.name == "lagged" {
            eprintln!(
                "(fell behind; some invocations were skipped: {})",
                event.data
            );
        }
    }
    Ok(())
}

fn print_invocation(invocation: &Value) {
    println!(
        "{} #{} v{} {} batch={} {:.2}ms{}{}",
        view::time_of(&invocation["started_at_ms"]),
        view::text(&invocation["id"]),
        invocation["version"],
        invocation["outcome"].as_str().unwrap_or("?"),
        invocation["batch_size"],
        invocation["duration_ms"].as_f64().unwrap_or(0.0),
        if invocation["dry_run"] == true {
            " (dry run)"
        } else {
            ""
        },
        invocation["error"]
            .as_str()
            .map(|e| format!(" error: {e}"))
            .unwrap_or_default(),
    );
    for failure in invocation["failures"].as_array().into_iter().flatten() {
        println!("  {}", failure_line(failure));
    }
    for line in invocation["logs"].as_str().unwrap_or("").lines() {
        println!("    {line}");
    }
}

/// One message the handler did not acknowledge in an `ok` batch, and what it asked for.
fn failure_line(failure: &Value) -> String {
    let id = view::text(&failure["id"]);
    match failure["disposition"].as_str() {
        Some("dead_letter") => format!(
            "message {id}: dead-lettered: {}",
            view::text(&failure["reason"])
        ),
        Some("retry") => match failure["delay_ms"].as_u64() {
            Some(delay) => format!("message {id}: retried in {}", view::millis(delay)),
            None => format!("message {id}: retried with the queue's backoff"),
        },
        _ => format!("message {id}: {failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ok_batchs_failures_read_as_decisions_with_reasons() {
        let dead =
            serde_json::json!({"id": "9", "disposition": "dead_letter", "reason": "no customer"});
        assert_eq!(failure_line(&dead), "message 9: dead-lettered: no customer");
        let later = serde_json::json!({"id": "3", "disposition": "retry", "delay_ms": 5000});
        assert_eq!(failure_line(&later), "message 3: retried in 5s");
        let backoff = serde_json::json!({"id": "4", "disposition": "retry", "delay_ms": null});
        assert_eq!(
            failure_line(&backoff),
            "message 4: retried with the queue's backoff"
        );
    }
}
