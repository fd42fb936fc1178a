//! What SQS keeps about a queue that Sluice's settings have no field for: the defaults of its
//! sends' delay and its receives' wait (`DelaySeconds`, `ReceiveMessageWaitTimeSeconds`, which
//! the SQS endpoint applies), its tags, its access policy (set directly or through
//! `AddPermission` / `RemovePermission`) and the encryption attributes. They live in the
//! queue's settings as the `"sqs"` extension, opaque to the store; the tags, policy and
//! encryption attributes are kept and returned, never enforced: Sluice's token scopes decide
//! access.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{Code, SqsError};
use super::wire::{strings, text};
use crate::store::QueueSettings;

/// The key of the SQS endpoint's extension in a queue's settings.
const KEY: &str = "sqs";

/// Queue attributes kept verbatim: SQS's access policy and encryption settings.
pub const KEPT_ATTRIBUTES: &[&str] = &[
    "Policy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
];

/// SQS's advice: no more than 50 tags on a queue.
const MAX_TAGS: usize = 50;

/// The SQS endpoint's extension of a queue's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extension {
    /// The delay of sends that give no `DelaySeconds` (the queue's `DelaySeconds`); at most
    /// [`MAX_DELAY_MS`].
    #[serde(skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// How long a receive that gives no `WaitTimeSeconds` waits (the queue's
    /// `ReceiveMessageWaitTimeSeconds`); at most [`MAX_RECEIVE_WAIT_MS`].
    #[serde(skip_serializing_if = "is_zero")]
    pub receive_wait_ms: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// [`KEPT_ATTRIBUTES`] that are set, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The latest message move tasks out of this (dead-letter) queue, newest last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub move_tasks: Vec<MoveTask>,
}

/// The longest a queue's `DelaySeconds` may be: 15 minutes.
pub const MAX_DELAY_MS: u64 = 15 * 60 * 1000;
/// The longest a queue's `ReceiveMessageWaitTimeSeconds` may be: 20 seconds.
pub const MAX_RECEIVE_WAIT_MS: u64 = 20_000;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many move tasks a queue remembers (SQS lists at most 10).
pub const MAX_MOVE_TASKS: usize = 10;

/// One `StartMessageMoveTask`: a Sluice redrive, done in one transaction when it starts, so
/// every task is `COMPLETED` once its start has answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveTask {
    pub handle: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_per_second: Option<u64>,
    pub moved: u64,
    pub to_move: u64,
    pub started_ms: u64,
}

impl Extension {
    /// The defaults a queue's SQS sends and receives take, checked as SQS checks them (for
    /// settings that come from elsewhere than SQS's own attributes: the HTTP API).
    pub fn set_defaults(&mut self, delay_ms: u64, receive_wait_ms: u64) -> Result<(), String> {
        if delay_ms > MAX_DELAY_MS {
            return Err(format!(
                "delay_ms must be at most {MAX_DELAY_MS} (15 minutes), got {delay_ms}"
            ));
        }
        if receive_wait_ms > MAX_RECEIVE_WAIT_MS {
            return Err(format!(
                "receive_wait_ms must be at most {MAX_RECEIVE_WAIT_MS} (20 seconds), got \
                 {receive_wait_ms}"
            ));
        }
        self.delay_ms = delay_ms;
        self.receive_wait_ms = receive_wait_ms;
        Ok(())
    }

