//! `sluice queue ...`, `sluice send` and `sluice peek`.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Client, segment};
use super::view::{self, Align, Table};
use super::{Remote, parse_duration, parse_pair, print_json};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue.
    Create(CreateArgs),
    /// List queues with their depths.
    List(RemoteOnly),
    /// Show a queue's settings and live stats.
    Show(NameArgs),
    /// Delete a queue and its messages.
    Delete(NameArgs),
    /// Delete every message of a queue.
    Purge(NameArgs),
    /// Move a dead-letter queue's messages back to their source queue.
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
pub struct RemoteOnly {
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The queue's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Letters, digits, `-` and `_`, up to 80.
    name: String,
    /// How long a leased batch stays invisible before it is delivered again.
    #[arg(long, value_parser = parse_duration)]
    visibility_timeout: Option<Duration>,
    /// Deliveries before a message is dead-lettered.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Queue that receives messages out of attempts.
    #[arg(long)]
    dead_letter_queue: Option<String>,
    /// Messages older than this are removed.
    #[arg(long, value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Largest accepted message body.
    #[arg(long)]
    max_message_bytes: Option<u64>,
    /// First retry delay.
    #[arg(long, value_parser = parse_duration)]
    backoff_initial: Option<Duration>,
    /// Longest retry delay.
    #[arg(long, value_parser = parse_duration)]
    backoff_max: Option<Duration>,
    /// Growth of the retry delay per attempt.
    #[arg(long)]
    backoff_multiplier: Option<f64>,
    /// Retry after exactly the backoff delay, not a random share of it.
    #[arg(long)]
    no_backoff_jitter: bool,
    /// How long a `Sluice-Dedup-Id` is remembered.
    #[arg(long, value_parser = parse_duration)]
    dedup_window: Option<Duration>,
    /// The most messages the queue may hold; enqueues beyond it are refused until consumers
    /// catch up.
    #[arg(long)]
    max_depth: Option<u64>,
    /// The delay of SQS sends that give no `DelaySeconds` (at most 15m).
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// How long an SQS receive that gives no `WaitTimeSeconds` waits (at most 20s).
    #[arg(long, value_parser = parse_duration)]
    receive_wait: Option<Duration>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The dead-letter queue.
    name: String,
    /// Send to this queue instead of each message's source.
    #[arg(long)]
    to: Option<String>,
    /// Move at most this many.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Create(args) => {
            let mut body = Map::new();
            body.insert("name".into(), json!(args.name));
            let ms = |d: Duration| json!(d.as_millis() as u64);
            if let Some(v) = args.visibility_timeout {
                body.insert("visibility_timeout_ms".into(), ms(v));
            }
            if let Some(v) = args.max_attempts {
                body.insert("max_attempts".into(), json!(v));
            }
            if let Some(v) = args.dead_letter_queue {
                body.insert("dead_letter_queue".into(), json!(v));
            }
            if let Some(v) = args.retention {
                body.insert("retention_ms".into(), ms(v));
            }
            if let Some(v) = args.max_message_bytes {
                body.insert("max_message_bytes".into(), json!(v));
            }
            if let Some(v) = args.dedup_window {
                body.insert("dedup_window_ms".into(), ms(v));
            }
            if let Some(v) = args.max_depth {
                body.insert("max_depth".into(), json!(v));
            }
            if let Some(v) = args.delay {
                body.insert("delay_ms".into(), ms(v));
            }
            if let Some(v) = args.receive_wait {
                body.insert("receive_wait_ms".into(), ms(v));
            }
            let mut backoff = Map::new();
            if let Some(v) = args.backoff_initial {
                backoff.insert("initial_ms".into(), ms(v));
            }
            if let Some(v) = args.backoff_max {
                backoff.insert("max_ms".into(), ms(v));
            }
            if let Some(v) = args.backoff_multiplier {
                backoff.insert("multiplier".into(), json!(v));
            }
            if args.no_backoff_jitter {
                backoff.insert("jitter".into(), json!(false));
            }
            if !backoff.is_empty() {
                body.insert("backoff".into(), Value::Object(backoff));
            }
            let created = args
                .remote
                .client()
                .post_json("/v1/queues", &Value::Object(body))
                .await?;
            if args.remote.json {
                print_json(&created);
            } else {
                println!("created queue {}", args.name);
                print!("{}", show_queue(&created, &HashMap::new()));
            }
        }
        QueueCommand::List(args) => {
            let client = args.remote.client();
            let list = client.get("/v1/queues").await?;
            if args.remote.json {
                print_json(&list);
            } else {
                let consumers = consumers(&client).await?;
                print!("{}", list_queues(&list, &consumers));
            }
        }
        QueueCommand::Show(args) => {
            let client = args.remote.client();
            let queue = client
                .get(&format!("/v1/queues/{}", segment(&args.name)))
                .await?;
            if args.remote.json {
                print_json(&queue);
            } else {
                let consumers = consumers(&client).await?;
                print!("{}", show_queue(&queue, &consumers));
            }
        }
        QueueCommand::Delete(args) => {
            args.remote
                .client()
                .delete(&format!("/v1/queues/{}", segment(&args.name)))
                .await?;
            if args.remote.json {
                print_json(&json!({ "deleted": args.name }));
            } else {
                println!("deleted queue {}", args.name);
            }
        }
        QueueCommand::Purge(args) => {
            let path = format!("/v1/queues/{}/purge", segment(&args.name));
            let answer = args.remote.client().post_json(&path, &json!({})).await?;
            if args.remote.json {
                print_json(&answer);
            } else {
                println!("purged {} messages from {}", answer["purged"], args.name);
            }
        }
        QueueCommand::Redrive(args) => {
            let path = format!("/v1/queues/{}/redrive", segment(&args.name));
            let body = json!({ "to": args.to, "limit": args.limit });
            let answer = args.remote.client().post_json(&path, &body).await?;
            if args.remote.json {
                print_json(&answer);
            } else {
                println!("moved {} messages out of {}", answer["moved"], args.name);
            }
        }
    }
    Ok(())
}

