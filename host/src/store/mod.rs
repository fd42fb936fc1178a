//! Durable queues: enqueue, lease, settle and stats, on SQLite. This module alone owns the
//! database; every SQL statement of the host lives under it.
//!
//! Writes go through one writer thread that groups whatever requests are waiting into one
//! transaction (group commit), so many concurrent enqueues share one fsync. Reads use their own
//! connections and never wait for the writer.

mod catalog;
mod clock;
pub mod floor;
mod messages;
mod read;
mod schema;
mod sql;
mod tokens;
mod validate;
mod writer;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use validate::validate_queue_name;

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
    #[error("function `{0}` does not exist")]
    FunctionNotFound(String),
    #[error(
        "queue `{queue}` is consumed by function `{function}`; delete that function's trigger first"
    )]
    QueueHasConsumer { queue: String, function: String },
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

/// Retry backoff: `initial_ms * multiplier^(attempt-1)`, capped at `max_ms`, with full jitter
/// when `jitter` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    pub initial_ms: u64,
    pub multiplier: f64,
    pub max_ms: u64,
    pub jitter: bool,
}

/// A queue's settings. Every field has a default, so `{}` is a valid queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
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
}

/// Live counts of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueInfo {
    pub name: String,
    pub settings: QueueSettings,
    pub created_at_ms: u64,
    pub stats: QueueStats,
}

/// A message to enqueue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    pub delay_ms: u64,
    pub dedup_id: Option<String>,
}

/// The result of enqueueing one message.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
}

/// Messages leased to one consumer until `expires_at_ms`.
#[derive(Debug, Clone)]
pub struct Lease {
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

/// What a settle did; messages whose lease was lost (expired and leased again elsewhere) are
/// left alone and counted in `stale`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    pub acked: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub sent: u64,
    pub stale: u64,
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

/// The handle every other part of the host holds; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

/// Owns the writer thread: dropping the last `Store` closes its channel and joins it.
struct Inner {
    shared: Arc<Shared>,
    writer: writer::Handle,
    readers: read::Pool,
}

/// State the writer thread and the handles both see.
struct Shared {
    clock: Arc<dyn Clock>,
    /// Names of existing queues, updated by the writer after each commit.
    queues: RwLock<HashSet<String>>,
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
    commits: AtomicU64,
}

impl Shared {
    fn notifier(&self, queue: &str) -> Arc<Notify> {
        let mut map = self
            .notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(queue.to_owned()).or_default().clone()
    }

    fn notify(&self, queue: &str) {
        let notify = self.notifier(queue);
        // Wake every waiting consumer, and leave a permit for one that is between checking the
        // queue and waiting, so a wake-up is never lost.
        notify.notify_waiters();
        notify.notify_one();
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
        }
    }
}

/// A function as stored: its versions, the active one, and its trigger.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunctionRecord {
    pub name: String,
    pub active_version: u32,
    pub versions: Vec<FunctionVersion>,
    pub trigger: Option<TriggerRecord>,
}

/// One uploaded version of a function. The component itself lives in the blob directory under
/// its sha256; `config` is the function's JSON config (env, limits), owned by `functions`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunctionVersion {
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    pub created_at_ms: u64,
    pub config: serde_json::Value,
}

