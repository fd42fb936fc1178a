//! The SQS operations, each on the JSON protocol's shape of parameters and answer: queues
//! (create, URL, list, delete, attributes, purge, tags, permissions, dead-letter sources, move
//! tasks as redrives), sends (FIFO queues on ordered groups and dedup ids), and receive /
//! delete / visibility through the pull consumers' receipts.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Digest;
use serde_json::{Map, Value, json};

use super::error::{Code, SqsError};
use super::meta::{self, Extension, MoveTask};
use super::wire::{self, integer, string_map, strings, text};
use super::{ACCOUNT, Call, authorize};
use crate::api::AppState;
use crate::auth::Need;
use crate::pull::{self, Action, Outcome, ReceiveOptions};
use crate::store::{self, NewMessage, QueueSettings};

type Answer = Result<Map<String, Value>, SqsError>;

pub async fn run(app: &AppState, call: Call) -> Answer {
    let op = call.op.as_str();
    match op {
        "CreateQueue" => create_queue(app, &call).await,
        "GetQueueUrl" => get_queue_url(app, &call).await,
        "ListQueues" => list_queues(app, &call).await,
        "DeleteQueue" => delete_queue(app, &call).await,
        "PurgeQueue" => purge_queue(app, &call).await,
        "GetQueueAttributes" => get_queue_attributes(app, &call).await,
        "SetQueueAttributes" => set_queue_attributes(app, &call).await,
        "SendMessage" => send_message(app, &call).await,
        "SendMessageBatch" => send_message_batch(app, &call).await,
        "ReceiveMessage" => receive_message(app, &call).await,
        "DeleteMessage" => delete_message(app, &call).await,
        "DeleteMessageBatch" => delete_message_batch(app, &call).await,
        "ChangeMessageVisibility" => change_visibility(app, &call).await,
        "ChangeMessageVisibilityBatch" => change_visibility_batch(app, &call).await,
        "TagQueue" => tag_queue(app, &call).await,
        "UntagQueue" => untag_queue(app, &call).await,
        "ListQueueTags" => list_queue_tags(app, &call).await,
        "AddPermission" => add_permission(app, &call).await,
        "RemovePermission" => remove_permission(app, &call).await,
        "ListDeadLetterSourceQueues" => list_dead_letter_source_queues(app, &call).await,
        "StartMessageMoveTask" => start_message_move_task(app, &call).await,
        "ListMessageMoveTasks" => list_message_move_tasks(app, &call).await,
        "CancelMessageMoveTask" => cancel_message_move_task(app, &call).await,
        _ => Err(SqsError::new(
            Code::InvalidAction,
            format!("The action {op} is not valid for this endpoint."),
        )),
    }
}

fn queue_url(call: &Call, queue: &str) -> String {
    format!("{}/{ACCOUNT}/{queue}", call.base)
}

/// The queue a call addresses: its `QueueUrl`, or (query protocol) the path it was sent to.
fn queue_of(call: &Call) -> Result<String, SqsError> {
    let url = match text(&call.params, "QueueUrl")? {
        Some(url) => url.to_owned(),
        None if call.path.trim_matches('/').contains('/') => call.path.clone(),
        None => return Err(SqsError::missing("QueueUrl")),
    };
    let path = url.split_once("://").map_or(url.as_str(), |(_, rest)| {
        rest.find('/').map_or("", |at| &rest[at..])
    });
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    // The account id in the URL is not checked: a URL copied from AWS (any 12-digit account)
    // addresses the queue of that name here.
    if name.is_empty() || store::validate_queue_name(name).is_err() {
        return Err(SqsError::no_queue());
    }
    Ok(name.to_owned())
}

fn queue_name_param(call: &Call) -> Result<String, SqsError> {
    let name = text(&call.params, "QueueName")?.ok_or_else(|| SqsError::missing("QueueName"))?;
    store::validate_queue_name(name).map_err(|e| SqsError::invalid(e.to_string()))?;
    Ok(name.to_owned())
}

/// Whether `queue` is a FIFO queue: as on SQS, exactly the queues whose name ends in `.fifo`
/// (a Sluice queue made over the API with such a name is one too).
fn is_fifo(queue: &str) -> bool {
    queue.ends_with(store::FIFO_SUFFIX)
}

/// A FIFO queue's `SequenceNumber` for Sluice message `id`: store ids grow with enqueue order
/// and a group is delivered in id order, so they increase along a group as SQS's do.
fn sequence_number(id: &str) -> String {
    match id.parse::<u64>() {
        Ok(n) => format!("{n:020}"),
        Err(_) => id.to_owned(),
    }
}

/// How a FIFO queue deduplicates, from its kept attributes.
struct Fifo {
    content_based: bool,
    per_group: bool,
}

impl Fifo {
    fn of(queue: &str, settings: &QueueSettings) -> Result<Option<Fifo>, SqsError> {
        if !is_fifo(queue) {
            return Ok(None);
        }
        let kept = Extension::of(settings)?.attributes;
        Ok(Some(Fifo {
            content_based: kept.get("ContentBasedDeduplication").map(String::as_str)
                == Some("true"),
            per_group: kept.get("DeduplicationScope").map(String::as_str) == Some("messageGroup"),
        }))
    }
}

fn exists(app: &AppState, queue: &str) -> Result<(), SqsError> {
    if app.store.queue_exists(queue) {
        Ok(())
    } else {
        Err(SqsError::no_queue())
    }
}

/// SQS's largest message, and its largest batch (the sum of its messages), since 2025: 1 MiB.
/// Queues created through SQS default to it.
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;

// ---- queues ----