/// `sluice queue list`: one aligned row per queue.
fn list_queues(list: &Value, consumers: &HashMap<String, String>) -> String {
    let mut table = Table::new(&[
        ("QUEUE", Align::Left),
        ("VISIBLE", Align::Right),
        ("DELAYED", Align::Right),
        ("IN FLIGHT", Align::Right),
        ("OLDEST", Align::Right),
        ("DEAD-LETTER QUEUE", Align::Left),
        ("CONSUMER", Align::Left),
    ]);
    for queue in list["queues"].as_array().into_iter().flatten() {
        let stats = &queue["stats"];
        table.row(vec![
            view::text(&queue["name"]),
            view::text(&stats["visible"]),
            view::text(&stats["delayed"]),
            view::text(&stats["in_flight"]),
            view::millis_of(&stats["oldest_age_ms"]),
            view::text(&queue["settings"]["dead_letter_queue"]),
            consumer_of(consumers, &queue["name"]),
        ]);
    }
    table.render()
}

/// The function consuming each queue (from the functions' triggers), by queue name.
async fn consumers(client: &Client) -> anyhow::Result<HashMap<String, String>> {
    let functions = client.get("/v1/functions").await?;
    Ok(functions["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let queue = f["trigger"]["queue"].as_str()?;
            Some((queue.to_owned(), view::text(&f["name"])))
        })
        .collect())
}

/// The consumer of queue `name`, or `-`.
fn consumer_of(consumers: &HashMap<String, String>, name: &Value) -> String {
    name.as_str()
        .and_then(|name| consumers.get(name).cloned())
        .unwrap_or_else(|| "-".into())
}

