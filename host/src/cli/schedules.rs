//! `sluice schedule put|list|show|delete`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::segment;
use super::view::{self, Align, Table};
use super::{Remote, parse_pair, print_json};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create or replace a schedule: enqueue a message on each tick of a cron expression.
    Put(PutArgs),
    /// List schedules with their next ticks.
    List(ListArgs),
    /// Show a schedule.
    Show(NameArgs),
    /// Delete a schedule.
    Delete(NameArgs),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The schedule's name.
    name: String,
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.
    #[arg(long)]
    cron: String,
    /// The queue each tick enqueues into.
    #[arg(long)]
    queue: String,
    /// An IANA time zone the expression is read in.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// The message body.
    #[arg(long, default_value = "")]
    body: String,
    /// An attribute of every message, KEY=VALUE (repeatable).
    #[arg(long = "attr", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
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
    /// The schedule's name.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

/// The body of `PUT /v1/schedules/{name}`.
pub fn put_body(
    cron: &str,
    timezone: &str,
    queue: &str,
    body: &str,
    attributes: &[(String, String)],
) -> Value {
    let attributes: Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "cron": cron, "timezone": timezone, "queue": queue, "body": body,
        "attributes": attributes,
    })
}

pub async fn run(command: ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Put(args) => {
            let body = put_body(
                &args.cron,
                &args.timezone,
                &args.queue,
                &args.body,
                &args.attributes,
            );
            let client = args.remote.client();
            let path = format!("/v1/schedules/{}", segment(&args.name));
            let put = client
                .send(client.request(Method::PUT, &path).json(&body))
                .await?;
            if args.remote.json {
                print_json(&put);
            } else {
                println!(
                    "schedule {} enqueues into {} on `{}` ({}); next tick {}",
                    args.name,
                    view::text(&put["queue"]),
                    view::text(&put["cron"]),
                    view::text(&put["timezone"]),
                    view::time_of(&put["next_tick_ms"]),
                );
            }
        }
        ScheduleCommand::List(args) => {
            let list = args.remote.client().get("/v1/schedules").await?;
            if args.remote.json {
                print_json(&list);
                return Ok(());
            }
            let mut table = Table::new(&[
                ("NAME", Align::Left),
                ("CRON", Align::Left),
                ("TIMEZONE", Align::Left),
                ("QUEUE", Align::Left),
                ("NEXT TICK", Align::Left),
            ]);
            for s in list["schedules"].as_array().into_iter().flatten() {
                table.row(vec![
                    view::text(&s["name"]),
                    view::text(&s["cron"]),
                    view::text(&s["timezone"]),
                    view::text(&s["queue"]),
                    view::time_of(&s["next_tick_ms"]),
                ]);
            }
            print!("{}", table.render());
        }
        ScheduleCommand::Show(args) => {
            let path = format!("/v1/schedules/{}", segment(&args.name));
            let s = args.remote.client().get(&path).await?;
            if args.remote.json {
                print_json(&s);
                return Ok(());
            }
            println!("name       {}", view::text(&s["name"]));
            println!(
                "cron       {} ({})",
                view::text(&s["cron"]),
                view::text(&s["timezone"])
            );
            println!("queue      {}", view::text(&s["queue"]));
            println!("next tick  {}", view::time_of(&s["next_tick_ms"]));
            println!("body       {}", view::text(&s["body"]));
            if let Some(attributes) = s["attributes"].as_object() {
                for (key, value) in attributes {
                    println!("  {key}: {}", view::text(value));
                }
            }
        }
        ScheduleCommand::Delete(args) => {
            let path = format!("/v1/schedules/{}", segment(&args.name));
            args.remote.client().delete(&path).await?;
            println!("deleted schedule {}", args.name);
        }
    }
    Ok(())
}
