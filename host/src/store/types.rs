//! The store's domain types: queues and their settings, messages, leases and settlements,
//! functions, triggers, tokens, schedules and the invocation log, as the contract passes them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NewReply, StateWrite};

/// Attributes the store adds to a dead-lettered message, and removes on redrive.
pub const ATTR_DEAD_LETTER_REASON: &str = "sluice-dead-letter-reason";
pub const ATTR_ATTEMPTS: &str = "sluice-attempts";
pub const ATTR_SOURCE_QUEUE: &str = "sluice-source-queue";
/// The id the message had in its source queue (a dead-lettered copy gets a new id).
pub const ATTR_SOURCE_ID: &str = "sluice-source-id";

/// The most messages one lease may hold.
pub const MAX_LEASE_MESSAGES: usize = 10_000;

/// Reason given to messages found visible again with no attempts left (their consumer died).
pub const REASON_LEASE_EXPIRED: &str = "lease expired after max attempts";

/// Retry backoff: `initial_ms * multiplier^(attempt-1)`, capped at `max_ms`, with full jitter
/// when `jitter` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backoff {
    pub initial_ms: u64,
    pub multiplier: f64,
    pub max_ms: u64,
    pub jitter: bool,
}

/// A queue's settings. Every field has a default, so `{}` is a valid queue. Their serde form
/// is how the backends store them (the API's is `api::model::QueueSettings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueSettings {
    pub visibility_timeout_ms: u64,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub dead_letter_queue: Option<String>,
    pub retention_ms: u64,
    pub max_message_bytes: usize,
    pub dedup_window_ms: u64,
    /// The most messages the queue may hold; enqueues beyond it fail with `QueueFull` until
    /// consumers catch up. `None`: unbounded.
    pub max_depth: Option<u64>,
    /// What a front end keeps with the queue, under its own name (`"sqs"`: the SQS endpoint's
    /// queue attributes, tags and policy). The store keeps it as given, in the settings it
    /// already stores, and nothing but its owner reads it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// Live counts of one queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    pub visible: u64,
    pub delayed: u64,
    pub in_flight: u64,
    /// Age of the oldest message still in the queue, in milliseconds; `None` when empty.
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

#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: String,
    pub settings: QueueSettings,
    pub created_at_ms: u64,
    pub stats: QueueStats,
}

/// The priority of a message that names none (the middle of 0–9, as JMS's default).
pub const DEFAULT_PRIORITY: u8 = 4;
/// The highest priority; a batch takes higher priorities first.
pub const MAX_PRIORITY: u8 = 9;
/// The longest group key, in bytes (SQS's `MessageGroupId` limit).
pub const MAX_GROUP_BYTES: usize = 128;

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    pub delay_ms: u64,
    pub dedup_id: Option<String>,
    /// 0 (lowest) to [`MAX_PRIORITY`]; [`DEFAULT_PRIORITY`] unless given.
    pub priority: u8,
    /// Messages of one group are delivered one at a time, in enqueue order.
    pub group: Option<String>,
}

impl Default for NewMessage {
    fn default() -> Self {
        NewMessage {
            body: Vec::new(),
            attributes: Vec::new(),
            delay_ms: 0,
            dedup_id: None,
            priority: DEFAULT_PRIORITY,
            group: None,
        }
    }
}

/// Which messages of a dead-letter queue a filtered peek shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonFilter {
    /// Dead letters that died for this reason (their [`ATTR_DEAD_LETTER_REASON`]).
    Reason(String),
    /// Messages with no such reason: put in the queue by hand, not dead-lettered into it.
    NoReason,
}

/// The most distinct reasons [`super::Store::dead_letter_reasons`] lists.
pub const MAX_REASONS: usize = 1_000;

/// The reasons a queue's dead letters died for, across the whole queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasonCounts {
    /// The most frequent reasons (at most the limit asked for), most first; ties by reason.
    pub reasons: Vec<ReasonCount>,
    /// How many distinct reasons the queue holds (more than `reasons` lists when capped).
    pub distinct: u64,
    /// Messages of the queue with no reason (put in by hand).
    pub without_reason: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// One row of a backend's dead-letter-reasons statement: the queue's messages, and one reason
/// with its count, how many have any reason and how many distinct reasons there are (the
/// reason `None` when the queue has no dead letter with one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonRow {
    pub total: i64,
    pub reason: Option<String>,
    pub count: i64,
    pub with_reason: i64,
    pub distinct: i64,
}

