//! Durable queues: the storage contract (enqueue, lease, settle, stats, catalog, tokens,
//! components, wake-ups) and the [`Store`] handle the rest of the host holds. This module alone
//! owns the database; every SQL statement of the host lives under it, one submodule per backend:
//! [`sqlite`] (embedded, the default) and [`postgres`] (several hosts sharing queues).
//!
//! The contract is the [`Backend`] trait, after river's driver interface: everything outside the
//! store sees opaque string ids and cursors, never a backend's row ids. [`Store`] adds what does
//! not depend on the database: validation, the injected [`Clock`], and [`Events`] (wake-ups and
//! catalog changes, fed by this host's commits and, with PostgreSQL, by other hosts' NOTIFYs).

mod clock;
mod codec;
mod events;
pub mod postgres;
mod replies;
pub(crate) mod rules;
pub mod sqlite;
pub mod topics;
mod validate;

#[cfg(test)]
mod group_order;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod replay_seam;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{CatalogChange, Events};
pub use replies::{MAX_REPLY_WAIT, NewReply, REPLY_RETENTION_MS, Reply};
pub use sqlite::invocations::{InvocationEntry, InvocationQuery, InvocationRetention};
pub use topics::{Published, ReplayFrom, SubscriptionRecord, TopicRecord};
pub use validate::{
    FIFO_SUFFIX, RESERVED_ATTRIBUTE_PREFIX, is_reserved_attribute, message as validate_message,
    message_size, validate_queue_name,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("queue `{0}` does not exist")]
    QueueNotFound(String),
    #[error("queue `{0}` already exists")]
    QueueExists(String),
    #[error("invalid queue name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid queue settings: {0}")]
    InvalidSettings(String),
    #[error("topic `{0}` does not exist")]
    TopicNotFound(String),
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("queue `{queue}` does not subscribe to topic `{topic}`")]
    SubscriptionNotFound { topic: String, queue: String },
    #[error("queue `{queue}` subscribes to topic `{topic}`; delete that subscription first")]
    QueueSubscribed { queue: String, topic: String },
    /// A message's priority or group is out of range.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error(
        "queue `{queue}` is the dead-letter queue of `{used_by}`; change or delete `{used_by}` first"
    )]
    QueueInUse { queue: String, used_by: String },
    #[error("message of {size} bytes exceeds queue `{queue}`'s limit of {limit} bytes")]
    MessageTooLarge {
        queue: String,
        size: usize,
        limit: usize,
    },
    #[error("queue `{queue}` is full ({max_depth} messages); retry after consumers catch up")]
    QueueFull { queue: String, max_depth: u64 },
    #[error("token `{0}` does not exist")]
    TokenNotFound(String),
    #[error("schedule `{0}` does not exist")]
    ScheduleNotFound(String),
    #[error(
        "queue `{queue}` is where schedule `{schedule}` enqueues; delete that schedule (or point \
         it at another queue) first"
    )]
    QueueScheduled { queue: String, schedule: String },
    #[error("function `{0}` does not exist")]
    FunctionNotFound(String),
    #[error(
        "queue `{queue}` is consumed by function `{function}`; delete that function's trigger \
         first (`sluice functions untrigger {function}`)"
    )]
    QueueHasConsumer { queue: String, function: String },
    /// The database was written by a newer Sluice.
    #[error(
        "the database at {location} was written by a newer Sluice (schema {found}; this one understands {supported}); upgrade Sluice"
    )]
    NewerSchema {
        location: String,
        found: usize,
        supported: usize,
    },
    #[error("invalid cursor `{0}`: pass the id of the last message of the previous page")]
    InvalidCursor(String),
    #[error("component {0} is not stored; upload the function again")]
    ComponentNotFound(String),
    #[error("function `{name}` has no version {version}")]
    VersionNotFound { name: String, version: u32 },
    /// The database cannot be written or read (disk full, read-only, I/O error).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The file where the database should be is not a Sluice database.
    #[error(
        "{path} is not a Sluice database ({reason}); move it away or choose another --data-dir"
    )]
    Corrupt { path: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// The delay of SQS sends that give no `DelaySeconds` (the queue's `DelaySeconds`).
    pub delay_ms: u64,
    /// How long an SQS receive without `WaitTimeSeconds` waits (the queue's
    /// `ReceiveMessageWaitTimeSeconds`).
    pub receive_wait_ms: u64,
    /// What a front end keeps with the queue, under its own name (`"sqs"`: the SQS endpoint's
    /// tags and policy). The store keeps it as given, in the settings it already stores, and
    /// nothing but its owner reads it.
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
}