/// Applies SQS queue attributes to Sluice settings.
fn apply_attributes(
    settings: &mut QueueSettings,
    attributes: &BTreeMap<String, String>,
    fifo: bool,
) -> Result<(), SqsError> {
    for (name, value) in attributes {
        let number = |range: std::ops::RangeInclusive<u64>| {
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    SqsError::new(
                        Code::InvalidAttributeValue,
                        format!(
                            "Invalid value for the parameter {name}: `{value}` must be an \
                             integer from {} to {}.",
                            range.start(),
                            range.end()
                        ),
                    )
                })
        };
        let bad_value = |why: &str| SqsError::new(Code::InvalidAttributeValue, why.to_owned());
        match name.as_str() {
            "VisibilityTimeout" => {
                settings.visibility_timeout_ms = (number(0..=43_200)? * 1000).max(1);
            }
            "DelaySeconds" => {
                let mut extension = Extension::of(settings)?;
                extension.delay_ms = number(0..=900)? * 1000;
                extension.save(settings);
            }
            "MessageRetentionPeriod" => {
                settings.retention_ms = number(60..=1_209_600)? * 1000;
            }
            "MaximumMessageSize" => {
                settings.max_message_bytes = number(1024..=1_048_576)? as usize;
            }
            "ReceiveMessageWaitTimeSeconds" => {
                let mut extension = Extension::of(settings)?;
                extension.receive_wait_ms = number(0..=20)? * 1000;
                extension.save(settings);
            }
            "RedrivePolicy" => {
                if value.trim().is_empty() {
                    settings.dead_letter_queue = None;
                    continue;
                }
                let policy: Value = serde_json::from_str(value).map_err(|_| {
                    bad_value("RedrivePolicy must be JSON like {\"deadLetterTargetArn\": \"arn:aws:sqs:REGION:000000000000:DLQ\", \"maxReceiveCount\": \"5\"}")
                })?;
                let arn = policy["deadLetterTargetArn"]
                    .as_str()
                    .ok_or_else(|| bad_value("RedrivePolicy needs deadLetterTargetArn"))?;
                let dlq = arn.rsplit(':').next().unwrap_or_default();
                if is_fifo(dlq) != fifo {
                    return Err(bad_value(
                        "The dead-letter queue of a FIFO queue must also be a FIFO queue, and \
                         that of a standard queue a standard queue.",
                    ));
                }
                let count = match &policy["maxReceiveCount"] {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                }
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    bad_value("RedrivePolicy's maxReceiveCount must be from 1 to 1000")
                })?;
                settings.dead_letter_queue = Some(dlq.to_owned());
                settings.max_attempts = count as u32;
            }
            // Kept and returned, not enforced: access is governed by Sluice tokens, and the
            // data is as encrypted as the disk under the database.
            kept if meta::KEPT_ATTRIBUTES.contains(&kept) => {
                let mut extension = Extension::of(settings)?;
                extension.set_attribute(kept, value)?;
                extension.save(settings);
            }
            "FifoQueue" => match (value.as_str(), fifo) {
                ("true", true) | ("false", false) => {}
                ("true", false) => {
                    return Err(SqsError::invalid(
                        "The name of a FIFO queue can only include alphanumeric characters, \
                         hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in \
                         length.",
                    ));
                }
                ("false", true) => {
                    return Err(SqsError::new(
                        Code::InvalidAttributeValue,
                        "A queue whose name ends in .fifo is a FIFO queue: FifoQueue cannot be \
                         false (and a queue's type cannot change).",
                    ));
                }
                _ => {
                    return Err(SqsError::new(
                        Code::InvalidAttributeValue,
                        format!("Invalid value for the parameter FifoQueue: `{value}`."),
                    ));
                }
            },
            "ContentBasedDeduplication" | "DeduplicationScope" | "FifoThroughputLimit" if fifo => {
                let mut extension = Extension::of(settings)?;
                extension.set_attribute(name, value)?;
                extension.save(settings);
            }
            other => {
                return Err(SqsError::new(
                    Code::InvalidAttributeName,
                    format!("Unknown Attribute {other}."),
                ));
            }
        }
    }
    if fifo {
        let kept = Extension::of(settings)?.attributes;
        if kept.get("FifoThroughputLimit").map(String::as_str) == Some("perMessageGroupId")
            && kept.get("DeduplicationScope").map(String::as_str) != Some("messageGroup")
        {
            return Err(SqsError::new(
                Code::InvalidAttributeValue,
                "FifoThroughputLimit perMessageGroupId needs DeduplicationScope messageGroup.",
            ));
        }
    }
    Ok(())
}