/// `sluice queue show`: live counts, totals and settings.
fn show_queue(queue: &Value, consumers: &HashMap<String, String>) -> String {
    let stats = &queue["stats"];
    let settings = &queue["settings"];
    let backoff = &settings["backoff"];
    let mut out = view::pairs(&[
        ("queue", view::text(&queue["name"])),
        ("created", view::time_of(&queue["created_at_ms"])),
        ("visible", view::text(&stats["visible"])),
        ("delayed", view::text(&stats["delayed"])),
        ("in flight", view::text(&stats["in_flight"])),
        ("oldest", view::millis_of(&stats["oldest_age_ms"])),
        ("consumer", consumer_of(consumers, &queue["name"])),
    ]);
    out.push_str("\ntotals\n");
    out.push_str(&indent(&view::pairs(&[
        ("enqueued", view::text(&stats["enqueued_total"])),
        ("acknowledged", view::text(&stats["acked_total"])),
        ("retried", view::text(&stats["retried_total"])),
        ("dead-lettered", view::text(&stats["dead_lettered_total"])),
        ("dropped", view::text(&stats["dropped_total"])),
        ("expired", view::text(&stats["expired_total"])),
    ])));
    out.push_str("\nsettings\n");
    out.push_str(&indent(&view::pairs(&[
        (
            "visibility timeout",
            view::millis_of(&settings["visibility_timeout_ms"]),
        ),
        ("max attempts", view::text(&settings["max_attempts"])),
        (
            "backoff",
            format!(
                "{} x{} up to {}{}",
                view::millis_of(&backoff["initial_ms"]),
                view::text(&backoff["multiplier"]),
                view::millis_of(&backoff["max_ms"]),
                if backoff["jitter"] == true {
                    ", with jitter"
                } else {
                    ""
                }
            ),
        ),
        (
            "dead-letter queue",
            view::text(&settings["dead_letter_queue"]),
        ),
        ("retention", view::millis_of(&settings["retention_ms"])),
        (
            "max message size",
            view::bytes_of(&settings["max_message_bytes"]),
        ),
        (
            "dedup window",
            view::millis_of(&settings["dedup_window_ms"]),
        ),
        (
            "max depth",
            settings["max_depth"]
                .as_u64()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unbounded".into()),
        ),
        ("SQS delay", view::millis_of(&settings["delay_ms"])),
        (
            "SQS receive wait",
            view::millis_of(&settings["receive_wait_ms"]),
        ),
    ])));
    out
}

/// `text` with every control character but newline and tab escaped (`\u{1b}`), so printing it
/// cannot move the cursor, recolour or retitle the terminal.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub(super) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The queue.
    queue: String,
    /// The body; read from standard input when neither this nor --file is given.
    body: Option<String>,
    /// A JSON-lines file: one message per line, `{"body" | "body_base64", "attributes",
    /// "delay_ms", "dedup_id", "priority", "group"}`, sent in batches with a progress bar.
    #[arg(long, conflicts_with = "body")]
    file: Option<PathBuf>,
    /// An attribute, KEY=VALUE (repeatable).
    #[arg(long = "attr", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
    /// Keep the message invisible this long.
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Deduplication id: a repeat within the queue's window is not enqueued again.
    #[arg(long)]
    dedup_id: Option<String>,
    /// 0 (lowest) to 9 (highest); 4 when not given. Higher priorities are delivered first.
    #[arg(long)]
    priority: Option<u8>,
    /// A group key: messages of one group are delivered one at a time, in order.
    #[arg(long)]
    group: Option<String>,
    /// Wait up to this long (at most 60s) for the handler's reply and print its body (with
    /// --json, the whole reply); without a reply in time, fail naming the message, which stays
    /// queued (`sluice reply ID` fetches the reply later).
    #[arg(long, value_parser = parse_duration, conflicts_with = "file")]
    wait_reply: Option<Duration>,
    /// Messages per request when sending a file.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    #[command(flatten)]
    remote: Remote,
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let client = args.remote.client();
    if let Some(path) = &args.file {
        return send_file(&client, &args.queue, path, args.batch_size.clamp(1, 1000)).await;
    }
    let body = match args.body {
        Some(body) => body.into_bytes(),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the body from standard input")?;
            body
        }
    };
    let mut request = client
        .request(
            Method::POST,
            &format!("/v1/queues/{}/messages", segment(&args.queue)),
        )
        .body(body);
    for (key, value) in &args.attributes {
        request = request.header(format!("sluice-attr-{key}"), value);
    }
    if let Some(delay) = args.delay {
        request = request.header("sluice-delay-ms", delay.as_millis().to_string());
    }
    if let Some(dedup) = &args.dedup_id {
        request = request.header("sluice-dedup-id", dedup);
    }
    if let Some(priority) = args.priority {
        request = request.header("sluice-priority", priority.to_string());
    }
    if let Some(group) = &args.group {
        request = request.header("sluice-group", group);
    }
    if let Some(wait) = args.wait_reply {
        request = request.header(
            "sluice-reply-timeout-ms",
            wait.as_millis().max(1).to_string(),
        );
    }
    let answer = client.send(request).await?;
    if args.remote.json {
        print_json(&answer);
    } else if args.wait_reply.is_some() {
        print_reply_body(&answer)?;
    } else {
        println!("{}", answer["id"].as_str().unwrap_or_default());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// The id of the message answered (as `sluice send` printed it).
    message_id: String,
    #[command(flatten)]
    remote: Remote,
}