impl ReasonCounts {
    /// Folds the rows of one snapshot: the reasons in the rows' order, and the messages without
    /// a reason as the total less those with one.
    pub fn from_rows(rows: impl IntoIterator<Item = ReasonRow>) -> ReasonCounts {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let mut counts = ReasonCounts::default();
        let (mut total, mut with_reason) = (0, 0);
        for row in rows {
            total = count(row.total);
            let Some(reason) = row.reason else {
                continue;
            };
            counts.reasons.push(ReasonCount {
                reason,
                count: count(row.count),
            });
            with_reason = count(row.with_reason);
            counts.distinct = count(row.distinct);
        }
        counts.without_reason = total.saturating_sub(with_reason);
        counts
    }
}

/// The result of enqueueing one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub id: String,
    /// True when a message with the same dedup id was already enqueued within the window; `id`
    /// is then the original message's id and nothing was added.
    pub duplicate: bool,
}

/// A stored message, as delivered or peeked.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub queue: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    /// Deliveries so far, the current one included (0 when peeked before any delivery).
    pub attempt: u32,
    pub enqueued_at_ms: u64,
    pub priority: u8,
    pub group: Option<String>,
    /// When it was first leased (SQS's `ApproximateFirstReceiveTimestamp`); `None` until then.
    pub first_leased_at_ms: Option<u64>,
}

/// Messages leased to one consumer until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// Opaque to everything outside the backend that issued it.
    pub id: i64,
    pub queue: String,
    pub messages: Vec<Message>,
    pub expires_at_ms: u64,
}

/// What to do with each message of a lease, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub ack: Vec<String>,
    pub retry: Vec<Retry>,
    pub dead_letter: Vec<DeadLetter>,
    /// Messages to enqueue, committed with the rest or not at all.
    pub send: Vec<(String, NewMessage)>,
    /// Messages to publish to topics (fanned out to their subscriptions), committed with the
    /// rest or not at all.
    pub publish: Vec<(String, NewMessage)>,
    /// Replies to messages of the lease, each committed only if its message is acknowledged
    /// here (a retried or dead-lettered message's reply is discarded).
    pub replies: Vec<NewReply>,
    /// Writes to key-value buckets, committed with the rest or not at all; only while the lease
    /// still holds every message the settlement names (see [`super::state`]).
    pub state: Vec<StateWrite>,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub id: String,
    pub delay_ms: u64,
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: String,
    pub reason: String,
}

/// What a settle did; messages whose lease was lost (expired and leased again elsewhere, or
/// already settled) are left alone and listed in `stale`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    pub acked: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub sent: u64,
    /// Messages published to topics.
    pub published: u64,
    /// Replies committed (those of acknowledged messages).
    pub replied: u64,
    /// The ids of the settlement the lease no longer held, in the order the settlement named
    /// them (acks, then retries, then dead letters).
    pub stale: Vec<String>,
    /// The invocation recorded with the settle ([`Store::settle_logged`](super::Store::settle_logged)), with its id.
    pub logged: Option<InvocationEntry>,
    /// The next batch, leased in the same commit ([`Store::settle_logged_then_lease`](super::Store::settle_logged_then_lease)); `None`
    /// when nothing was visible or the queue was at its cap.
    pub next: Option<Lease>,
}

/// Which messages of a dead-letter queue a redrive moves.
#[derive(Debug, Clone, PartialEq)]
pub enum Redrive {
    /// The oldest, up to this many (all of them when `None`), in chunks of bounded commits.
    Oldest(Option<u64>),
    /// These messages, in one commit (ids not in the dead-letter queue are skipped).
    Ids(Vec<String>),
}

/// What a consumer whose lease came back empty reads to decide when to look again, in one
/// snapshot: whether messages are visible now (another consumer is taking them, or they wait
/// for a concurrency slot), and when the next delayed message, retry or lease comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lull {
    pub visible_now: bool,
    pub next_visible_at_ms: Option<u64>,
}

/// What to lease: the arguments of [`Backend::lease`](super::Backend::lease), and of the lease a settle may take in
/// its own commit (a trigger's next batch, so that a busy consumer spends one commit per batch
/// instead of two).
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest {
    pub max: usize,
    pub visibility: Option<Duration>,
    pub max_leases: Option<u32>,
    /// Chosen by the store when it takes the lease (see [`super::favoured_priority`]).
    pub(in crate::store) favoured: Option<u8>,
}