    pub fn of(settings: &QueueSettings) -> Result<Extension, SqsError> {
        match settings.extensions.get(KEY) {
            None => Ok(Extension::default()),
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
                SqsError::new(
                    Code::InternalError,
                    format!("the queue's stored SQS tags and policy are unreadable: {e}"),
                )
            }),
        }
    }

    pub fn save(&self, settings: &mut QueueSettings) {
        if *self == Extension::default() {
            settings.extensions.remove(KEY);
        } else {
            let value = serde_json::to_value(self).expect("strings serialize");
            settings.extensions.insert(KEY.to_owned(), value);
        }
    }

    /// Sets one of [`KEPT_ATTRIBUTES`], or of a FIFO queue's `ContentBasedDeduplication`,
    /// `DeduplicationScope` and `FifoThroughputLimit`, after checking it as SQS does; an empty
    /// value unsets it.
    pub fn set_attribute(&mut self, name: &str, value: &str) -> Result<(), SqsError> {
        let bad = |why: String| {
            SqsError::new(
                Code::InvalidAttributeValue,
                format!("Invalid value for the parameter {name}: {why}"),
            )
        };
        if value.is_empty() {
            self.attributes.remove(name);
            return Ok(());
        }
        let why = match name {
            "Policy" | "RedriveAllowPolicy" => {
                (!matches!(serde_json::from_str::<Value>(value), Ok(Value::Object(_))))
                    .then(|| "it must be a JSON object".to_owned())
            }
            "KmsDataKeyReusePeriodSeconds" => (!value
                .parse::<u64>()
                .is_ok_and(|n| (60..=86_400).contains(&n)))
            .then(|| format!("`{value}` must be an integer from 60 to 86400.")),
            "SqsManagedSseEnabled" | "ContentBasedDeduplication" => (value != "true"
                && value != "false")
                .then(|| format!("`{value}` must be true or false.")),
            "DeduplicationScope" => (value != "messageGroup" && value != "queue")
                .then(|| format!("`{value}` must be messageGroup or queue.")),
            "FifoThroughputLimit" => (value != "perQueue" && value != "perMessageGroupId")
                .then(|| format!("`{value}` must be perQueue or perMessageGroupId.")),
            _ => None,
        };
        if let Some(why) = why {
            return Err(bad(why));
        }
        self.attributes.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// Adds tags as SQS does: a key given again takes the new value.
    pub fn tag(&mut self, tags: BTreeMap<String, String>) -> Result<(), SqsError> {
        for (key, value) in &tags {
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(SqsError::invalid(format!(
                    "Tag `{key}`: keys are 1 to 128 characters and values at most 256"
                )));
            }
            if key.starts_with("aws:") {
                return Err(SqsError::invalid(format!(
                    "Tag `{key}`: keys starting with aws: are reserved"
                )));
            }
        }
        self.tags.extend(tags);
        if self.tags.len() > MAX_TAGS {
            return Err(SqsError::invalid(format!(
                "Too many tags: a queue has at most {MAX_TAGS}; remove some with UntagQueue"
            )));
        }
        Ok(())
    }

    /// Adds the statement `label` to the policy, granting `actions` to `accounts`.
    pub fn add_permission(
        &mut self,
        queue_arn: &str,
        params: &Map<String, Value>,
    ) -> Result<(), SqsError> {
        let label = label(params)?;
        let accounts = strings(params, "AWSAccountIds")?;
        let actions = strings(params, "Actions")?;
        if accounts.is_empty() {
            return Err(SqsError::missing("AWSAccountIds"));
        }
        if actions.is_empty() {
            return Err(SqsError::missing("Actions"));
        }
        for account in &accounts {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return Err(SqsError::invalid(format!(
                    "Value {account} for parameter AWSAccountIds is invalid. Reason: an account \
                     id is 12 digits."
                )));
            }
        }
        for action in &actions {
            if action != "*" && !action.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(SqsError::invalid(format!(
                    "Value {action} for parameter ActionName is invalid. Reason: give an SQS \
                     action name (SendMessage, ReceiveMessage, ...) or *."
                )));
            }
        }
        let mut policy = self.policy(queue_arn)?;
        let statements = statements(&mut policy);
        if statements.iter().any(|s| s["Sid"] == label) {
            return Err(SqsError::invalid(format!(
                "Value {label} for parameter Label is invalid. Reason: Already exists."
            )));
        }
        let principals: Vec<String> = accounts
            .iter()
            .map(|a| format!("arn:aws:iam::{a}:root"))
            .collect();
        let actions: Vec<String> = actions.iter().map(|a| format!("SQS:{a}")).collect();
        statements.push(json!({
            "Sid": label,
            "Effect": "Allow",
            "Principal": {"AWS": one_or_many(principals)},
            "Action": one_or_many(actions),
            "Resource": queue_arn,
        }));
        self.attributes
            .insert("Policy".to_owned(), Value::Object(policy).to_string());
        Ok(())
    }

    /// Removes the statement `label` from the policy; the policy goes with its last one.
    pub fn remove_permission(&mut self, params: &Map<String, Value>) -> Result<(), SqsError> {
        let label = label(params)?;
        let missing = || {
            SqsError::invalid(format!(
                "Value {label} for parameter Label is invalid. Reason: can't find label on \
                 existing policy."
            ))
        };
        let mut policy = match self.attributes.get("Policy") {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(policy)) => policy,
                _ => return Err(missing()),
            },
            None => return Err(missing()),
        };
        let statements = statements(&mut policy);
        let before = statements.len();
        statements.retain(|s| s["Sid"] != label);
        if statements.len() == before {
            return Err(missing());
        }
        if statements.is_empty() {
            self.attributes.remove("Policy");
        } else {
            self.attributes
                .insert("Policy".to_owned(), Value::Object(policy).to_string());
        }
        Ok(())
    }

    /// The queue's policy as a JSON object: the one set, or SQS's empty default.
    fn policy(&self, queue_arn: &str) -> Result<Map<String, Value>, SqsError> {
        match self.attributes.get("Policy") {
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(policy)) => Ok(policy),
                _ => Err(SqsError::invalid(
                    "the queue's Policy is not a JSON object; set it again with \
                     SetQueueAttributes",
                )),
            },
            None => Ok(json!({
                "Version": "2012-10-17",
                "Id": format!("{queue_arn}/SQSDefaultPolicy"),
                "Statement": [],
            })
            .as_object()
            .cloned()
            .unwrap_or_default()),
        }
    }
}