/// Prints the reply to a message (kept for an hour after the handler gave it).
pub async fn reply(args: ReplyArgs) -> anyhow::Result<()> {
    let client = args.remote.client();
    let answer = client
        .get(&format!("/v1/replies/{}", segment(&args.message_id)))
        .await?;
    if args.remote.json {
        print_json(&answer);
    } else {
        print_reply_body(&answer)?;
    }
    Ok(())
}

/// Writes a reply's body to standard output as it is (text or bytes).
fn print_reply_body(reply: &Value) -> anyhow::Result<()> {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(reply["body_base64"].as_str().unwrap_or_default())
        .context("the server answered a reply whose body is not base64")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    if !body.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&out) {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

async fn send_file(
    client: &super::Client,
    queue: &str,
    path: &PathBuf,
    batch_size: usize,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let progress = indicatif::ProgressBar::new(total);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let endpoint = format!("/v1/queues/{}/messages/batch", segment(queue));
    let mut batch = Vec::with_capacity(batch_size);
    let mut sent = 0usize;
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        progress.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON object", path.display(), number + 1))?;
        if !message.is_object() {
            bail!(
                "{}:{}: each line must be a JSON object like {{\"body\": \"...\"}}",
                path.display(),
                number + 1
            );
        }
        batch.push(message);
        if batch.len() == batch_size {
            sent += flush(client, &endpoint, &mut batch).await?;
            progress.set_message(format!("{sent} sent"));
        }
    }
    sent += flush(client, &endpoint, &mut batch).await?;
    progress.finish_with_message(format!("{sent} sent"));
    Ok(())
}

async fn flush(
    client: &super::Client,
    endpoint: &str,
    batch: &mut Vec<Value>,
) -> anyhow::Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let count = batch.len();
    let body = json!({ "messages": std::mem::take(batch) });
    client.post_json(endpoint, &body).await?;
    Ok(count)
}

#[derive(Debug, Args)]
pub struct PeekArgs {
    /// The queue.
    queue: String,
    /// How many messages.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    #[command(flatten)]
    remote: Remote,
}