async fn create_queue(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let name = queue_name_param(call)?;
    let attributes = string_map(&call.params, "Attributes")?;
    let fifo = is_fifo(&name);
    if fifo && attributes.get("FifoQueue").map(String::as_str) != Some("true") {
        return Err(SqsError::invalid(
            "A queue name ending in .fifo is a FIFO queue: create it with the attribute \
             FifoQueue=true.",
        ));
    }
    let mut settings = QueueSettings {
        max_message_bytes: MAX_MESSAGE_BYTES,
        // SQS's deduplication interval.
        dedup_window_ms: 5 * 60 * 1000,
        ..QueueSettings::default()
    };
    if fifo {
        // SQS's defaults, so they are listed like SQS lists them.
        let mut extension = Extension::default();
        for (name, value) in [
            ("ContentBasedDeduplication", "false"),
            ("DeduplicationScope", "queue"),
            ("FifoThroughputLimit", "perQueue"),
        ] {
            extension.set_attribute(name, value)?;
        }
        extension.save(&mut settings);
    }
    apply_attributes(&mut settings, &attributes, fifo)?;
    // `tags` on the JSON protocol, folded from `Tag.N.Key` into `Tags` on the query protocol.
    let tags = match string_map(&call.params, "tags")? {
        tags if tags.is_empty() => string_map(&call.params, "Tags")?,
        tags => tags,
    };
    if !tags.is_empty() {
        let mut extension = Extension::of(&settings)?;
        extension.tag(tags)?;
        extension.save(&mut settings);
    }
    match app.store.create_queue(&name, settings.clone()).await {
        Ok(_) => {}
        Err(store::Error::QueueExists(_)) => {
            // SQS: creating an existing queue is fine unless the attributes given differ.
            // Tags given then are not applied (TagQueue changes them).
            let current = app.store.queue_settings(&name).await?;
            let mut wanted = current.clone();
            apply_attributes(&mut wanted, &attributes, fifo)?;
            if wanted != current {
                return Err(SqsError::new(
                    Code::QueueNameExists,
                    format!(
                        "A queue already exists with the same name `{name}` and different \
                         attributes; change them with SetQueueAttributes"
                    ),
                ));
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(obj(json!({ "QueueUrl": queue_url(call, &name) })))
}

async fn get_queue_url(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Read)?;
    let name = text(&call.params, "QueueName")?.ok_or_else(|| SqsError::missing("QueueName"))?;
    exists(app, name)?;
    Ok(obj(json!({ "QueueUrl": queue_url(call, name) })))
}

async fn list_queues(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Read)?;
    let prefix = text(&call.params, "QueueNamePrefix")?.unwrap_or("");
    let max = integer(&call.params, "MaxResults", 1..=1000)?;
    let after = text(&call.params, "NextToken")?;
    let mut names: Vec<String> = app
        .store
        .list_queues()
        .await?
        .into_iter()
        .map(|q| q.name)
        .filter(|n| n.starts_with(prefix) && after.is_none_or(|a| n.as_str() > a))
        .collect();
    names.sort();
    let mut result = Map::new();
    let mut next = None;
    if let Some(max) = max.map(|m| m as usize)
        && names.len() > max
    {
        names.truncate(max);
        next = names.last().cloned();
    }
    if !names.is_empty() {
        let urls = names
            .iter()
            .map(|n| Value::String(queue_url(call, n)))
            .collect();
        result.insert("QueueUrls".into(), Value::Array(urls));
    }
    if let Some(next) = next {
        result.insert("NextToken".into(), Value::String(next));
    }
    Ok(result)
}

async fn delete_queue(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    app.store.delete_queue(&queue).await?;
    Ok(Map::new())
}

async fn purge_queue(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    exists(app, &queue)?;
    app.store.purge(&queue).await?;
    Ok(Map::new())
}

const QUEUE_ATTRIBUTES: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "VisibilityTimeout",
    "DelaySeconds",
    "MessageRetentionPeriod",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "Policy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
];

async fn get_queue_attributes(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Read)?;
    let queue = queue_of(call)?;
    exists(app, &queue)?;
    let asked = strings(&call.params, "AttributeNames")?;
    let all = asked.iter().any(|a| a == "All");
    for name in &asked {
        if name != "All" && !QUEUE_ATTRIBUTES.contains(&name.as_str()) {
            return Err(SqsError::new(
                Code::InvalidAttributeName,
                format!("Unknown Attribute {name}."),
            ));
        }
    }
    let info = app.store.get_queue(&queue).await?;
    let s = &info.settings;
    let extension = Extension::of(s)?;
    let kept = &extension.attributes;
    let arn = |name: &str| format!("arn:aws:sqs:{}:{ACCOUNT}:{name}", call.region);
    let mut attributes = Map::new();
    for name in QUEUE_ATTRIBUTES {
        if !all && !asked.iter().any(|a| a == name) {
            continue;
        }
        let value = match *name {
            "ApproximateNumberOfMessages" => info.stats.visible.to_string(),
            "ApproximateNumberOfMessagesNotVisible" => info.stats.in_flight.to_string(),
            "ApproximateNumberOfMessagesDelayed" => info.stats.delayed.to_string(),
            "CreatedTimestamp" | "LastModifiedTimestamp" => (info.created_at_ms / 1000).to_string(),
            "QueueArn" => arn(&queue),
            "VisibilityTimeout" => (s.visibility_timeout_ms / 1000).to_string(),
            "DelaySeconds" => (extension.delay_ms / 1000).to_string(),
            "MessageRetentionPeriod" => (s.retention_ms / 1000).to_string(),
            "MaximumMessageSize" => s.max_message_bytes.to_string(),
            "ReceiveMessageWaitTimeSeconds" => (extension.receive_wait_ms / 1000).to_string(),
            "RedrivePolicy" => match &s.dead_letter_queue {
                Some(dlq) => json!({
                    "deadLetterTargetArn": arn(dlq),
                    "maxReceiveCount": s.max_attempts,
                })
                .to_string(),
                None => continue,
            },
            "FifoQueue" if is_fifo(&queue) => "true".to_owned(),
            "FifoQueue" => continue,
            // Sluice does not encrypt messages itself (the disk under the database may).
            "SqsManagedSseEnabled" => kept
                .get(*name)
                .cloned()
                .unwrap_or_else(|| "false".to_owned()),
            kept_name => match kept.get(kept_name) {
                Some(value) => value.clone(),
                None => continue,
            },
        };
        attributes.insert((*name).to_owned(), Value::String(value));
    }
    let mut result = Map::new();
    if !attributes.is_empty() {
        result.insert("Attributes".into(), Value::Object(attributes));
    }
    Ok(result)
}

async fn set_queue_attributes(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    exists(app, &queue)?;
    let attributes = string_map(&call.params, "Attributes")?;
    if attributes.is_empty() {
        return Err(SqsError::missing("Attributes"));
    }
    let mut settings = app.store.queue_settings(&queue).await?;
    apply_attributes(&mut settings, &attributes, is_fifo(&queue))?;
    app.store.update_queue(&queue, settings).await?;
    Ok(Map::new())
}

// ---- tags, permissions, dead-letter sources ----

/// Changes the SQS extension of `queue`'s settings with `change`.
async fn change_extension(
    app: &AppState,
    queue: &str,
    change: impl FnOnce(&mut Extension) -> Result<(), SqsError>,
) -> Answer {
    exists(app, queue)?;
    let mut settings = app.store.queue_settings(queue).await?;
    let mut extension = Extension::of(&settings)?;
    change(&mut extension)?;
    extension.save(&mut settings);
    app.store.update_queue(queue, settings).await?;
    Ok(Map::new())
}