/// The `Statement` list of a policy (made a list when it is one statement or missing).
fn statements(policy: &mut Map<String, Value>) -> &mut Vec<Value> {
    let entry = policy
        .entry("Statement")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        let one = entry.take();
        *entry = Value::Array(if one.is_null() { Vec::new() } else { vec![one] });
    }
    entry.as_array_mut().expect("made an array above")
}

fn one_or_many(mut items: Vec<String>) -> Value {
    if items.len() == 1 {
        Value::String(items.remove(0))
    } else {
        json!(items)
    }
}

fn label(params: &Map<String, Value>) -> Result<String, SqsError> {
    let label = text(params, "Label")?.ok_or_else(|| SqsError::missing("Label"))?;
    let valid = !label.is_empty()
        && label.len() <= 80
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(SqsError::invalid(format!(
            "Value {label} for parameter Label is invalid. Reason: 1 to 80 of A-Z a-z 0-9 - _."
        )));
    }
    Ok(label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:sqs:us-east-1:000000000000:q";

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn permissions_are_statements_of_the_policy() {
        let mut ext = Extension::default();
        ext.add_permission(
            ARN,
            &params(json!({"Label": "send", "AWSAccountIds": ["111122223333"],
                           "Actions": ["SendMessage"]})),
        )
        .unwrap();
        ext.add_permission(
            ARN,
            &params(
                json!({"Label": "all", "AWSAccountIds": ["111122223333", "444455556666"],
                           "Actions": ["*"]}),
            ),
        )
        .unwrap();
        let policy: Value = serde_json::from_str(&ext.attributes["Policy"]).unwrap();
        assert_eq!(policy["Statement"][0]["Sid"], "send");
        assert_eq!(
            policy["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:root"
        );
        assert_eq!(policy["Statement"][0]["Action"], "SQS:SendMessage");
        assert_eq!(policy["Statement"][1]["Action"], "SQS:*");
        let again = ext.add_permission(
            ARN,
            &params(json!({"Label": "send", "AWSAccountIds": ["111122223333"],
                           "Actions": ["SendMessage"]})),
        );
        assert!(again.unwrap_err().message.contains("Already exists"));
        ext.remove_permission(&params(json!({"Label": "send"})))
            .unwrap();
        ext.remove_permission(&params(json!({"Label": "all"})))
            .unwrap();
        assert!(!ext.attributes.contains_key("Policy"));
        let gone = ext.remove_permission(&params(json!({"Label": "all"})));
        assert_eq!(gone.unwrap_err().code, Code::InvalidParameterValue);
    }

    #[test]
    fn the_extension_round_trips_through_settings() {
        let mut settings = QueueSettings::default();
        let mut ext = Extension::of(&settings).unwrap();
        ext.tag([("team".into(), "a".into())].into()).unwrap();
        ext.set_attribute("KmsMasterKeyId", "alias/aws/sqs")
            .unwrap();
        ext.save(&mut settings);
        assert_eq!(Extension::of(&settings).unwrap(), ext);
        let bad = ext.set_attribute("KmsDataKeyReusePeriodSeconds", "59");
        assert_eq!(bad.unwrap_err().code, Code::InvalidAttributeValue);
        Extension::default().save(&mut settings);
        assert!(settings.extensions.is_empty());
    }
}