pub async fn peek(args: PeekArgs) -> anyhow::Result<()> {
    let path = format!(
        "/v1/queues/{}/messages?limit={}",
        segment(&args.queue),
        args.limit
    );
    let answer = args.remote.client().get(&path).await?;
    let messages = answer["messages"].as_array().into_iter().flatten();
    if args.remote.json {
        // One message per line, so the output pipes into `jq` or back into `send --file`.
        for message in messages {
            println!("{}", serde_json::to_string(message)?);
        }
    } else {
        for message in messages {
            print!("{}", show_message(message));
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// The queue.
    queue: String,
    /// How many messages at most (`--max` is the same flag).
    #[arg(long, visible_alias = "max", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    limit: u64,
    /// Wait this long for a first message when none is visible (at most 20s).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    wait: Duration,
    /// Keep them leased this long (default: the queue's visibility timeout).
    #[arg(long, value_parser = parse_duration)]
    visibility: Option<Duration>,
    /// Acknowledge (delete) them once printed; without it, settle them with their receipts
    /// through the API before the visibility timeout passes, or they are delivered again.
    #[arg(long)]
    ack: bool,
    #[command(flatten)]
    remote: Remote,
}

pub async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let client = args.remote.client();
    let queue = segment(&args.queue);
    let mut request = json!({
        "max_messages": args.limit,
        "wait_ms": u64::try_from(args.wait.as_millis()).unwrap_or(u64::MAX),
    });
    if let Some(visibility) = args.visibility {
        request["visibility_timeout_ms"] =
            json!(u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX));
    }
    let answer = client
        .post_json(&format!("/v1/queues/{queue}/messages/receive"), &request)
        .await?;
    let messages: Vec<Value> = answer["messages"].as_array().cloned().unwrap_or_default();
    for message in &messages {
        if args.remote.json {
            println!("{}", serde_json::to_string(message)?);
        } else {
            print!("{}", show_message(message));
            println!("  receipt: {}", view::text(&message["receipt"]));
        }
    }
    if args.ack && !messages.is_empty() {
        let receipts: Vec<&Value> = messages.iter().map(|m| &m["receipt"]).collect();
        let answer = client
            .post_json(
                &format!("/v1/queues/{queue}/messages/ack"),
                &json!({ "receipts": receipts }),
            )
            .await?;
        if let Some(failed) = answer["failed"].as_array().filter(|f| !f.is_empty()) {
            bail!(
                "{} of {} messages were not acknowledged: {}",
                failed.len(),
                messages.len(),
                view::text(&failed[0]["message"])
            );
        }
    }
    if messages.is_empty() && !args.remote.json {
        eprintln!("no messages");
    }
    Ok(())
}

/// The most bytes of a binary body shown (as hex).
const BINARY_SHOWN: usize = 64;

/// One peeked message: its id, attempt, age, priority and group, attributes and body (text
/// with control characters escaped, so a body cannot drive the terminal; or the start of it in
/// hex when binary).
fn show_message(message: &Value) -> String {
    let mut out = format!(
        "{}  attempt {}  enqueued {}  priority {}",
        view::text(&message["id"]),
        view::text(&message["attempt"]),
        view::time_of(&message["enqueued_at_ms"]),
        view::text(&message["priority"]),
    );
    if let Some(group) = message["group"].as_str() {
        out.push_str(&format!("  group {}", escape_controls(group)));
    }
    out.push('\n');
    if let Some(attributes) = message["attributes"].as_object() {
        for (key, value) in attributes {
            let value = escape_controls(&view::text(value));
            out.push_str(&format!("  {}: {value}\n", escape_controls(key)));
        }
    }
    match message["body"].as_str() {
        Some(body) => out.push_str(&indent(&escape_controls(body))),
        None => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(message["body_base64"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let shown = &bytes[..bytes.len().min(BINARY_SHOWN)];
            let more = if bytes.len() > shown.len() { "…" } else { "" };
            out.push_str(&format!(
                "  (binary, {}) {}{more}\n",
                view::bytes(bytes.len() as u64),
                hex::encode(shown)
            ));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peeked_message_shows_priority_and_group_and_cannot_drive_the_terminal() {
        let shown = show_message(&json!({
            "id": "7", "attempt": 1, "enqueued_at_ms": 0, "priority": 9, "group": "g\u{7}",
            "attributes": {"k\u{1b}[2J": "v"},
            "body": "line one\n\u{1b}]0;owned\u{7}line two",
        }));
        assert!(shown.contains("priority 9  group g\\u{7}"), "{shown}");
        assert!(shown.contains("k\\u{1b}[2J: v"), "{shown}");
        assert!(
            shown.contains("  line one\n  \\u{1b}]0;owned\\u{7}line two"),
            "{shown}"
        );
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown}"
        );
    }

    #[test]
    fn a_binary_body_shows_its_size_and_its_start_in_hex() {
        use base64::Engine as _;
        let body = vec![0xffu8; 1000];
        let shown = show_message(&json!({
            "id": "8", "attempt": 0, "enqueued_at_ms": 0, "priority": 4, "group": null,
            "body": null,
            "body_base64": base64::engine::general_purpose::STANDARD.encode(&body),
        }));
        let hex_shown = "ff".repeat(BINARY_SHOWN);
        assert!(
            shown.contains(&format!("(binary, 1000 B) {hex_shown}…")),
            "{shown}"
        );
        assert!(!shown.contains("group"), "{shown}");
    }
}