async fn tag_queue(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    let tags = string_map(&call.params, "Tags")?;
    if tags.is_empty() {
        return Err(SqsError::missing("Tags"));
    }
    change_extension(app, &queue, |e| e.tag(tags)).await
}

async fn untag_queue(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    let keys = strings(&call.params, "TagKeys")?;
    if keys.is_empty() {
        return Err(SqsError::missing("TagKeys"));
    }
    change_extension(app, &queue, |e| {
        for key in &keys {
            e.tags.remove(key);
        }
        Ok(())
    })
    .await
}

async fn list_queue_tags(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Read)?;
    let queue = queue_of(call)?;
    exists(app, &queue)?;
    let tags = Extension::of(&app.store.queue_settings(&queue).await?)?.tags;
    let mut result = Map::new();
    if !tags.is_empty() {
        result.insert("Tags".into(), json!(tags));
    }
    Ok(result)
}

async fn add_permission(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    let arn = format!("arn:aws:sqs:{}:{ACCOUNT}:{queue}", call.region);
    change_extension(app, &queue, |e| e.add_permission(&arn, &call.params)).await
}

async fn remove_permission(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let queue = queue_of(call)?;
    change_extension(app, &queue, |e| e.remove_permission(&call.params)).await
}

async fn list_dead_letter_source_queues(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Read)?;
    let queue = queue_of(call)?;
    exists(app, &queue)?;
    let max = integer(&call.params, "MaxResults", 1..=1000)?;
    let after = text(&call.params, "NextToken")?;
    let mut names: Vec<String> = app
        .store
        .list_queues()
        .await?
        .into_iter()
        .filter(|q| q.settings.dead_letter_queue.as_deref() == Some(queue.as_str()))
        .map(|q| q.name)
        .filter(|n| after.is_none_or(|a| n.as_str() > a))
        .collect();
    names.sort();
    let mut next = None;
    if let Some(max) = max.map(|m| m as usize)
        && names.len() > max
    {
        names.truncate(max);
        next = names.last().cloned();
    }
    let urls: Vec<Value> = names
        .iter()
        .map(|n| Value::String(queue_url(call, n)))
        .collect();
    // `queueUrls` (sic) is required in SQS's model: present even when empty.
    let mut result = obj(json!({ "queueUrls": urls }));
    if let Some(next) = next {
        result.insert("NextToken".into(), Value::String(next));
    }
    Ok(result)
}

// ---- message move tasks ----

/// The queue an SQS ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`, any region and account) names.
fn queue_of_arn(params: &Map<String, Value>, name: &str) -> Result<Option<String>, SqsError> {
    let Some(arn) = text(params, name)? else {
        return Ok(None);
    };
    let queue = arn
        .strip_prefix("arn:aws:sqs:")
        .and_then(|rest| rest.rsplit(':').next())
        .filter(|q| store::validate_queue_name(q).is_ok())
        .ok_or_else(|| {
            SqsError::invalid(format!(
                "Value {arn} for parameter {name} is invalid. Reason: an SQS queue ARN is \
                 arn:aws:sqs:REGION:ACCOUNT:QUEUE."
            ))
        })?;
    Ok(Some(queue.to_owned()))
}

fn no_resource(what: String) -> SqsError {
    SqsError::new(Code::ResourceNotFound, what)
}

/// The source queue of a move task: a queue that is some queue's dead-letter queue.
async fn move_source(app: &AppState, call: &Call) -> Result<String, SqsError> {
    let source =
        queue_of_arn(&call.params, "SourceArn")?.ok_or_else(|| SqsError::missing("SourceArn"))?;
    if !app.store.queue_exists(&source) {
        return Err(no_resource(format!(
            "The resource `{source}` does not exist."
        )));
    }
    Ok(source)
}

/// Moves the dead-letter queue's messages back (Sluice's redrive, one transaction): to the
/// queue each came from, or to `DestinationArn`.
async fn start_message_move_task(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let source = move_source(app, call).await?;
    let is_dlq = app
        .store
        .list_queues()
        .await?
        .iter()
        .any(|q| q.settings.dead_letter_queue.as_deref() == Some(source.as_str()));
    if !is_dlq {
        return Err(SqsError::new(
            Code::UnsupportedOperation,
            "Source queue must be configured as a Dead Letter Queue.",
        ));
    }
    let destination = queue_of_arn(&call.params, "DestinationArn")?;
    if let Some(to) = &destination
        && !app.store.queue_exists(to)
    {
        return Err(no_resource(format!("The resource `{to}` does not exist.")));
    }
    let max_per_second = integer(&call.params, "MaxNumberOfMessagesPerSecond", 1..=500)?;
    let to_move = app.store.get_queue(&source).await?.stats.visible;
    let started_ms = app.store.now_ms();
    let moved = app
        .store
        .redrive(&source, destination.as_deref(), None)
        .await?;
    let handle = BASE64.encode(
        json!({"taskId": uuid::Uuid::now_v7().to_string(), "sourceQueue": source}).to_string(),
    );
    let task = MoveTask {
        handle: handle.clone(),
        source_arn: text(&call.params, "SourceArn")?
            .unwrap_or_default()
            .to_owned(),
        destination_arn: text(&call.params, "DestinationArn")?.map(str::to_owned),
        max_per_second,
        moved,
        to_move: to_move.max(moved),
        started_ms,
    };
    change_extension(app, &source, |e| {
        e.move_tasks.push(task);
        let extra = e.move_tasks.len().saturating_sub(meta::MAX_MOVE_TASKS);
        e.move_tasks.drain(..extra);
        Ok(())
    })
    .await?;
    Ok(obj(json!({ "TaskHandle": handle })))
}