/// Messages grouped by their queue or topic, in first-seen order, each group in its order.
/// A settle's publishes pass the same checks as a publish through the API, here, before any
/// backend sees them (a settle's sends are checked by the enqueue they become, against their
/// queue's size limit).
fn check_publishes(settlement: &Settlement) -> Result<()> {
    settlement
        .publish
        .iter()
        .try_for_each(|(_, m)| validate::message(m))
}

pub(crate) fn by_target(list: Vec<(String, NewMessage)>) -> Vec<(String, Vec<NewMessage>)> {
    let mut grouped: Vec<(String, Vec<NewMessage>)> = Vec::new();
    for (target, message) in list {
        match grouped.iter_mut().find(|(t, _)| *t == target) {
            Some((_, messages)) => messages.push(message),
            None => grouped.push((target, vec![message])),
        }
    }
    grouped
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
    /// The invocation recorded with the settle ([`Store::settle_logged`]), with its id.
    pub logged: Option<InvocationEntry>,
    /// The next batch, leased in the same commit ([`Store::settle_logged_then_lease`]); `None`
    /// when nothing was visible or the queue was at its cap.
    pub next: Option<Lease>,
}

/// A lease to take in the same commit as a settle: a trigger's next batch, so that a busy
/// consumer spends one commit per batch instead of two (one for its settle, one for its next
/// lease). The arguments of [`Backend::lease`].
#[derive(Debug, Clone, Copy)]
pub struct NextLease {
    pub max: usize,
    pub visibility: Option<Duration>,
    pub max_leases: Option<u32>,
    /// Chosen by the store when it takes the lease (see [`favoured_priority`]).
    favoured: Option<u8>,
}

