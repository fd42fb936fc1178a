//! What the HTTP API (and the manifest) says about queues, messages, triggers and tokens: the
//! request and answer bodies with their OpenAPI schemas, kept apart from the store's types so
//! the wire format and the storage format can change independently. Each converts from (and,
//! for what clients send, into) its store counterpart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::dispatch::{TriggerState, TriggerStatus};
use crate::sqs::meta::Extension;
use crate::store;

/// Retry backoff: `initial_ms * multiplier^(attempt-1)`, capped at `max_ms`, with full jitter
/// when `jitter` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    pub initial_ms: u64,
    pub multiplier: f64,
    pub max_ms: u64,
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        store::Backoff::default().into()
    }
}

impl From<store::Backoff> for Backoff {
    fn from(b: store::Backoff) -> Self {
        Backoff {
            initial_ms: b.initial_ms,
            multiplier: b.multiplier,
            max_ms: b.max_ms,
            jitter: b.jitter,
        }
    }
}

impl From<Backoff> for store::Backoff {
    fn from(b: Backoff) -> Self {
        store::Backoff {
            initial_ms: b.initial_ms,
            multiplier: b.multiplier,
            max_ms: b.max_ms,
            jitter: b.jitter,
        }
    }
}

/// A queue's settings. Every field has a default, so `{}` is a valid queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// How long a delivered message stays invisible before it is delivered again.
    pub visibility_timeout_ms: u64,
    /// Deliveries before a message is dead-lettered (or dropped without a DLQ).
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Where messages go after `max_attempts`; `null`: they are dropped.
    pub dead_letter_queue: Option<String>,
    /// How long a message is kept before it expires unconsumed.
    pub retention_ms: u64,
    pub max_message_bytes: usize,
    /// How long a `Sluice-Dedup-Id` is remembered.
    pub dedup_window_ms: u64,
    /// The most messages the queue may hold; enqueues beyond it get 429 until consumers catch
    /// up. `null`: unbounded.
    pub max_depth: Option<u64>,
    /// The delay of SQS sends that give no `DelaySeconds`; at most 900000.
    pub delay_ms: u64,
    /// How long an SQS receive that gives no `WaitTimeSeconds` waits; at most 20000.
    pub receive_wait_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        store::QueueSettings::default().into()
    }
}

impl From<store::QueueSettings> for QueueSettings {
    fn from(s: store::QueueSettings) -> Self {
        // The SQS endpoint keeps these two in its extension of the settings; shown as 0 (its
        // default) if that is unreadable, which its own calls report.
        let sqs = Extension::of(&s).unwrap_or_default();
        QueueSettings {
            visibility_timeout_ms: s.visibility_timeout_ms,
            max_attempts: s.max_attempts,
            backoff: s.backoff.into(),
            dead_letter_queue: s.dead_letter_queue,
            retention_ms: s.retention_ms,
            max_message_bytes: s.max_message_bytes,
            dedup_window_ms: s.dedup_window_ms,
            max_depth: s.max_depth,
            delay_ms: sqs.delay_ms,
            receive_wait_ms: sqs.receive_wait_ms,
        }
    }
}

impl QueueSettings {
    /// The store's settings: these, beside `extensions` (what other front ends keep with the
    /// queue, which an API change leaves as it is), with `delay_ms` and `receive_wait_ms` in
    /// the SQS endpoint's extension, checked as SQS checks them.
    pub fn into_store(
        self,
        extensions: BTreeMap<String, Value>,
    ) -> Result<store::QueueSettings, store::Error> {
        let mut settings = store::QueueSettings {
            visibility_timeout_ms: self.visibility_timeout_ms,
            max_attempts: self.max_attempts,
            backoff: self.backoff.into(),
            dead_letter_queue: self.dead_letter_queue,
            retention_ms: self.retention_ms,
            max_message_bytes: self.max_message_bytes,
            dedup_window_ms: self.dedup_window_ms,
            max_depth: self.max_depth,
            extensions,
        };
        let mut sqs = Extension::of(&settings).map_err(|e| store::Error::Unavailable(e.message))?;
        sqs.set_defaults(self.delay_ms, self.receive_wait_ms)
            .map_err(store::Error::InvalidSettings)?;
        sqs.save(&mut settings);
        Ok(settings)
    }
}

/// Live counts of one queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueStats {
    pub visible: u64,
    pub delayed: u64,
    pub in_flight: u64,
    /// Age of the oldest message still in the queue, in milliseconds; `null` when empty.
    pub oldest_age_ms: Option<u64>,
    pub enqueued_total: u64,
    pub acked_total: u64,
    pub retried_total: u64,
    pub dead_lettered_total: u64,
    /// Dropped after max attempts with no dead-letter queue.
    pub dropped_total: u64,
    /// Removed by retention.
    pub expired_total: u64,
}