async fn list_message_move_tasks(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Read)?;
    let source = move_source(app, call).await?;
    let max = integer(&call.params, "MaxResults", 1..=10)?.unwrap_or(1) as usize;
    let tasks = Extension::of(&app.store.queue_settings(&source).await?)?.move_tasks;
    let results: Vec<Value> = tasks
        .iter()
        .rev()
        .take(max)
        .map(|t| {
            let mut entry = obj(json!({
                "Status": "COMPLETED",
                "SourceArn": t.source_arn,
                "ApproximateNumberOfMessagesMoved": t.moved,
                "ApproximateNumberOfMessagesToMove": t.to_move,
                "StartedTimestamp": t.started_ms,
            }));
            if let Some(d) = &t.destination_arn {
                entry.insert("DestinationArn".into(), json!(d));
            }
            if let Some(n) = t.max_per_second {
                entry.insert("MaxNumberOfMessagesPerSecond".into(), json!(n));
            }
            Value::Object(entry)
        })
        .collect();
    Ok(obj(json!({ "Results": results })))
}

/// Tasks complete as they start, so there is never one to cancel; the answer says which.
async fn cancel_message_move_task(app: &AppState, call: &Call) -> Answer {
    authorize(&call.credential, &Need::Admin)?;
    let handle =
        text(&call.params, "TaskHandle")?.ok_or_else(|| SqsError::missing("TaskHandle"))?;
    let queue = BASE64
        .decode(handle)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v["sourceQueue"].as_str().map(str::to_owned))
        .filter(|q| app.store.queue_exists(q));
    let known = match queue {
        Some(q) => Extension::of(&app.store.queue_settings(&q).await?)?
            .move_tasks
            .iter()
            .any(|t| t.handle == handle),
        None => false,
    };
    let why = if known {
        "The task is not running: Sluice moves a task's messages in one transaction as it \
         starts, so it completed then (ListMessageMoveTasks shows how many it moved)."
    } else {
        "No message move task has this TaskHandle."
    };
    Err(no_resource(why.to_owned()))
}

// ---- sends ----

/// A message to send, checked, with what its answer reports.
struct Outgoing {
    message: NewMessage,
    md5_body: String,
    md5_attributes: Option<String>,
    md5_system_attributes: Option<String>,
}

/// The SQS `MessageId` of Sluice message `id`: a UUID (version 8) whose last 16 hex digits are
/// the store's id. Store ids are integers that are never reused and unique across all queues
/// of a store, so the UUIDs are too, and they map back to the id Sluice's API shows.
pub fn message_id(id: &str) -> String {
    let mut bytes = [0u8; 16];
    match id.parse::<u64>() {
        Ok(n) => bytes[8..].copy_from_slice(&n.to_be_bytes()),
        // Not an id this store issues as a number: a stable digest of it instead.
        Err(_) => bytes.copy_from_slice(&md5::Md5::digest(id.as_bytes())),
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// What a batch entry weighs against [`MAX_MESSAGE_BYTES`]: its body and its attributes'
/// names, types and values, as SQS counts them.
fn entry_bytes(entry: &Map<String, Value>) -> usize {
    let body = entry
        .get("MessageBody")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    let attributes = entry
        .get("MessageAttributes")
        .and_then(Value::as_object)
        .map_or(0, |map| {
            map.iter()
                .map(|(name, v)| {
                    let part = |k: &str| v.get(k).and_then(Value::as_str).map_or(0, str::len);
                    // A binary value travels as base64: about 3 bytes per 4 characters.
                    name.len()
                        + part("DataType")
                        + part("StringValue")
                        + part("BinaryValue") * 3 / 4
                })
                .sum()
        });
    body + attributes
}

/// Checks a `MessageGroupId` or `MessageDeduplicationId` as SQS does: 1 to 128 characters,
/// letters, digits and ASCII punctuation.
fn fifo_id<'a>(params: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, SqsError> {
    let Some(id) = text(params, name)? else {
        return Ok(None);
    };
    let valid = !id.is_empty()
        && id.len() <= store::MAX_GROUP_BYTES
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation());
    if !valid {
        return Err(SqsError::invalid(format!(
            "Value {id} for parameter {name} is invalid. Reason: it must be 1 to 128 letters, \
             digits or punctuation characters."
        )));
    }
    Ok(Some(id))
}

/// What a send's FIFO parameters become: the Sluice group and dedup id of the message (a FIFO
/// queue), or the group kept for SQS fair queues (a standard queue: no ordering, no group).
struct Grouping {
    group: Option<String>,
    dedup_id: Option<String>,
    kept: Vec<(String, String)>,
}

fn grouping(
    fifo: Option<&Fifo>,
    params: &Map<String, Value>,
    body: &str,
) -> Result<Grouping, SqsError> {
    let group = fifo_id(params, "MessageGroupId")?;
    let dedup = fifo_id(params, "MessageDeduplicationId")?;
    let Some(fifo) = fifo else {
        if dedup.is_some() {
            return Err(SqsError::invalid(
                "MessageDeduplicationId is only for FIFO queues (names ending in .fifo).",
            ));
        }
        // A fair queue's tenant: kept and returned, the message otherwise as any other.
        let kept = group
            .map(|g| (wire::GROUP_KEY.to_owned(), g.to_owned()))
            .into_iter()
            .collect();
        return Ok(Grouping {
            group: None,
            dedup_id: None,
            kept,
        });
    };
    let group = group.ok_or_else(|| SqsError::missing("MessageGroupId"))?;
    if params.contains_key("DelaySeconds") {
        return Err(SqsError::invalid(
            "Value for parameter DelaySeconds is invalid. Reason: The request include parameter \
             that is not valid for this queue type (a FIFO queue delays all its messages by its \
             DelaySeconds attribute).",
        ));
    }
    let dedup = match dedup {
        Some(id) => id.to_owned(),
        None if fifo.content_based => hex::encode(sha2::Sha256::digest(body.as_bytes())),
        None => {
            return Err(SqsError::invalid(
                "The queue should either have ContentBasedDeduplication enabled or \
                 MessageDeduplicationId provided explicitly",
            ));
        }
    };
    // Deduplicated per group: the group is part of the key (length-prefixed, so no two
    // group and id pairs make the same key).
    let key = if fifo.per_group {
        format!("{}:{group}:{dedup}", group.len())
    } else {
        dedup.clone()
    };
    Ok(Grouping {
        group: Some(group.to_owned()),
        dedup_id: Some(key),
        kept: vec![(wire::DEDUP_KEY.to_owned(), dedup)],
    })
}