impl LeaseRequest {
    /// Up to `max` messages for `visibility` (default: the queue's visibility timeout); with
    /// `max_leases`, only while fewer than that many leases of the queue are live.
    pub fn new(max: usize, visibility: Option<Duration>, max_leases: Option<u32>) -> LeaseRequest {
        LeaseRequest {
            max,
            visibility,
            max_leases,
            favoured: None,
        }
    }
}

/// An invocation to commit with a settle, and the retention to trim the log to, if it is due.
#[derive(Debug, Clone)]
pub struct LogWrite {
    pub entry: InvocationEntry,
    pub retention: Option<InvocationRetention>,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Wait at most this long for more writes to join a group commit (SQLite).
    pub max_batch_wait: Duration,
    /// How long the invocation log keeps an entry: the running sweep removes older ones even
    /// while nothing is written (writes also trim it, with the per-function cap).
    pub log_max_age: Duration,
}

impl StoreOptions {
    /// [`StoreOptions::log_max_age`] in milliseconds.
    pub fn log_max_age_ms(&self) -> u64 {
        u64::try_from(self.log_max_age.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch_wait: Duration::ZERO,
            log_max_age: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}
impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 1_000,
            multiplier: 2.0,
            max_ms: 300_000,
            jitter: true,
        }
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            visibility_timeout_ms: 30_000,
            max_attempts: 5,
            backoff: Backoff::default(),
            dead_letter_queue: None,
            retention_ms: 4 * 24 * 60 * 60 * 1000,
            max_message_bytes: 256 * 1024,
            dedup_window_ms: 5 * 60 * 1000,
            max_depth: None,
            extensions: BTreeMap::new(),
        }
    }
}

/// A function as stored: its versions, the active one, and its trigger.
#[derive(Debug, Clone)]
pub struct FunctionRecord {
    pub name: String,
    pub active_version: u32,
    pub versions: Vec<FunctionVersion>,
    pub trigger: Option<TriggerRecord>,
}

/// One uploaded version of a function. The component itself lives in the blob directory under
/// its sha256; `config` is the function's JSON config (env, limits), owned by `functions`.
#[derive(Debug, Clone)]
pub struct FunctionVersion {
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    pub created_at_ms: u64,
    pub config: serde_json::Value,
}

/// A function bound to the queue it consumes. One queue has at most one trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRecord {
    pub function: String,
    pub queue: String,
    pub batch_size: u32,
    pub max_wait_ms: u64,
    pub max_concurrency: u32,
    pub paused: bool,
}

/// An API token as stored: never the secret, only its SHA-256; and, for a token issued with
/// `sqs`, its SQS secret access key, which SigV4 verification needs as is.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    pub sqs_secret: Option<String>,
}

/// A schedule as stored: what to enqueue where, and the tick it fires next. Its cron
/// expression and time zone are only text here; `crate::schedule` computes the ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub queue: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    /// When it fires next (ms since the epoch).
    pub next_tick_ms: u64,
    pub created_at_ms: u64,
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// SQLite in this directory (created if missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL (`postgres://USER@HOST:PORT/DB`).
    Postgres(String),
}

/// One invocation as kept; `id` is 0 until it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationEntry {
    pub id: u64,
    pub function: String,
    pub version: u32,
    pub started_at_ms: u64,
    pub duration_ms: f64,
    pub batch_size: u64,
    pub outcome: String,
    pub dry_run: bool,
    pub error: Option<String>,
    /// JSON array of the per-message failures the handler reported.
    pub failures: serde_json::Value,
    pub logs: String,
    pub sent: u64,
}

/// How long the log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationRetention {
    /// Rows older than this are removed.
    pub max_age_ms: u64,
    /// At most this many rows per function; the oldest go first.
    pub max_per_function: u64,
    /// At most this many bytes of output and errors per function; the oldest rows go first
    /// (the newest is kept whatever its size).
    pub max_bytes_per_function: u64,
}

/// Which rows of one function's log to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationQuery {
    /// Only ids below this one (the previous page's last id).
    pub before: Option<u64>,
    /// Only these outcomes; every outcome when empty.
    pub outcomes: Vec<String>,
    pub limit: usize,
}