impl From<store::QueueStats> for QueueStats {
    fn from(s: store::QueueStats) -> Self {
        QueueStats {
            visible: s.visible,
            delayed: s.delayed,
            in_flight: s.in_flight,
            oldest_age_ms: s.oldest_age_ms,
            enqueued_total: s.enqueued_total,
            acked_total: s.acked_total,
            retried_total: s.retried_total,
            dead_lettered_total: s.dead_lettered_total,
            dropped_total: s.dropped_total,
            expired_total: s.expired_total,
        }
    }
}

/// A queue: its settings and live stats.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueInfo {
    pub name: String,
    pub settings: QueueSettings,
    pub created_at_ms: u64,
    pub stats: QueueStats,
}

impl From<store::QueueInfo> for QueueInfo {
    fn from(q: store::QueueInfo) -> Self {
        QueueInfo {
            name: q.name,
            settings: q.settings.into(),
            created_at_ms: q.created_at_ms,
            stats: q.stats.into(),
        }
    }
}

/// The result of enqueueing one message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enqueued {
    pub id: String,
    /// True when a message with the same dedup id was already enqueued within the window; `id`
    /// is then the original message's id and nothing was added.
    pub duplicate: bool,
}

impl From<store::Enqueued> for Enqueued {
    fn from(e: store::Enqueued) -> Self {
        Enqueued {
            id: e.id,
            duplicate: e.duplicate,
        }
    }
}

/// A function bound to the queue it consumes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trigger {
    pub function: String,
    pub queue: String,
    pub batch_size: u32,
    pub max_wait_ms: u64,
    /// The most batches in flight at once, across every host sharing the store.
    pub max_concurrency: u32,
    pub paused: bool,
}

impl From<store::TriggerRecord> for Trigger {
    fn from(t: store::TriggerRecord) -> Self {
        Trigger {
            function: t.function,
            queue: t.queue,
            batch_size: t.batch_size,
            max_wait_ms: t.max_wait_ms,
            max_concurrency: t.max_concurrency,
            paused: t.paused,
        }
    }
}

/// A trigger's settings and what it is doing now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TriggerView {
    #[serde(flatten)]
    pub trigger: Trigger,
    /// `running`, `paused`, or `stopped` (with the reason in `error`).
    #[schema(value_type = String)]
    pub state: &'static str,
    pub in_flight: usize,
    pub error: Option<String>,
}

impl From<TriggerStatus> for TriggerView {
    fn from(s: TriggerStatus) -> Self {
        TriggerView {
            trigger: s.trigger.into(),
            state: match s.state {
                TriggerState::Running => "running",
                TriggerState::Paused => "paused",
                TriggerState::Stopped => "stopped",
            },
            in_flight: s.in_flight,
            error: s.error,
        }
    }
}

/// An API token: never its secret (nor its SQS secret access key).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    /// The SQS access key id of a token created with `sqs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqs_access_key_id: Option<String>,
}

impl From<store::TokenRecord> for TokenInfo {
    fn from(t: store::TokenRecord) -> Self {
        TokenInfo {
            sqs_access_key_id: t
                .sqs_secret
                .is_some()
                .then(|| crate::auth::sqs_access_key_id(&t.id)),
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at_ms: t.created_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_store_unchanged() {
        let api = QueueSettings {
            visibility_timeout_ms: 5,
            max_attempts: 7,
            backoff: Backoff {
                initial_ms: 1,
                multiplier: 3.0,
                max_ms: 9,
                jitter: false,
            },
            dead_letter_queue: Some("dlq".into()),
            retention_ms: 11,
            max_message_bytes: 13,
            dedup_window_ms: 17,
            max_depth: Some(19),
            delay_ms: 23,
            receive_wait_ms: 29,
        };
        let stored = api.clone().into_store(BTreeMap::new()).unwrap();
        assert_eq!(QueueSettings::from(stored), api);
        assert_eq!(
            QueueSettings::default()
                .into_store(BTreeMap::new())
                .unwrap(),
            store::QueueSettings::default()
        );
        let too_long = QueueSettings {
            delay_ms: 900_001,
            ..QueueSettings::default()
        };
        assert!(matches!(
            too_long.into_store(BTreeMap::new()),
            Err(store::Error::InvalidSettings(m)) if m.starts_with("delay_ms must be at most 900000")
        ));
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let err = serde_json::from_str::<QueueSettings>(r#"{"visibility_timeout":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("visibility_timeout"), "{err}");
    }
}