fn outgoing(
    app: &AppState,
    settings: &QueueSettings,
    fifo: Option<&Fifo>,
    params: &Map<String, Value>,
) -> Result<Outgoing, SqsError> {
    let body = text(params, "MessageBody")?.ok_or_else(|| SqsError::missing("MessageBody"))?;
    if body.is_empty() {
        return Err(SqsError::missing("MessageBody"));
    }
    if body.chars().any(|c| {
        !matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }) {
        return Err(SqsError::invalid(
            "Invalid binary character in the message body: SQS allows only #x9 | #xA | #xD | \
             #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
        ));
    }
    let grouping = grouping(fifo, params, body)?;
    let delay_ms = integer(params, "DelaySeconds", 0..=900)?
        .map_or(Extension::of(settings)?.delay_ms, |s| s * 1000);
    let attributes = wire::message_attributes(params, app.limits.max_attribute_bytes)?;
    let trace_header = wire::trace_header(params)?;
    let size = body.len()
        + attributes
            .iter()
            .map(|a| a.name.len() + a.data_type.len() + a.value.len())
            .sum::<usize>();
    if size > settings.max_message_bytes {
        return Err(SqsError::invalid(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes \
             (the queue's MaximumMessageSize); it is {size}.",
            settings.max_message_bytes
        )));
    }
    let mut stored = wire::to_sluice(&attributes);
    stored.extend(grouping.kept);
    let md5_system_attributes = trace_header.map(|header| {
        let md5 = wire::md5_of_attributes(&[wire::Attribute {
            name: "AWSTraceHeader".into(),
            data_type: "String".into(),
            value: header.as_bytes().to_vec(),
        }]);
        stored.push((wire::TRACE_HEADER_KEY.to_owned(), header));
        md5
    });
    Ok(Outgoing {
        md5_body: wire::md5_hex(body.as_bytes()),
        md5_attributes: (!attributes.is_empty()).then(|| wire::md5_of_attributes(&attributes)),
        md5_system_attributes,
        message: NewMessage {
            body: body.as_bytes().to_vec(),
            attributes: stored,
            delay_ms,
            dedup_id: grouping.dedup_id,
            group: grouping.group,
            ..NewMessage::default()
        },
    })
}

fn sent_answer(id: String, out: &Outgoing) -> Map<String, Value> {
    let mut answer = Map::new();
    if out.message.group.is_some() {
        answer.insert("SequenceNumber".into(), Value::String(sequence_number(&id)));
    }
    answer.insert("MessageId".into(), Value::String(message_id(&id)));
    answer.insert(
        "MD5OfMessageBody".into(),
        Value::String(out.md5_body.clone()),
    );
    if let Some(md5) = &out.md5_attributes {
        answer.insert("MD5OfMessageAttributes".into(), Value::String(md5.clone()));
    }
    if let Some(md5) = &out.md5_system_attributes {
        answer.insert(
            "MD5OfMessageSystemAttributes".into(),
            Value::String(md5.clone()),
        );
    }
    answer
}

async fn send_message(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Produce(queue.clone()))?;
    exists(app, &queue)?;
    let settings = app.store.queue_settings(&queue).await?;
    let fifo = Fifo::of(&queue, &settings)?;
    let out = outgoing(app, &settings, fifo.as_ref(), &call.params)?;
    let mut ids = app.store.enqueue(&queue, vec![out.message.clone()]).await?;
    metrics::counter!("sluice_enqueued_total", "queue" => queue).increment(1);
    let id = ids
        .pop()
        .ok_or_else(|| SqsError::new(Code::InternalError, "enqueue returned no id"))?;
    Ok(sent_answer(id.id, &out))
}

