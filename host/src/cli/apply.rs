//! `sluice apply sluice.toml`: makes the server match a manifest. Idempotent: queues are created
//! or changed, a component becomes a new version only when its bytes or config differ from the
//! active version (the server compares, since environment values are write-only), triggers are
//! put as written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::Remote;
use super::client::segment;
use super::functions::{config_query, unchanged};
use crate::config::Manifest;
use crate::functions::FunctionConfig;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The manifest.
    #[arg(default_value = "sluice.toml")]
    file: PathBuf,
    #[command(flatten)]
    remote: Remote,
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let manifest = Manifest::parse(&text)
        .with_context(|| format!("{} is not a valid manifest", args.file.display()))?;
    let base = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let client = args.remote.client();

    // Queues first, without dead-letter queues, so every DLQ exists before it is referenced.
    let existing = client.get("/v1/queues").await?;
    let existing: Vec<&str> = existing["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["name"].as_str())
        .collect();
    for (name, settings) in &manifest.queues {
        let mut body = serde_json::to_value(settings)?;
        body["dead_letter_queue"] = Value::Null;
        if existing.contains(&name.as_str()) {
            client
                .patch_json(&format!("/v1/queues/{}", segment(name)), &body)
                .await
                .with_context(|| format!("updating queue {name}"))?;
            println!("queue {name}: updated");
        } else {
            body["name"] = json!(name);
            client
                .post_json("/v1/queues", &body)
                .await
                .with_context(|| format!("creating queue {name}"))?;
            println!("queue {name}: created");
        }
    }
    for (name, settings) in &manifest.queues {
        if let Some(dlq) = &settings.dead_letter_queue {
            let body = json!({ "dead_letter_queue": dlq });
            client
                .patch_json(&format!("/v1/queues/{}", segment(name)), &body)
                .await
                .with_context(|| format!("setting the dead-letter queue of {name}"))?;
        }
    }

    for (name, function) in &manifest.functions {
        let path = base.join(&function.component);
        let wasm = std::fs::read(&path).with_context(|| {
            format!(
                "reading the component of function {name} at {} (build it first)",
                path.display()
            )
        })?;
        let defaults = FunctionConfig::default();
        let wanted = FunctionConfig {
            env: function.env.clone(),
            timeout_ms: function.timeout_ms.unwrap_or(defaults.timeout_ms),
            memory_mb: function.memory_mb.unwrap_or(defaults.memory_mb),
            max_sends: function.max_sends.unwrap_or(defaults.max_sends),
            allowed_outbound_hosts: function.allowed_outbound_hosts.clone(),
            max_outbound_requests: function
                .max_outbound_requests
                .unwrap_or(defaults.max_outbound_requests),
            max_outbound_response_bytes: function
                .max_outbound_response_bytes
                .unwrap_or(defaults.max_outbound_response_bytes),
            outbound_timeout_ms: function
                .outbound_timeout_ms
                .unwrap_or(defaults.outbound_timeout_ms),
        };
        let current = client
            .get(&format!("/v1/functions/{}", segment(name)))
            .await
            .ok();
        // Environment values never come back from the server, so the server compares: with
        // `if_changed` it adds no version when the bytes and config equal the active version.
        let request = client
            .request(Method::PUT, &format!("/v1/functions/{}", segment(name)))
            .query(&config_query(&wanted))
            .header("content-type", "application/wasm")
            .body(wasm);
        let record = client
            .send(request)
            .await
            .with_context(|| format!("deploying function {name}"))?;
        if unchanged(current.as_ref(), &record) {
            println!("function {name}: unchanged");
        } else {
            println!(
                "function {name}: deployed version {}",
                record["active_version"]
            );
        }
        match &function.trigger {
            Some(trigger) => {
                let request = client
                    .request(
                        Method::PUT,
                        &format!("/v1/functions/{}/trigger", segment(name)),
                    )
                    .json(trigger);
                client
                    .send(request)
                    .await
                    .with_context(|| format!("setting the trigger of {name}"))?;
                println!("function {name}: consumes {}", trigger.queue);
            }
            None => {
                let has_trigger = current.as_ref().is_some_and(|r| !r["trigger"].is_null());
                if has_trigger {
                    client
                        .delete(&format!("/v1/functions/{}/trigger", segment(name)))
                        .await?;
                    println!("function {name}: trigger removed");
                }
            }
        }
    }

    for (name, schedule) in &manifest.schedules {
        let attributes: Vec<(String, String)> = schedule
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let body = super::schedules::put_body(
            &schedule.cron,
            &schedule.timezone,
            &schedule.queue,
            &schedule.body,
            &attributes,
        );
        let current = client
            .get(&format!("/v1/schedules/{}", segment(name)))
            .await
            .ok();
        let same = current.as_ref().is_some_and(|c| {
            c["cron"] == body["cron"]
                && c["timezone"] == body["timezone"]
                && c["queue"] == body["queue"]
                && c["body"] == body["body"]
                && c["attributes"] == body["attributes"]
        });
        if same {
            // Putting it again would only move its next tick: leave it running.
            println!("schedule {name}: unchanged");
            continue;
        }
        let request = client
            .request(Method::PUT, &format!("/v1/schedules/{}", segment(name)))
            .json(&body);
        client
            .send(request)
            .await
            .with_context(|| format!("putting schedule {name}"))?;
        println!(
            "schedule {name}: enqueues into {} on `{}`",
            schedule.queue, schedule.cron
        );
    }

    // Topics after queues: a subscription names its queue.
    for (name, topic) in &manifest.topics {
        let path = format!("/v1/topics/{}", segment(name));
        if client.get(&path).await.is_ok() {
            println!("topic {name}: exists");
        } else {
            let mut body = json!({ "name": name });
            if let Some(retention_ms) = topic.retention_ms {
                body["retention_ms"] = json!(retention_ms);
            }
            client
                .post_json("/v1/topics", &body)
                .await
                .with_context(|| format!("creating topic {name}"))?;
            println!("topic {name}: created");
        }
        for (queue, subscription) in &topic.subscriptions {
            let request = client
                .request(
                    Method::PUT,
                    &format!("{path}/subscriptions/{}", segment(queue)),
                )
                .json(subscription);
            client
                .send(request)
                .await
                .with_context(|| format!("subscribing {queue} to topic {name}"))?;
            println!("topic {name}: {queue} subscribes");
        }
    }
    Ok(())
}