/// A function bound to the queue it consumes. One queue has at most one trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerRecord {
    pub function: String,
    pub queue: String,
    pub batch_size: u32,
    pub max_wait_ms: u64,
    pub max_concurrency: u32,
    pub paused: bool,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::open_with_clock(dir, options, Arc::new(SystemClock))
    }

    /// Like [`Store::open`], reading the time from `clock` (tests advance a [`ManualClock`]).
    pub fn open_with_clock(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let (conn, path) = schema::open(dir)?;
        let names = catalog::queue_names(&conn)?;
        let shared = Arc::new(Shared {
            clock,
            queues: RwLock::new(names),
            notifiers: Mutex::new(HashMap::new()),
            commits: AtomicU64::new(0),
        });
        let readers = read::Pool::new(path);
        let writer = writer::spawn(conn, shared.clone(), options)?;
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                writer,
                readers,
            }),
        })
    }

    /// Successful commits of the writer so far (group commit folds many requests into one).
    pub fn commits(&self) -> u64 {
        self.inner.shared.commits.load(Ordering::Relaxed)
    }

    /// Runs the retention sweep now instead of waiting for its timer; returns how many messages
    /// expired.
    pub async fn expire_now(&self) -> Result<u64> {
        self.write(messages::expire).await
    }

    fn check_exists(&self, queue: &str) -> Result<()> {
        match self.queue_exists(queue) {
            true => Ok(()),
            false => Err(Error::QueueNotFound(queue.to_owned())),
        }
    }

    fn now(&self) -> u64 {
        self.inner.shared.clock.now_ms()
    }

    async fn write<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut writer::Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner.writer.submit(op).await
    }

    async fn read<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Connection, u64) -> Result<R> + Send + 'static,
    {
        let now = self.now();
        self.inner.readers.run(move |conn| op(conn, now)).await
    }

    // ---- queues ----
    pub async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        validate_queue_name(name)?;
        validate::settings(name, &settings)?;
        let name = name.to_owned();
        self.write(move |tx| catalog::create_queue(tx, &name, &settings))
            .await
    }
    /// Replaces a queue's settings.
    pub async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        validate::settings(name, &settings)?;
        let name = name.to_owned();
        self.write(move |tx| catalog::update_queue(tx, &name, &settings))
            .await
    }
    pub async fn get_queue(&self, name: &str) -> Result<QueueInfo> {
        let name = name.to_owned();
        self.read(move |conn, now| catalog::get_queue(conn, now, &name))
            .await
    }
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.read(catalog::list_queues).await
    }
    /// Deletes a queue and its messages; refused while it is another queue's DLQ or a
    /// function consumes it.
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| catalog::delete_queue(tx, &name)).await
    }
    /// Deletes every message of the queue (in flight too); returns how many.
    pub async fn purge(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.write(move |tx| messages::purge(tx, &name)).await
    }
    /// Cheap, in-memory: whether the queue exists now.
    pub fn queue_exists(&self, name: &str) -> bool {
        let queues = self
            .inner
            .shared
            .queues
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        queues.contains(name)
    }

    // ---- messages ----
    /// Commits the messages (all or none) and returns their ids in order, after fsync.
    pub async fn enqueue(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        let queue = queue.to_owned();
        self.write(move |tx| messages::enqueue(tx, &queue, messages))
            .await
    }
    /// Unacknowledged messages (in flight too) in id order, without leasing them; only ids
    /// greater than `after` when given.
    pub async fn peek(
        &self,
        queue: &str,
        limit: usize,
        after: Option<u64>,
    ) -> Result<Vec<Message>> {
        self.check_exists(queue)?;
        let queue = queue.to_owned();
        self.read(move |conn, _| read::peek(conn, &queue, after.unwrap_or(0), limit))
            .await
    }
    /// A queue's settings without its stats (cheap).
    pub async fn queue_settings(&self, name: &str) -> Result<QueueSettings> {
        let name = name.to_owned();
        self.read(move |conn, _| read::queue_settings(conn, &name))
            .await
    }
    /// Leases up to `max` visible messages for `visibility` (default: the queue's visibility
    /// timeout). `None` when nothing is visible.
    pub async fn lease(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
    ) -> Result<Option<Lease>> {
        let queue = queue.to_owned();
        self.write(move |tx| messages::lease(tx, &queue, max, visibility))
            .await
    }
    /// Pushes a lease's expiry to now + `visibility`, for the messages it still holds.
    pub async fn extend(&self, lease: &Lease, visibility: Duration) -> Result<u64> {
        let lease_id = lease.id;
        let ids: Vec<String> = lease.messages.iter().map(|m| m.id.clone()).collect();
        self.write(move |tx| messages::extend(tx, lease_id, &ids, visibility))
            .await
    }
    /// Applies a settlement in one transaction.
    pub async fn settle(&self, lease: &Lease, settlement: Settlement) -> Result<Settled> {
        let lease_id = lease.id;
        let queue = lease.queue.clone();
        self.write(move |tx| messages::settle(tx, &queue, lease_id, settlement))
            .await
    }
    /// Moves up to `limit` messages from a dead-letter queue back to the queue each came from,
    /// or to `to`, with attempts reset. Returns how many moved.
    pub async fn redrive(&self, dlq: &str, to: Option<&str>, limit: Option<u64>) -> Result<u64> {
        let dlq = dlq.to_owned();
        let to = to.map(str::to_owned);
        self.write(move |tx| messages::redrive(tx, &dlq, to.as_deref(), limit))
            .await
    }
    /// When the next not-yet-visible message (delayed, retried, or in flight) becomes visible.
    pub async fn next_visible_at_ms(&self, queue: &str) -> Result<Option<u64>> {
        self.check_exists(queue)?;
        let queue = queue.to_owned();
        self.read(move |conn, now| read::next_visible_at(conn, now, &queue))
            .await
    }
    /// How many messages are visible now, counting at most `cap`.
    pub async fn visible_count(&self, queue: &str, cap: u64) -> Result<u64> {
        self.check_exists(queue)?;
        let queue = queue.to_owned();
        self.read(move |conn, now| read::visible_count(conn, now, &queue, cap))
            .await
    }
    /// Notified after every commit that adds messages to `queue` or changes when its next one
    /// becomes visible (enqueues, delayed ones too, and retries). Both
    /// `notify_waiters` and `notify_one` are used, so a consumer that checks the queue and then
    /// awaits `notified()` never misses a commit in between.
    pub fn notifier(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        self.inner.shared.notifier(queue)
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
        let name = name.to_owned();
        let sha256 = sha256.to_owned();
        self.write(move |tx| catalog::add_function_version(tx, &name, &sha256, size, &config))
            .await
    }
    pub async fn get_function(&self, name: &str) -> Result<FunctionRecord> {
        let name = name.to_owned();
        self.read(move |conn, _| catalog::get_function(conn, &name))
            .await
    }
    pub async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.read(|conn, _| catalog::list_functions(conn)).await
    }
    /// Makes an existing version active (rollback).
    pub async fn activate_version(&self, name: &str, version: u32) -> Result<FunctionRecord> {
        let name = name.to_owned();
        self.write(move |tx| catalog::activate_version(tx, &name, version))
            .await
    }
    /// Deletes a function, its versions and its trigger.
    pub async fn delete_function(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| catalog::delete_function(tx, &name))
            .await
    }
    /// Creates or replaces the function's trigger.
    pub async fn put_trigger(&self, trigger: TriggerRecord) -> Result<TriggerRecord> {
        self.write(move |tx| catalog::put_trigger(tx, trigger))
            .await
    }
    pub async fn delete_trigger(&self, function: &str) -> Result<()> {
        let function = function.to_owned();
        self.write(move |tx| catalog::delete_trigger(tx, &function))
            .await
    }
    pub async fn list_triggers(&self) -> Result<Vec<TriggerRecord>> {
        self.read(|conn, _| catalog::list_triggers(conn)).await
    }

    // ---- tokens ----
    pub async fn add_token(&self, token: TokenRecord) -> Result<()> {
        self.write(move |tx| tokens::insert(tx, &token)).await
    }
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|conn, _| tokens::list(conn)).await
    }
    pub async fn delete_token(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| tokens::delete(tx, &id)).await
    }
}

/// An API token as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing)]
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
}

impl From<rusqlite::Error> for Error {
    /// Every SQLite failure the store does not turn into a precise error is a storage problem
    /// (disk full, read-only, I/O, corruption): callers may retry later.
    fn from(e: rusqlite::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}