/// The entries of a batch, checked as SQS checks them: 1 to 10, ids distinct and well formed.
fn entries(params: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, SqsError> {
    let entries = match params.get("Entries") {
        None | Some(Value::Null) => Vec::new(),
        // The query protocol's empty list: the bare name.
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| {
                e.as_object()
                    .cloned()
                    .ok_or_else(|| SqsError::invalid("each entry must be an object"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(SqsError::invalid("Entries must be a list")),
    };
    if entries.is_empty() {
        return Err(SqsError::new(
            Code::EmptyBatchRequest,
            "There should be at least one entry in the request.",
        ));
    }
    if entries.len() > 10 {
        return Err(SqsError::new(
            Code::TooManyEntriesInBatchRequest,
            format!(
                "Maximum number of entries per request are 10. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for entry in &entries {
        let id = text(entry, "Id")?.ok_or_else(|| SqsError::missing("Id"))?;
        let well_formed = !id.is_empty()
            && id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed {
            return Err(SqsError::new(
                Code::InvalidBatchEntryId,
                format!(
                    "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long: `{id}`"
                ),
            ));
        }
        if !seen.insert(id.to_owned()) {
            return Err(SqsError::new(
                Code::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(entries)
}

fn entry_id(entry: &Map<String, Value>) -> String {
    entry
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn failed(id: String, err: &SqsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": err.code.fault() == "Sender",
        "Code": err.code.query_code(),
        "Message": err.message,
    })
}

fn batch_answer(successful: Vec<Value>, failures: Vec<Value>) -> Map<String, Value> {
    obj(json!({ "Successful": successful, "Failed": failures }))
}

async fn send_message_batch(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Produce(queue.clone()))?;
    exists(app, &queue)?;
    let entries = entries(&call.params)?;
    let total: usize = entries.iter().map(entry_bytes).sum();
    if total > MAX_MESSAGE_BYTES {
        return Err(SqsError::new(
            Code::BatchRequestTooLong,
            format!(
                "Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes. You have sent \
                 {total} bytes: split the batch."
            ),
        ));
    }
    let settings = app.store.queue_settings(&queue).await?;
    let fifo = Fifo::of(&queue, &settings)?;
    let mut failures = Vec::new();
    let mut accepted = Vec::new();
    for entry in &entries {
        match outgoing(app, &settings, fifo.as_ref(), entry) {
            Ok(out) => accepted.push((entry_id(entry), out)),
            Err(err) => failures.push(failed(entry_id(entry), &err)),
        }
    }
    let mut successful = Vec::new();
    if !accepted.is_empty() {
        // One commit for the whole batch.
        let messages = accepted.iter().map(|(_, o)| o.message.clone()).collect();
        let ids = app.store.enqueue(&queue, messages).await?;
        metrics::counter!("sluice_enqueued_total", "queue" => queue).increment(ids.len() as u64);
        for ((entry, out), id) in accepted.iter().zip(ids) {
            let mut answer = sent_answer(id.id, out);
            answer.insert("Id".into(), Value::String(entry.clone()));
            successful.push(Value::Object(answer));
        }
    }
    Ok(batch_answer(successful, failures))
}

// ---- receive, delete, visibility ----

/// Whether a message attribute is asked for by `names` (`All`, `.*`, `prefix.*` or a name).
fn wanted(names: &[String], name: &str) -> bool {
    names.iter().any(|n| {
        n == "All"
            || n == ".*"
            || n == name
            || n.strip_suffix(".*").is_some_and(|prefix| {
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

async fn receive_message(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Consume(queue.clone()))?;
    exists(app, &queue)?;
    let max = integer(&call.params, "MaxNumberOfMessages", 1..=10)?.unwrap_or(1);
    let wait = match integer(&call.params, "WaitTimeSeconds", 0..=20)? {
        Some(seconds) => Duration::from_secs(seconds),
        None => Duration::from_millis(
            Extension::of(&app.store.queue_settings(&queue).await?)?.receive_wait_ms,
        ),
    };
    let visibility = integer(&call.params, "VisibilityTimeout", 0..=43_200)?
        .map(|s| Duration::from_secs(s).max(Duration::from_millis(1)));
    let mut system = strings(&call.params, "AttributeNames")?;
    system.extend(strings(&call.params, "MessageSystemAttributeNames")?);
    let attribute_names = strings(&call.params, "MessageAttributeNames")?;
    let options = ReceiveOptions {
        max_messages: max as usize,
        visibility,
        wait,
    };
    let received = tokio::select! {
        received = pull::receive(&app.store, &queue, options) => received?,
        // A long poll ends with the server: nothing was leased.
        () = app.shutdown.cancelled() => Vec::new(),
    };
    let mut messages = Vec::with_capacity(received.len());
    for r in received {
        let m = r.message;
        let body = String::from_utf8_lossy(&m.body).into_owned();
        let mut message = Map::new();
        message.insert("MessageId".into(), Value::String(message_id(&m.id)));
        message.insert("ReceiptHandle".into(), Value::String(r.receipt));
        message.insert(
            "MD5OfBody".into(),
            Value::String(wire::md5_hex(body.as_bytes())),
        );
        message.insert("Body".into(), Value::String(body));
        let mut attributes = Map::new();
        let kept = |key: &str| {
            m.attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let fifo = is_fifo(&queue);
        // In a dead-letter queue SQS keeps counting: the receives in the source queue (which
        // Sluice keeps as an attribute when it dead-letters) and those since.
        let earlier: u32 = kept(store::ATTR_ATTEMPTS)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for (name, value) in [
            (
                "ApproximateReceiveCount",
                Some(earlier.saturating_add(m.attempt).to_string()),
            ),
            ("SentTimestamp", Some(m.enqueued_at_ms.to_string())),
            ("SenderId", Some(call.credential.token_id.clone())),
            (
                "ApproximateFirstReceiveTimestamp",
                m.first_leased_at_ms.map(|at| at.to_string()),
            ),
            ("AWSTraceHeader", kept(wire::TRACE_HEADER_KEY)),
            (
                "MessageGroupId",
                m.group.clone().or_else(|| kept(wire::GROUP_KEY)),
            ),
            ("MessageDeduplicationId", kept(wire::DEDUP_KEY)),
            ("SequenceNumber", fifo.then(|| sequence_number(&m.id))),
        ] {
            let Some(value) = value else { continue };
            if system.iter().any(|a| a == "All" || a == name) {
                attributes.insert(name.into(), Value::String(value));
            }
        }
        if !attributes.is_empty() {
            message.insert("Attributes".into(), Value::Object(attributes));
        }
        let attrs: Vec<wire::Attribute> = wire::from_sluice(&m.attributes)
            .into_iter()
            .filter(|a| wanted(&attribute_names, &a.name))
            .collect();
        if !attrs.is_empty() {
            message.insert(
                "MD5OfMessageAttributes".into(),
                Value::String(wire::md5_of_attributes(&attrs)),
            );
            message.insert("MessageAttributes".into(), wire::attributes_json(&attrs));
        }
        messages.push(Value::Object(message));
    }
    let mut result = Map::new();
    if !messages.is_empty() {
        result.insert("Messages".into(), Value::Array(messages));
    }
    Ok(result)
}

fn receipt(params: &Map<String, Value>) -> Result<String, SqsError> {
    Ok(text(params, "ReceiptHandle")?
        .ok_or_else(|| SqsError::missing("ReceiptHandle"))?
        .to_owned())
}

fn invalid_receipt(why: String) -> SqsError {
    SqsError::new(
        Code::ReceiptHandleIsInvalid,
        format!("The input receipt handle is invalid: {why}"),
    )
}

fn not_inflight() -> SqsError {
    SqsError::new(
        Code::MessageNotInflight,
        "Message does not exist or is not available for visibility timeout change: its lease \
         was lost (the visibility timeout passed and it was received again, or it was deleted)",
    )
}

async fn delete_message(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Consume(queue.clone()))?;
    let handle = receipt(&call.params)?;
    let outcome = pull::settle(&app.store, &queue, &[handle], &Action::ack()).await?;
    match outcome.into_iter().next() {
        Some(Outcome::Stale) if is_fifo(&queue) => Err(expired_receipt(&handle_of(call))),
        // As SQS: deleting with an old receipt handle succeeds and changes nothing.
        Some(Outcome::Done | Outcome::Stale) | None => Ok(Map::new()),
        Some(Outcome::Invalid(why)) => Err(invalid_receipt(why)),
    }
}

fn handle_of(call: &Call) -> String {
    receipt(&call.params).unwrap_or_default()
}

/// A FIFO queue refuses a delete with a receipt handle of an earlier receive (the message was
/// received again, or its visibility timeout passed), as SQS does: the next message of the
/// group must not be released by a consumer that lost the message.
fn expired_receipt(handle: &str) -> SqsError {
    SqsError::invalid(format!(
        "Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt handle has \
         expired."
    ))
}

async fn delete_message_batch(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Consume(queue.clone()))?;
    exists(app, &queue)?;
    let entries = entries(&call.params)?;
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    let mut handles = Vec::new();
    for entry in &entries {
        match receipt(entry) {
            Ok(handle) => {
                ids.push(entry_id(entry));
                handles.push(handle);
            }
            Err(err) => failures.push(failed(entry_id(entry), &err)),
        }
    }
    let mut successful = Vec::new();
    if !handles.is_empty() {
        let outcomes = pull::settle(&app.store, &queue, &handles, &Action::ack()).await?;
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Stale if is_fifo(&queue) => {
                    let handle = entries
                        .iter()
                        .find(|e| entry_id(e) == id)
                        .map(|e| receipt(e).unwrap_or_default())
                        .unwrap_or_default();
                    failures.push(failed(id, &expired_receipt(&handle)));
                }
                Outcome::Done | Outcome::Stale => successful.push(json!({ "Id": id })),
                Outcome::Invalid(why) => failures.push(failed(id, &invalid_receipt(why))),
            }
        }
    }
    Ok(batch_answer(successful, failures))
}

/// Sets the visibility of the messages `handles` name: 0 makes them visible again (a retry
/// without delay, counted like any redelivery), anything else extends their lease.
async fn set_visibility(
    app: &AppState,
    queue: &str,
    handles: &[String],
    seconds: u64,
) -> Result<Vec<Outcome>, SqsError> {
    if seconds == 0 {
        let action = Action::Retry {
            delay: Some(Duration::ZERO),
        };
        Ok(pull::settle(&app.store, queue, handles, &action).await?)
    } else {
        Ok(pull::extend(&app.store, queue, handles, Duration::from_secs(seconds)).await?)
    }
}

async fn change_visibility(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Consume(queue.clone()))?;
    let handle = receipt(&call.params)?;
    let seconds = integer(&call.params, "VisibilityTimeout", 0..=43_200)?
        .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
    let outcome = set_visibility(app, &queue, &[handle], seconds).await?;
    match outcome.into_iter().next() {
        Some(Outcome::Done) => Ok(Map::new()),
        Some(Outcome::Invalid(why)) => Err(invalid_receipt(why)),
        Some(Outcome::Stale) | None => Err(not_inflight()),
    }
}

async fn change_visibility_batch(app: &AppState, call: &Call) -> Answer {
    let queue = queue_of(call)?;
    authorize(&call.credential, &Need::Consume(queue.clone()))?;
    exists(app, &queue)?;
    let entries = entries(&call.params)?;
    let mut failures = Vec::new();
    let mut successful = Vec::new();
    // Entries grouped by the visibility they ask for: one store call per group.
    let mut groups: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for entry in &entries {
        let parsed = receipt(entry).and_then(|h| {
            let seconds = integer(entry, "VisibilityTimeout", 0..=43_200)?
                .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
            Ok((h, seconds))
        });
        match parsed {
            Ok((handle, seconds)) => groups
                .entry(seconds)
                .or_default()
                .push((entry_id(entry), handle)),
            Err(err) => failures.push(failed(entry_id(entry), &err)),
        }
    }
    for (seconds, group) in groups {
        let handles: Vec<String> = group.iter().map(|(_, h)| h.clone()).collect();
        let outcomes = set_visibility(app, &queue, &handles, seconds).await?;
        for ((id, _), outcome) in group.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Done => successful.push(json!({ "Id": id })),
                Outcome::Invalid(why) => failures.push(failed(id, &invalid_receipt(why))),
                Outcome::Stale => failures.push(failed(id, &not_inflight())),
            }
        }
    }
    Ok(batch_answer(successful, failures))
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_uuids_that_keep_the_store_id() {
        let one = uuid::Uuid::parse_str(&message_id("123")).unwrap();
        assert_eq!(one.get_version_num(), 8);
        assert_eq!(one.get_variant(), uuid::Variant::RFC4122);
        assert!(one.to_string().ends_with("-00000000007b"), "{one}");
        assert_ne!(message_id("123"), message_id("124"));
        assert_eq!(message_id("123"), message_id("123"));
        let other = uuid::Uuid::parse_str(&message_id("not-a-number")).unwrap();
        assert_eq!(other.get_version_num(), 8);
    }

    #[test]
    fn a_batch_entry_weighs_its_body_and_attributes() {
        let entry = obj(json!({
            "Id": "a",
            "MessageBody": "12345",
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": "vv"}},
        }));
        assert_eq!(entry_bytes(&entry), 5 + 1 + 6 + 2);
    }
}
