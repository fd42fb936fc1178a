//! `sluice apply sluice.toml`: makes the server match a manifest. Idempotent: queues are created
//! or changed, a component becomes a new version only when its bytes or config differ from the
//! active version (the server compares, since environment values are write-only), triggers are
//! put as written. The plan (what would change, and what the server would refuse) is worked
//! out from the server's state before anything changes; `--dry-run` prints it and stops there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::Remote;
use super::client::segment;
use super::functions::{config_query, unchanged};
use crate::config::{FunctionManifest, Manifest};
use crate::functions::FunctionConfig;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The manifest.
    #[arg(default_value = "sluice.toml")]
    file: PathBuf,
    /// Print what would change, and what the server would refuse, without changing anything.
    #[arg(long)]
    dry_run: bool,
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

    let state = State::fetch(&client).await?;
    let mut components = BTreeMap::new();
    for (name, function) in &manifest.functions {
        let path = base.join(&function.component);
        let component = std::fs::read(&path)
            .map(|wasm| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm)))
            .map_err(|e| {
                format!(
                    "function {name}: cannot read its component at {} ({e}); build it first",
                    path.display()
                )
            });
        components.insert(name.clone(), component);
    }
    let plan = plan(&manifest, &state, &components);
    if args.dry_run {
        for step in &plan.steps {
            println!("{step}");
        }
        for problem in &plan.problems {
            println!("error: {problem}");
        }
        if !plan.problems.is_empty() {
            bail!(
                "dry run: applying {} would fail ({} problem(s) above); nothing was changed",
                args.file.display(),
                plan.problems.len()
            );
        }
        println!("dry run: nothing was changed");
        return Ok(());
    }
    if !plan.problems.is_empty() {
        bail!(
            "nothing was changed: {} cannot be applied:\n  {}",
            args.file.display(),
            plan.problems.join("\n  ")
        );
    }

    // Queues first, with their dead-letter queues as they are (none for a new queue), so every
    // DLQ exists before it is referenced.
    for (name, settings) in &manifest.queues {
        let mut body = serde_json::to_value(settings)?;
        body["dead_letter_queue"] = Value::Null;
        if let Some(current) = state.queues.get(name) {
            if queue_changes(current, settings).is_empty() {
                println!("queue {name}: unchanged");
                continue;
            }
            body["dead_letter_queue"] = current["dead_letter_queue"].clone();
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
        let current = state
            .queues
            .get(name)
            .map(|q| q["dead_letter_queue"].clone())
            .unwrap_or(Value::Null);
        if json!(settings.dead_letter_queue) != current {
            let body = json!({ "dead_letter_queue": settings.dead_letter_queue });
            client
                .patch_json(&format!("/v1/queues/{}", segment(name)), &body)
                .await
                .with_context(|| format!("setting the dead-letter queue of {name}"))?;
        }
    }

    // Buckets before the functions that name them.
    for (name, bucket) in &manifest.kv {
        if let Some(current) = state.buckets.get(name)
            && current["ttl_ms"] == json!(bucket.ttl_ms)
        {
            println!("bucket {name}: unchanged");
            continue;
        }
        let request = client
            .request(Method::PUT, &format!("/v1/kv/{}", segment(name)))
            .json(&json!({ "ttl_ms": bucket.ttl_ms }));
        client
            .send(request)
            .await
            .with_context(|| format!("putting bucket {name}"))?;
        let verb = if state.buckets.contains_key(name) {
            "updated"
        } else {
            "created"
        };
        println!("bucket {name}: {verb}");
    }

    for (name, function) in &manifest.functions {
        let path = base.join(&function.component);
        let wasm = std::fs::read(&path).with_context(|| {
            format!(
                "reading the component of function {name} at {} (build it first)",
                path.display()
            )
        })?;
        let wanted = wanted_config(function);
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

/// The config a manifest's function asks for, exactly as the server stores it.
fn wanted_config(function: &FunctionManifest) -> FunctionConfig {
    let defaults = FunctionConfig::default();
    FunctionConfig {
        env: function.env.clone(),
        timeout_ms: function.timeout_ms.unwrap_or(defaults.timeout_ms),
        memory_mb: function.memory_mb.unwrap_or(defaults.memory_mb),
        max_sends: function.max_sends.unwrap_or(defaults.max_sends),
        allowed_outbound_hosts: function.allowed_outbound_hosts.clone(),
        kv_buckets: function.kv_buckets.clone(),
        max_outbound_requests: function
            .max_outbound_requests
            .unwrap_or(defaults.max_outbound_requests),
        max_outbound_response_bytes: function
            .max_outbound_response_bytes
            .unwrap_or(defaults.max_outbound_response_bytes),
        outbound_timeout_ms: function
            .outbound_timeout_ms
            .unwrap_or(defaults.outbound_timeout_ms),
    }
}

/// What the server holds now, by name, as its API shows it.
#[derive(Debug, Default)]
struct State {
    /// Each queue's settings.
    queues: BTreeMap<String, Value>,
    /// Each function with its versions and trigger.
    functions: BTreeMap<String, Value>,
    schedules: BTreeMap<String, Value>,
    /// Each topic with its subscriptions.
    topics: BTreeMap<String, Value>,
    /// Each key-value bucket.
    buckets: BTreeMap<String, Value>,
}

impl State {
    async fn fetch(client: &super::client::Client) -> anyhow::Result<State> {
        let by_name = |list: &Value, key: &str, pick: fn(&Value) -> Value| {
            list[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| Some((item["name"].as_str()?.to_owned(), pick(item))))
                .collect::<BTreeMap<_, _>>()
        };
        Ok(State {
            queues: by_name(&client.get("/v1/queues").await?, "queues", |q| {
                q["settings"].clone()
            }),
            functions: by_name(
                &client.get("/v1/functions").await?,
                "functions",
                Value::clone,
            ),
            schedules: by_name(
                &client.get("/v1/schedules").await?,
                "schedules",
                Value::clone,
            ),
            topics: by_name(&client.get("/v1/topics").await?, "topics", Value::clone),
            buckets: by_name(&client.get("/v1/kv").await?, "buckets", Value::clone),
        })
    }
}

/// What applying a manifest would do, one line per thing it names, and what the server would
/// refuse.
#[derive(Debug, Default)]
struct Plan {
    steps: Vec<String>,
    problems: Vec<String>,
}

/// `a → b` for every queue setting the manifest changes.
fn queue_changes(current: &Value, wanted: &crate::api::model::QueueSettings) -> Vec<String> {
    let wanted = serde_json::to_value(wanted).unwrap_or_default();
    let mut changes = Vec::new();
    for (key, value) in wanted.as_object().into_iter().flatten() {
        if current[key] != *value {
            changes.push(format!("{key} {} → {}", shown(&current[key]), shown(value)));
        }
    }
    changes
}

/// A setting's value as a person reads it: strings unquoted, null as `none`.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Works out what applying `manifest` to a server in `state` would change, and what it would
/// refuse, without changing anything. `components` is each function's component's SHA-256
/// (hex), or why it could not be read.
fn plan(
    manifest: &Manifest,
    state: &State,
    components: &BTreeMap<String, Result<String, String>>,
) -> Plan {
    let mut plan = Plan::default();
    let queue_exists =
        |queue: &str| manifest.queues.contains_key(queue) || state.queues.contains_key(queue);

    for (name, settings) in &manifest.queues {
        match state.queues.get(name) {
            None => plan.steps.push(format!("queue {name}: create")),
            Some(current) => {
                let changes = queue_changes(current, settings);
                plan.steps.push(if changes.is_empty() {
                    format!("queue {name}: unchanged")
                } else {
                    format!("queue {name}: update ({})", changes.join(", "))
                });
            }
        }
        if let Some(dlq) = &settings.dead_letter_queue
            && !queue_exists(dlq)
        {
            plan.problems.push(format!(
                "queue {name}: its dead-letter queue `{dlq}` does not exist; add \
                 [queues.{dlq}] to the manifest or create it first"
            ));
        }
    }

    for (name, bucket) in &manifest.kv {
        plan.steps.push(match state.buckets.get(name) {
            None => format!("bucket {name}: create"),
            Some(current) if current["ttl_ms"] == json!(bucket.ttl_ms) => {
                format!("bucket {name}: unchanged")
            }
            Some(current) => format!(
                "bucket {name}: update (ttl_ms {} → {})",
                shown(&current["ttl_ms"]),
                shown(&json!(bucket.ttl_ms))
            ),
        });
    }
    let bucket_exists =
        |bucket: &str| manifest.kv.contains_key(bucket) || state.buckets.contains_key(bucket);
    for (name, function) in &manifest.functions {
        for bucket in function.kv_buckets.iter().filter(|b| !bucket_exists(b)) {
            plan.problems.push(format!(
                "function {name}: its bucket `{bucket}` does not exist; add [kv.{bucket}] to \
                 the manifest or create it first (`sluice kv create {bucket}`)"
            ));
        }
    }

    // Which function each queue's trigger belongs to after the manifest's functions have
    // been applied in order; a queue has one consumer.
    let mut consumers: BTreeMap<String, String> = state
        .functions
        .iter()
        .filter_map(|(name, f)| Some((f["trigger"]["queue"].as_str()?.to_owned(), name.clone())))
        .collect();
    for (name, function) in &manifest.functions {
        let current = state.functions.get(name);
        match components.get(name) {
            Some(Ok(sha256)) => {
                plan.steps
                    .push(function_step(name, function, current, sha256));
            }
            Some(Err(problem)) => plan.problems.push(problem.clone()),
            None => plan
                .problems
                .push(format!("function {name}: its component was not read")),
        }
        let current_trigger = current.map(|f| &f["trigger"]).filter(|t| !t.is_null());
        if let Some(queue) = current_trigger.and_then(|t| t["queue"].as_str()) {
            consumers.remove(queue);
        }
        match (&function.trigger, current_trigger) {
            (Some(trigger), current) => {
                let wanted = serde_json::to_value(trigger).unwrap_or_default();
                let changes: Vec<String> = match current {
                    None => Vec::new(),
                    Some(current) => wanted
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(key, value)| current[key.as_str()] != **value)
                        .map(|(key, value)| {
                            format!("{key} {} → {}", shown(&current[key.as_str()]), shown(value))
                        })
                        .collect(),
                };
                plan.steps.push(match (current, changes.is_empty()) {
                    (None, _) => format!("function {name}: consume {}", trigger.queue),
                    (Some(_), true) => format!("function {name}: trigger unchanged"),
                    (Some(_), false) => {
                        format!("function {name}: trigger update ({})", changes.join(", "))
                    }
                });
                if !queue_exists(&trigger.queue) {
                    plan.problems.push(format!(
                        "function {name}: its trigger's queue `{}` does not exist; add \
                         [queues.{}] to the manifest or create it first",
                        trigger.queue, trigger.queue
                    ));
                }
                if let Some(other) = consumers.get(&trigger.queue) {
                    plan.problems.push(format!(
                        "function {name}: queue `{}` is consumed by function `{other}`; \
                         delete that trigger first (`sluice functions untrigger {other}`)",
                        trigger.queue
                    ));
                } else {
                    consumers.insert(trigger.queue.clone(), name.clone());
                }
            }
            (None, Some(current)) => plan.steps.push(format!(
                "function {name}: remove the trigger (stop consuming {})",
                shown(&current["queue"])
            )),
            (None, None) => {}
        }
    }

    for (name, schedule) in &manifest.schedules {
        let same = state.schedules.get(name).is_some_and(|c| {
            c["cron"] == schedule.cron.as_str()
                && c["timezone"] == schedule.timezone.as_str()
                && c["queue"] == schedule.queue.as_str()
                && c["body"] == schedule.body.as_str()
                && c["attributes"] == json!(schedule.attributes)
        });
        plan.steps
            .push(match (state.schedules.contains_key(name), same) {
                (_, true) => format!("schedule {name}: unchanged"),
                (false, _) => format!(
                    "schedule {name}: create (into {} on `{}`)",
                    schedule.queue, schedule.cron
                ),
                (true, _) => format!(
                    "schedule {name}: replace (into {} on `{}`)",
                    schedule.queue, schedule.cron
                ),
            });
        if !queue_exists(&schedule.queue) {
            plan.problems.push(format!(
                "schedule {name}: its queue `{}` does not exist; add [queues.{}] to the \
                 manifest or create it first",
                schedule.queue, schedule.queue
            ));
        }
    }

    for (name, topic) in &manifest.topics {
        let current = state.topics.get(name);
        plan.steps.push(match current {
            None => format!("topic {name}: create"),
            Some(_) => format!("topic {name}: exists"),
        });
        for (queue, subscription) in &topic.subscriptions {
            let existing = current.and_then(|t| {
                t["subscriptions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| s["queue"] == queue.as_str())
            });
            let wanted_filter = subscription.filter.clone().unwrap_or_else(|| json!({}));
            plan.steps.push(match existing {
                None => format!("topic {name}: subscribe {queue}"),
                Some(s) if s["filter"] == wanted_filter => {
                    format!("topic {name}: {queue}'s subscription unchanged")
                }
                Some(_) => format!("topic {name}: {queue}'s subscription changes its filter"),
            });
            if !queue_exists(queue) {
                plan.problems.push(format!(
                    "topic {name}: the subscribing queue `{queue}` does not exist; add \
                     [queues.{queue}] to the manifest or create it first"
                ));
            }
        }
    }
    plan
}

/// One function's line of the plan: a new version (and why) or unchanged.
fn function_step(
    name: &str,
    function: &FunctionManifest,
    current: Option<&Value>,
    sha256: &str,
) -> String {
    let Some(current) = current else {
        return format!("function {name}: deploy version 1");
    };
    let active = current["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"] == current["active_version"]);
    let Some(active) = active else {
        return format!("function {name}: deploy a new version");
    };
    let wanted = wanted_config(function);
    let mut wanted_view = serde_json::to_value(&wanted).unwrap_or_default();
    if let Some(view) = wanted_view.as_object_mut() {
        view.remove("env");
        view.insert(
            "env_names".to_owned(),
            json!(wanted.env.keys().collect::<Vec<_>>()),
        );
    }
    let mut changes = Vec::new();
    if active["sha256"] != sha256 {
        changes.push("the component changed".to_owned());
    }
    for (key, value) in wanted_view.as_object().into_iter().flatten() {
        if active["config"][key.as_str()] != *value {
            changes.push(format!(
                "{key} {} → {}",
                shown(&active["config"][key.as_str()]),
                shown(value)
            ));
        }
    }
    let next = active["version"].as_u64().unwrap_or(0).max(
        current["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["version"].as_u64())
            .max()
            .unwrap_or(0),
    ) + 1;
    if !changes.is_empty() {
        return format!(
            "function {name}: deploy version {next} ({})",
            changes.join(", ")
        );
    }
    if wanted.env.is_empty() {
        format!("function {name}: unchanged (version {})", active["version"])
    } else {
        // The server never shows environment values, so only it can tell whether they changed.
        format!(
            "function {name}: unchanged (version {}) unless an env value changed (values are \
             write-only: the server compares them when applying)",
            active["version"]
        )
    }
}