impl NextLease {
    /// Up to `max` messages for `visibility` (default: the queue's visibility timeout); with
    /// `max_leases`, only while fewer than that many leases of the queue are live.
    pub fn new(max: usize, visibility: Option<Duration>, max_leases: Option<u32>) -> NextLease {
        NextLease {
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
    /// Wait at most this long for more writes to join a group commit.
    pub max_batch_wait: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch_wait: Duration::ZERO,
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
            delay_ms: 0,
            receive_wait_ms: 0,
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

/// The storage contract: what a database must do for Sluice. Every write is durable when it
/// returns; `settle` applies all of a settlement or none of it, and only to messages the lease
/// still holds. Backends report commits through the [`Events`] they were opened with.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors: `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Successful commits so far (group commit folds many requests into one).
    fn commits(&self) -> u64;

    // ---- queues ----
    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo>;
    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo>;
    async fn get_queue(&self, name: &str) -> Result<QueueInfo>;
    async fn list_queues(&self) -> Result<Vec<QueueInfo>>;
    async fn queue_names(&self) -> Result<HashSet<String>>;
    async fn queue_settings(&self, name: &str) -> Result<QueueSettings>;
    async fn delete_queue(&self, name: &str) -> Result<()>;
    async fn purge(&self, name: &str) -> Result<u64>;

    // ---- messages ----
    async fn enqueue(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>>;
    /// Unacknowledged messages in enqueue order after the cursor (the id of the last message
    /// of the previous page).
    async fn peek(&self, queue: &str, limit: usize, after: Option<&str>) -> Result<Vec<Message>>;
    /// Leases up to `max` visible messages: higher priorities first, then by visible time and
    /// enqueue order; only the head of each group (its oldest message). With `favoured`, that
    /// priority's messages come first, out of turn. With `max_leases`, refuses (returns `None`)
    /// while that many leases of the queue are live, across every host sharing the database.
    async fn lease(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        max_leases: Option<u32>,
        favoured: Option<u8>,
    ) -> Result<Option<Lease>>;
    /// Pushes the expiry of the listed messages that lease `lease_id` of `queue` still holds.
    async fn extend(
        &self,
        queue: &str,
        lease_id: i64,
        ids: Vec<String>,
        visibility: Duration,
    ) -> Result<u64>;
    /// Applies `settlement` to the messages lease `lease_id` of `queue` still holds, and
    /// records `log` and takes the `next` lease of the same queue in the same commit.
    async fn settle(
        &self,
        queue: &str,
        lease_id: i64,
        settlement: Settlement,
        log: Option<LogWrite>,
        next: Option<NextLease>,
    ) -> Result<Settled>;
    async fn redrive(&self, dlq: &str, to: Option<&str>, limit: Option<u64>) -> Result<u64>;
    /// Like `redrive`, for the given messages only (ids not in `dlq` are skipped).
    async fn redrive_messages(&self, dlq: &str, to: Option<&str>, ids: Vec<String>) -> Result<u64>;
    /// Deletes the given messages of `queue`, in flight or not; returns how many.
    async fn delete_messages(&self, queue: &str, ids: Vec<String>) -> Result<u64>;
    async fn next_visible_at_ms(&self, queue: &str) -> Result<Option<u64>>;
    async fn visible_count(&self, queue: &str, cap: u64) -> Result<u64>;
    /// The retention sweep; safe to run on every host at once.
    async fn expire(&self) -> Result<u64>;

    // ---- functions, triggers and their components ----
    async fn add_function_version(
        &self,
        name: &str,
        sha256: &str,
        size: u64,
        config: serde_json::Value,
    ) -> Result<FunctionRecord>;
    async fn get_function(&self, name: &str) -> Result<FunctionRecord>;
    async fn list_functions(&self) -> Result<Vec<FunctionRecord>>;
    async fn activate_version(&self, name: &str, version: u32) -> Result<FunctionRecord>;
    async fn delete_function(&self, name: &str) -> Result<()>;
    async fn put_trigger(&self, trigger: TriggerRecord) -> Result<TriggerRecord>;
    async fn delete_trigger(&self, function: &str) -> Result<()>;
    async fn list_triggers(&self) -> Result<Vec<TriggerRecord>>;
    /// Keeps a component's bytes under their sha256 (idempotent).
    async fn put_component(&self, sha256: &str, bytes: Vec<u8>) -> Result<()>;
    async fn get_component(&self, sha256: &str) -> Result<Vec<u8>>;

    // ---- the invocation log ----
    /// Stores invocations (in one commit) and, with a `retention`, trims the log to it;
    /// returns them with their ids.
    async fn record_invocations(
        &self,
        entries: Vec<InvocationEntry>,
        retention: Option<InvocationRetention>,
    ) -> Result<Vec<InvocationEntry>>;
    /// A page of `function`'s invocation log, newest first.
    async fn invocations(
        &self,
        function: &str,
        query: InvocationQuery,
    ) -> Result<Vec<InvocationEntry>>;

    // ---- tokens ----
    async fn add_token(&self, token: TokenRecord) -> Result<()>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    async fn delete_token(&self, id: &str) -> Result<()>;

    // ---- schedules ----
    /// Creates or replaces a schedule (keeping its creation time); its queue must exist.
    async fn put_schedule(&self, schedule: ScheduleRecord) -> Result<ScheduleRecord>;
    async fn get_schedule(&self, name: &str) -> Result<ScheduleRecord>;
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>>;
    async fn delete_schedule(&self, name: &str) -> Result<()>;
    /// Fires tick `tick_ms` of a schedule, in one transaction: only if the schedule still
    /// stands at that tick, moves it to `next_tick_ms` and enqueues its message (with `extra`
    /// attributes added). `None` when it no longer stood there (another host fired it, or it
    /// was changed or deleted): nothing was enqueued.
    async fn fire_schedule(
        &self,
        name: &str,
        tick_ms: u64,
        next_tick_ms: u64,
        extra: Vec<(String, String)>,
    ) -> Result<Option<Enqueued>>;

    // ---- topics ----
    async fn create_topic(&self, name: &str, retention_ms: u64) -> Result<TopicRecord>;
    async fn get_topic(&self, name: &str) -> Result<TopicRecord>;
    async fn list_topics(&self) -> Result<Vec<TopicRecord>>;
    /// Deletes a topic, its history and its subscriptions (not their queues).
    async fn delete_topic(&self, name: &str) -> Result<()>;
    /// Creates a subscription starting at `from`, or changes an existing one's filter (it
    /// keeps its place). The queue must exist.
    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: serde_json::Value,
        from: ReplayFrom,
    ) -> Result<SubscriptionRecord>;
    async fn unsubscribe(&self, topic: &str, queue: &str) -> Result<()>;
    /// Publishes messages (all or none): keeps them in the topic and copies each into every
    /// caught-up subscription it passes the filter of, in the same commit.
    async fn publish(&self, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<Published>>;
    /// Subscriptions behind their topic's newest message: (topic, queue).
    async fn lagging_subscriptions(&self) -> Result<Vec<(String, String)>>;
    /// Copies the next chunk of history into a lagging subscription, in one commit; true once
    /// it has caught up.
    async fn catch_up(&self, topic: &str, queue: &str) -> Result<bool>;

    // Replies ([`replies`]): committed by `settle`, swept by `expire`.
    /// The reply to `message_id`, unless there is none or it expired.
    async fn get_reply(&self, message_id: &str) -> Result<Option<Reply>>;
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// SQLite in this directory (created if missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL (`postgres://USER@HOST:PORT/DB`).
    Postgres(String),
}

/// The handle every other part of the host holds; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    events: Arc<Events>,
    clock: Arc<dyn Clock>,
    /// When this handle last trimmed the invocation log (store clock, ms).
    log_trimmed_at: Arc<AtomicU64>,
    /// Leases taken per queue by this handle, for [`favoured_priority`].
    lease_turns: Arc<std::sync::Mutex<HashMap<String, u64>>>,
}

/// One lease in this many serves a priority out of turn.
pub const FAVOURED_TURN: u64 = 10;

/// The priority lease number `turn` (0, 1, 2, … per queue) serves first, if any. Leases take
/// higher priorities first, so a steady stream of high-priority messages would keep lower ones
/// waiting forever; instead every [`FAVOURED_TURN`]th lease serves one priority first, each
/// priority in turn, so every priority is served first at least once in 100 leases of its
/// queue (per host), whatever else is waiting.
pub fn favoured_priority(turn: u64) -> Option<u8> {
    (turn % FAVOURED_TURN == FAVOURED_TURN - 1)
        .then(|| ((turn / FAVOURED_TURN) % (u64::from(MAX_PRIORITY) + 1)) as u8)
}

/// How often the invocation log is trimmed to its retention, at most (ms).
pub const LOG_TRIM_INTERVAL_MS: u64 = 1_000;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.kind())
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `dir`.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::open_with_clock(dir, options, Arc::new(SystemClock))
    }

    /// Like [`Store::open`], reading the time from `clock` (tests advance a [`ManualClock`]).
    pub fn open_with_clock(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let events = Arc::new(Events::default());
        let backend = sqlite::SqliteBackend::open(dir, options, clock.clone(), events.clone())?;
        Store::with_backend(Arc::new(backend), events, clock)
    }

    /// Connects to PostgreSQL at `url`, running the schema migrations first.
    pub async fn connect_postgres(url: &str, clock: Arc<dyn Clock>) -> Result<Store> {
        let events = Arc::new(Events::default());
        let backend =
            postgres::PostgresBackend::connect(url, clock.clone(), events.clone()).await?;
        let store = Store::with_backend(Arc::new(backend), events, clock)?;
        Ok(store)
    }

    /// Opens the store at `location`.
    pub async fn open_at(
        location: &Location,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        match location {
            Location::Sqlite(dir) => Store::open_with_clock(dir, options, clock),
            Location::Postgres(url) => Store::connect_postgres(url, clock).await,
        }
    }

    fn with_backend(
        backend: Arc<dyn Backend>,
        events: Arc<Events>,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        Ok(Store {
            backend,
            events,
            clock,
            log_trimmed_at: Arc::new(AtomicU64::new(0)),
            lease_turns: Arc::default(),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Whether several hosts may share this store (leases and caps are then enforced by the
    /// database, not by this process).
    pub fn is_shared(&self) -> bool {
        self.backend.kind() == "postgres"
    }

    /// Successful commits so far (group commit folds many requests into one).
    pub fn commits(&self) -> u64 {
        self.backend.commits()
    }

    /// The clock every time decision of the host uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Milliseconds since the Unix epoch, by the store's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Wake-ups and catalog changes.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// Runs the retention sweep now instead of waiting for its timer; returns how many messages
    /// expired.
    pub async fn expire_now(&self) -> Result<u64> {
        self.backend.expire().await
    }

    /// Succeeds when the queue exists, failing with `QueueNotFound` only after the database
    /// confirms it (see [`Store::confirm_queue`]).
    async fn check_exists(&self, queue: &str) -> Result<()> {
        match self.confirm_queue(queue).await? {
            true => Ok(()),
            false => Err(Error::QueueNotFound(queue.to_owned())),
        }
    }

    /// Whether the queue exists. The in-memory catalog answers when it knows the queue; when it
    /// does not, a database shared with other hosts is asked (another host may have created the
    /// queue a moment ago, before its notification arrived here), so a queue created through
    /// one host is never "not found" through another.
    pub async fn confirm_queue(&self, name: &str) -> Result<bool> {
        if self.queue_exists(name) || !self.is_shared() {
            return Ok(self.queue_exists(name));
        }
        self.reload_queue_names().await?;
        Ok(self.queue_exists(name))
    }

    // ---- queues ----
    pub async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        validate_queue_name(name)?;
        validate::settings(name, &settings)?;
        self.backend.create_queue(name, settings).await
    }
    /// Replaces a queue's settings.
    pub async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        validate::settings(name, &settings)?;
        self.backend.update_queue(name, settings).await
    }
    pub async fn get_queue(&self, name: &str) -> Result<QueueInfo> {
        self.backend.get_queue(name).await
    }
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.backend.list_queues().await
    }
    /// Deletes a queue and its messages; refused while it is another queue's DLQ or a
    /// function consumes it.
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.backend.delete_queue(name).await
    }
    /// Deletes every message of the queue (in flight too); returns how many.
    pub async fn purge(&self, name: &str) -> Result<u64> {
        self.backend.purge(name).await
    }
    /// Cheap, in-memory: whether the queue exists now (as of the last catalog change seen).
    pub fn queue_exists(&self, name: &str) -> bool {
        self.events.queue_known(name)
    }
    /// Reloads the set of queue names from the database (after a lost connection, or at
    /// start).
    pub async fn reload_queue_names(&self) -> Result<()> {
        let names = self.backend.queue_names().await?;
        self.events.set_queues(names);
        Ok(())
    }

    // ---- messages ----
    /// Commits the messages (all or none) and returns their ids in order, after fsync.
    pub async fn enqueue(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        self.backend.enqueue(queue, messages).await
    }
    /// Unacknowledged messages (in flight too) in enqueue order, without leasing them; only
    /// those after the cursor `after` (a message id) when given.
    pub async fn peek(
        &self,
        queue: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Message>> {
        self.check_exists(queue).await?;
        self.backend.peek(queue, limit, after).await
    }
    /// A queue's settings without its stats (cheap).
    pub async fn queue_settings(&self, name: &str) -> Result<QueueSettings> {
        self.backend.queue_settings(name).await
    }
    /// Leases up to `max` visible messages for `visibility` (default: the queue's visibility
    /// timeout). `None` when nothing is visible.
    pub async fn lease(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
    ) -> Result<Option<Lease>> {
        let favoured = self.favoured(queue);
        self.backend
            .lease(queue, max, visibility, None, favoured)
            .await
    }
    /// The priority this lease of `queue` serves out of turn (see [`favoured_priority`]).
    fn favoured(&self, queue: &str) -> Option<u8> {
        let mut turns = self
            .lease_turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let turn = match turns.get_mut(queue) {
            Some(turn) => turn,
            None => turns.entry(queue.to_owned()).or_default(),
        };
        let favoured = favoured_priority(*turn);
        *turn += 1;
        favoured
    }
    /// Like [`Store::lease`], but only while fewer than `max_leases` leases of the queue are
    /// live across every host: a trigger's concurrency cap.
    pub async fn lease_capped(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        max_leases: u32,
    ) -> Result<Option<Lease>> {
        let favoured = self.favoured(queue);
        self.backend
            .lease(queue, max, visibility, Some(max_leases), favoured)
            .await
    }
    /// Pushes a lease's expiry to now + `visibility`, for the messages it still holds.
    pub async fn extend(&self, lease: &Lease, visibility: Duration) -> Result<u64> {
        let ids = lease.messages.iter().map(|m| m.id.clone()).collect();
        self.backend
            .extend(&lease.queue, lease.id, ids, visibility)
            .await
    }
    /// Like [`Store::extend`], for the listed messages of a lease known by its id (a pull
    /// consumer's receipts).
    pub async fn extend_held(
        &self,
        queue: &str,
        lease_id: i64,
        ids: Vec<String>,
        visibility: Duration,
    ) -> Result<u64> {
        self.backend.extend(queue, lease_id, ids, visibility).await
    }
    /// Applies a settlement in one transaction.
    pub async fn settle(&self, lease: &Lease, settlement: Settlement) -> Result<Settled> {
        check_publishes(&settlement)?;
        self.backend
            .settle(&lease.queue, lease.id, settlement, None, None)
            .await
    }
    /// Like [`Store::settle`], recording the batch's invocation in the same commit: one commit
    /// per batch instead of two, and the log never shows a batch the queue does not.
    pub async fn settle_logged(
        &self,
        lease: &Lease,
        settlement: Settlement,
        entry: InvocationEntry,
        retention: InvocationRetention,
    ) -> Result<Settled> {
        self.settle_logged_with(lease, settlement, entry, retention, None)
            .await
    }
    /// Like [`Store::settle_logged`], and takes the `next` lease of the same queue in the same
    /// commit (in [`Settled::next`]); under a cap, the lease this settles counts as gone.
    pub async fn settle_logged_then_lease(
        &self,
        lease: &Lease,
        settlement: Settlement,
        entry: InvocationEntry,
        retention: InvocationRetention,
        next: NextLease,
    ) -> Result<Settled> {
        let next = NextLease {
            favoured: self.favoured(&lease.queue),
            ..next
        };
        self.settle_logged_with(lease, settlement, entry, retention, Some(next))
            .await
    }
    async fn settle_logged_with(
        &self,
        lease: &Lease,
        settlement: Settlement,
        entry: InvocationEntry,
        retention: InvocationRetention,
        next: Option<NextLease>,
    ) -> Result<Settled> {
        check_publishes(&settlement)?;
        let log = LogWrite {
            entry,
            retention: self.log_trim_due().then_some(retention),
        };
        self.backend
            .settle(&lease.queue, lease.id, settlement, Some(log), next)
            .await
    }
    /// Like [`Store::settle`], for a lease known by its id (a pull consumer's receipts).
    pub async fn settle_held(
        &self,
        queue: &str,
        lease_id: i64,
        settlement: Settlement,
    ) -> Result<Settled> {
        self.backend
            .settle(queue, lease_id, settlement, None, None)
            .await
    }
    /// Moves up to `limit` messages from a dead-letter queue back to the queue each came from,
    /// or to `to`, with attempts reset. Returns how many moved.
    pub async fn redrive(&self, dlq: &str, to: Option<&str>, limit: Option<u64>) -> Result<u64> {
        self.backend.redrive(dlq, to, limit).await
    }
    /// Like [`Store::redrive`], for the given messages only (ids not in `dlq`, or not ids of
    /// this store at all, are skipped).
    pub async fn redrive_messages(
        &self,
        dlq: &str,
        to: Option<&str>,
        ids: Vec<String>,
    ) -> Result<u64> {
        self.backend.redrive_messages(dlq, to, ids).await
    }
    /// Deletes the given messages of `queue`, in flight or not; returns how many (ids that are
    /// not this queue's, or not ids of this store at all, are skipped).
    pub async fn delete_messages(&self, queue: &str, ids: Vec<String>) -> Result<u64> {
        self.backend.delete_messages(queue, ids).await
    }
    /// When the next not-yet-visible message (delayed, retried, or in flight) becomes visible.
    pub async fn next_visible_at_ms(&self, queue: &str) -> Result<Option<u64>> {
        self.check_exists(queue).await?;
        self.backend.next_visible_at_ms(queue).await
    }
    /// How many messages are visible now, counting at most `cap`.
    pub async fn visible_count(&self, queue: &str, cap: u64) -> Result<u64> {
        self.check_exists(queue).await?;
        self.backend.visible_count(queue, cap).await
    }
    /// Notified after every commit (on any host) that adds messages to `queue` or changes when
    /// its next one becomes visible. A consumer that checks the queue and then awaits
    /// `notified()` never misses a commit in between.
    pub fn notifier(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        self.events.notifier(queue)
    }

    // ---- functions and triggers ----
    /// Records a new version of `name` (creating the function if new) and makes it active.
    pub async fn add_function_version(
        &self,
        name: &str,
        sha256: &str,
        size: u64,
        config: serde_json::Value,
    ) -> Result<FunctionRecord> {
        self.backend
            .add_function_version(name, sha256, size, config)
            .await
    }
    pub async fn get_function(&self, name: &str) -> Result<FunctionRecord> {
        self.backend.get_function(name).await
    }
    pub async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.backend.list_functions().await
    }
    /// Makes an existing version active (rollback).
    pub async fn activate_version(&self, name: &str, version: u32) -> Result<FunctionRecord> {
        self.backend.activate_version(name, version).await
    }
    /// Deletes a function, its versions, its trigger and its invocation log.
    pub async fn delete_function(&self, name: &str) -> Result<()> {
        self.backend.delete_function(name).await
    }
    /// Creates or replaces the function's trigger.
    pub async fn put_trigger(&self, trigger: TriggerRecord) -> Result<TriggerRecord> {
        validate::trigger(&trigger)?;
        self.backend.put_trigger(trigger).await
    }
    pub async fn delete_trigger(&self, function: &str) -> Result<()> {
        self.backend.delete_trigger(function).await
    }
    pub async fn list_triggers(&self) -> Result<Vec<TriggerRecord>> {
        self.backend.list_triggers().await
    }
    /// The function whose trigger consumes `queue`, if any. Read from the database once, then
    /// answered from memory until a function or trigger changes (on any host).
    pub async fn consumer_of(&self, queue: &str) -> Result<Option<String>> {
        let generation = match self.events.consumers() {
            Ok(consumers) => return Ok(consumers.get(queue).cloned()),
            Err(generation) => generation,
        };
        let consumers: HashMap<String, String> = self
            .backend
            .list_triggers()
            .await?
            .into_iter()
            .map(|t| (t.queue, t.function))
            .collect();
        let found = consumers.get(queue).cloned();
        self.events.set_consumers(generation, Arc::new(consumers));
        Ok(found)
    }
    /// Keeps a component's bytes under their sha256, where every host can read them.
    pub async fn put_component(&self, sha256: &str, bytes: Vec<u8>) -> Result<()> {
        self.backend.put_component(sha256, bytes).await
    }
    pub async fn get_component(&self, sha256: &str) -> Result<Vec<u8>> {
        self.backend.get_component(sha256).await
    }

    // ---- the invocation log ----
    /// Stores invocations (in one commit); returns them with their ids. The log is trimmed to
    /// `retention` with them at most once per [`LOG_TRIM_INTERVAL_MS`] of this handle's clock:
    /// trimming walks up to a function's whole retained log, too much for every batch, so the
    /// log may hold a second's worth more than its retention meanwhile.
    pub async fn record_invocations(
        &self,
        entries: Vec<InvocationEntry>,
        retention: InvocationRetention,
    ) -> Result<Vec<InvocationEntry>> {
        let trim = self.log_trim_due();
        self.backend
            .record_invocations(entries, trim.then_some(retention))
            .await
    }
    /// Whether this write should trim the log: true for one write per
    /// [`LOG_TRIM_INTERVAL_MS`].
    fn log_trim_due(&self) -> bool {
        let now = self.clock.now_ms();
        let last = self.log_trimmed_at.load(AtomicOrdering::Relaxed);
        now >= last.saturating_add(LOG_TRIM_INTERVAL_MS)
            && self
                .log_trimmed_at
                .compare_exchange(last, now, AtomicOrdering::Relaxed, AtomicOrdering::Relaxed)
                .is_ok()
    }
    /// A page of `function`'s invocation log, newest first.
    pub async fn invocations(
        &self,
        function: &str,
        query: InvocationQuery,
    ) -> Result<Vec<InvocationEntry>> {
        self.backend.invocations(function, query).await
    }

    // ---- tokens ----
    pub async fn add_token(&self, token: TokenRecord) -> Result<()> {
        self.backend.add_token(token).await
    }
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.backend.list_tokens().await
    }
    pub async fn delete_token(&self, id: &str) -> Result<()> {
        self.backend.delete_token(id).await
    }
    /// Creates or replaces a schedule; its queue must exist.
    pub async fn put_schedule(&self, schedule: ScheduleRecord) -> Result<ScheduleRecord> {
        validate_queue_name(&schedule.queue)?;
        self.backend.put_schedule(schedule).await
    }
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.backend.get_schedule(name).await
    }
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.backend.list_schedules().await
    }
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        self.backend.delete_schedule(name).await
    }
    // ---- topics ----
    pub async fn create_topic(&self, name: &str, retention_ms: u64) -> Result<TopicRecord> {
        topics::validate_topic(name, retention_ms)?;
        self.backend.create_topic(name, retention_ms).await
    }
    pub async fn get_topic(&self, name: &str) -> Result<TopicRecord> {
        self.backend.get_topic(name).await
    }
    pub async fn list_topics(&self) -> Result<Vec<TopicRecord>> {
        self.backend.list_topics().await
    }
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.backend.delete_topic(name).await
    }
    /// The names of every topic, from a cache that follows topic changes (this host's and, with
    /// a shared store, every other host's): cheap after the first call following a change.
    pub async fn topic_names(&self) -> Result<Arc<HashSet<String>>> {
        let generation = match self.events.topics() {
            Ok(names) => return Ok(names),
            Err(generation) => generation,
        };
        let names: Arc<HashSet<String>> = Arc::new(
            self.backend
                .list_topics()
                .await?
                .into_iter()
                .map(|topic| topic.name)
                .collect(),
        );
        self.events.set_topics(generation, names.clone());
        Ok(names)
    }
    /// Subscribes `queue` to `topic` (see [`Backend::subscribe`]); a subscription with history
    /// to replay is caught up by `crate::fanout`.
    pub async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: serde_json::Value,
        from: ReplayFrom,
    ) -> Result<SubscriptionRecord> {
        topics::Filter::parse(&filter)?;
        self.backend.subscribe(topic, queue, filter, from).await
    }
    pub async fn unsubscribe(&self, topic: &str, queue: &str) -> Result<()> {
        self.backend.unsubscribe(topic, queue).await
    }
    /// Publishes messages to a topic (see [`Backend::publish`]).
    pub async fn publish(&self, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<Published>> {
        for m in &messages {
            validate::message(m)?;
        }
        self.backend.publish(topic, messages).await
    }
    pub async fn lagging_subscriptions(&self) -> Result<Vec<(String, String)>> {
        self.backend.lagging_subscriptions().await
    }
    /// One chunk of catch-up (see [`Backend::catch_up`]).
    pub async fn catch_up(&self, topic: &str, queue: &str) -> Result<bool> {
        self.backend.catch_up(topic, queue).await
    }

    /// Fires one tick of a schedule exactly once (see [`Backend::fire_schedule`]).
    pub async fn fire_schedule(
        &self,
        name: &str,
        tick_ms: u64,
        next_tick_ms: u64,
        extra: Vec<(String, String)>,
    ) -> Result<Option<Enqueued>> {
        self.backend
            .fire_schedule(name, tick_ms, next_tick_ms, extra)
            .await
    }
}
