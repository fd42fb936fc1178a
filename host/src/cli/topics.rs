//! `sluice topic create|list|show|delete|subscribe|unsubscribe` and `sluice publish`.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::segment;
use super::view::{self, Align, Table};
use super::{Remote, parse_duration, parse_pair, print_json};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic that keeps what is published for `--retention`.
    Create(CreateArgs),
    /// List topics with their subscriptions.
    List(ListArgs),
    /// Show a topic and its subscriptions.
    Show(NameArgs),
    /// Delete a topic, its history and its subscriptions (not their queues).
    Delete(NameArgs),
    /// Copy a topic's messages (those passing `--filter`) into a queue, from `--from` on.
    Subscribe(SubscribeArgs),
    /// Stop copying a topic's messages into a queue.
    Unsubscribe(UnsubscribeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    /// How long published messages are kept for replay (at most 14 days).
    #[arg(long, value_parser = parse_duration, default_value = "1day")]
    retention: Duration,
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
pub struct SubscribeArgs {
    topic: String,
    queue: String,
    /// A JSON object of attribute conditions, e.g. '{"kind": "order", "region": {"prefix":
    /// "eu-"}}' (default: every message).
    #[arg(long)]
    filter: Option<String>,
    /// Where a new subscription starts: latest, earliest, or a time in ms since the epoch.
    #[arg(long, default_value = "latest")]
    from: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct UnsubscribeArgs {
    topic: String,
    queue: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The topic.
    topic: String,
    /// The body; read from standard input when not given.
    body: Option<String>,
    /// An attribute, KEY=VALUE (repeatable).
    #[arg(long = "attr", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
    /// 0 (lowest) to 9 (highest), carried into every copy.
    #[arg(long)]
    priority: Option<u8>,
    /// A group key, carried into every copy.
    #[arg(long)]
    group: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

fn topic_path(name: &str) -> String {
    format!("/v1/topics/{}", segment(name))
}

pub async fn run(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(args) => {
            let body =
                json!({"name": args.name, "retention_ms": args.retention.as_millis() as u64});
            let created = args.remote.client().post_json("/v1/topics", &body).await?;
            if args.remote.json {
                print_json(&created);
            } else {
                println!(
                    "topic {} keeps messages for {}",
                    args.name,
                    view::millis_of(&created["retention_ms"])
                );
            }
        }
        TopicCommand::List(args) => {
            let list = args.remote.client().get("/v1/topics").await?;
            if args.remote.json {
                print_json(&list);
                return Ok(());
            }
            let mut table = Table::new(&[
                ("NAME", Align::Left),
                ("PUBLISHED", Align::Right),
                ("RETENTION", Align::Left),
                ("SUBSCRIBERS", Align::Left),
            ]);
            for t in list["topics"].as_array().into_iter().flatten() {
                let queues: Vec<String> = t["subscriptions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| view::text(&s["queue"]))
                    .collect();
                table.row(vec![
                    view::text(&t["name"]),
                    view::text(&t["published"]),
                    view::millis_of(&t["retention_ms"]),
                    queues.join(", "),
                ]);
            }
            print!("{}", table.render());
        }
        TopicCommand::Show(args) => {
            let t = args.remote.client().get(&topic_path(&args.name)).await?;
            if args.remote.json {
                print_json(&t);
                return Ok(());
            }
            println!("name       {}", view::text(&t["name"]));
            println!("published  {}", view::text(&t["published"]));
            println!("retention  {}", view::millis_of(&t["retention_ms"]));
            println!("created    {}", view::time_of(&t["created_at_ms"]));
            let mut table = Table::new(&[
                ("QUEUE", Align::Left),
                ("POSITION", Align::Right),
                ("STATE", Align::Left),
                ("FILTER", Align::Left),
            ]);
            for s in t["subscriptions"].as_array().into_iter().flatten() {
                let state = match s["replaying"].as_bool() {
                    Some(true) => "replaying",
                    _ => "live",
                };
                table.row(vec![
                    view::text(&s["queue"]),
                    view::text(&s["position"]),
                    state.to_owned(),
                    s["filter"].to_string(),
                ]);
            }
            print!("{}", table.render());
        }
        TopicCommand::Delete(args) => {
            args.remote.client().delete(&topic_path(&args.name)).await?;
            println!("deleted topic {}", args.name);
        }
        TopicCommand::Subscribe(args) => {
            let filter: Value = match &args.filter {
                Some(text) => serde_json::from_str(text).context("--filter is not JSON")?,
                None => json!({}),
            };
            let from = match args.from.as_str() {
                "latest" | "earliest" => json!(args.from),
                ms => json!(ms.parse::<u64>().with_context(|| format!(
                    "--from must be latest, earliest or a time in ms since the epoch, not `{ms}`"
                ))?),
            };
            let client = args.remote.client();
            let path = format!(
                "{}/subscriptions/{}",
                topic_path(&args.topic),
                segment(&args.queue)
            );
            let body = json!({"filter": filter, "from": from});
            let sub = client
                .send(client.request(Method::PUT, &path).json(&body))
                .await?;
            if args.remote.json {
                print_json(&sub);
            } else {
                let state = match sub["replaying"].as_bool() {
                    Some(true) => "replaying history",
                    _ => "live",
                };
                println!(
                    "queue {} subscribes to topic {} ({state})",
                    args.queue, args.topic
                );
            }
        }
        TopicCommand::Unsubscribe(args) => {
            let path = format!(
                "{}/subscriptions/{}",
                topic_path(&args.topic),
                segment(&args.queue)
            );
            args.remote.client().delete(&path).await?;
            println!(
                "queue {} no longer subscribes to topic {}",
                args.queue, args.topic
            );
        }
    }
    Ok(())
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
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
    let client = args.remote.client();
    let mut request = client
        .request(
            Method::POST,
            &format!("{}/messages", topic_path(&args.topic)),
        )
        .body(body);
    for (key, value) in &args.attributes {
        request = request.header(format!("sluice-attr-{key}"), value);
    }
    if let Some(priority) = args.priority {
        request = request.header("sluice-priority", priority.to_string());
    }
    if let Some(group) = &args.group {
        request = request.header("sluice-group", group);
    }
    let answer = client.send(request).await?;
    if args.remote.json {
        print_json(&answer);
    } else {
        println!(
            "published #{} into {} queue(s)",
            view::text(&answer["seq"]),
            view::text(&answer["copies"])
        );
    }
    Ok(())
}
