//! Durable queues: the [`Store`] handle the rest of the host holds, over a [`Backend`] (the
//! storage contract). This module alone owns the database; every SQL statement of the host
//! lives under it, one submodule per backend: [`sqlite`] (embedded, the default) and
//! [`postgres`] (several hosts sharing queues).
//!
//! Where to look:
//! - [`contract`]: the [`Backend`] trait, after river's driver interface: everything outside
//!   the store sees opaque string ids and cursors, never a backend's row ids.
//! - [`types`] and [`error`]: what the contract passes and how it fails.
//! - [`rules`], [`topics`], [`validate`]: the delivery rules and checks, written once; a
//!   backend executes them with its own SQL and locking.
//! - this file: the [`Store`] façade, which adds what does not depend on the database:
//!   validation of everything that enters, the injected [`Clock`], [`Events`] (wake-ups and
//!   catalog changes, fed by this host's commits and, with PostgreSQL, by other hosts'
//!   NOTIFYs) and the priority turns of [`turns`].

mod clock;
mod codec;
mod contract;
mod error;
mod events;
mod invocation_stats;
pub mod postgres;
mod replies;
pub(crate) mod rules;
pub mod sqlite;
pub mod state;
pub mod topics;
mod turns;
mod types;
mod validate;

#[cfg(test)]
mod group_order;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod replay_seam;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

pub use clock::{Clock, ManualClock, SystemClock};
pub use contract::Backend;
pub use error::{Error, Result};
pub use events::{CatalogChange, Events};
pub use invocation_stats::{
    InvocationBucket, MAX_STATS_BUCKETS, MAX_STATS_WINDOW_MS, MIN_STATS_BUCKET_MS, StatsWindow,
};
pub use replies::{MAX_REPLY_WAIT, NewReply, REPLY_RETENTION_MS, Reply};
pub use state::{BucketRecord, KeyPage, KvEntry, StateOp, StateWrite};
pub use topics::{Published, ReplayFrom, SubscriptionRecord, TopicRecord};
pub use turns::{FAVOURED_TURN, favoured_priority};
pub use types::*;
pub use validate::{
    FIFO_SUFFIX, RESERVED_ATTRIBUTE_PREFIX, is_reserved_attribute, message as validate_message,
    message_size, validate_queue_name,
};

/// The handle every other part of the host holds; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    events: Arc<Events>,
    clock: Arc<dyn Clock>,
    /// When this handle last trimmed the invocation log (store clock, ms).
    log_trimmed_at: Arc<AtomicU64>,
    /// Leases taken per queue by this handle, for [`favoured_priority`].
    turns: Arc<turns::Turns>,
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
    pub async fn connect_postgres(
        url: &str,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let events = Arc::new(Events::default());
        let backend =
            postgres::PostgresBackend::connect(url, options, clock.clone(), events.clone()).await?;
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
            Location::Postgres(url) => Store::connect_postgres(url, options, clock).await,
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
            turns: Arc::default(),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Whether several hosts may share this store (leases and caps are then enforced by the
    /// database, not by this process).
    pub fn is_shared(&self) -> bool {
        self.backend.shares_database()
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
        messages.iter().try_for_each(validate::message)?;
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
    /// Like [`Store::peek`], only the messages `filter` picks: a dead-letter queue's, by the
    /// reason they died for (their `sluice-dead-letter-reason`), or those with none.
    pub async fn peek_by_reason(
        &self,
        queue: &str,
        filter: &ReasonFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Message>> {
        self.check_exists(queue).await?;
        self.backend
            .peek_by_reason(queue, filter, limit, after)
            .await
    }
    /// The reasons the queue's dead letters died for, across the whole queue: the `limit`
    /// most frequent (capped at [`MAX_REASONS`]) with their counts, most first.
    pub async fn dead_letter_reasons(&self, queue: &str, limit: usize) -> Result<ReasonCounts> {
        self.check_exists(queue).await?;
        self.backend
            .dead_letter_reasons(queue, limit.clamp(1, MAX_REASONS))
            .await
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
        let request = LeaseRequest::new(max, visibility, None);
        self.lease_with(queue, request).await
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
        let request = LeaseRequest::new(max, visibility, Some(max_leases));
        self.lease_with(queue, request).await
    }
    /// Takes a lease, serving a priority out of turn when it is due (see [`favoured_priority`]).
    async fn lease_with(&self, queue: &str, request: LeaseRequest) -> Result<Option<Lease>> {
        let request = self.take_turn(queue, request);
        self.backend.lease(queue, request).await
    }
    fn take_turn(&self, queue: &str, request: LeaseRequest) -> LeaseRequest {
        LeaseRequest {
            favoured: self.turns.next(queue),
            ..request
        }
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
        self.settle_with(&lease.queue, lease.id, settlement, None, None)
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
        next: LeaseRequest,
    ) -> Result<Settled> {
        let next = self.take_turn(&lease.queue, next);
        self.settle_logged_with(lease, settlement, entry, retention, Some(next))
            .await
    }
    async fn settle_logged_with(
        &self,
        lease: &Lease,
        settlement: Settlement,
        entry: InvocationEntry,
        retention: InvocationRetention,
        next: Option<LeaseRequest>,
    ) -> Result<Settled> {
        let log = LogWrite {
            entry,
            retention: self.log_trim_due().then_some(retention),
        };
        self.settle_with(&lease.queue, lease.id, settlement, Some(log), next)
            .await
    }
    /// Every settle goes through here: the messages it sends and publishes pass the same
    /// checks as an enqueue or publish through the API, before any backend sees them (their
    /// size, against their queue's limit, is checked by the backend that reads the queue).
    async fn settle_with(
        &self,
        queue: &str,
        lease_id: i64,
        settlement: Settlement,
        log: Option<LogWrite>,
        next: Option<LeaseRequest>,
    ) -> Result<Settled> {
        (settlement.send.iter())
            .chain(&settlement.publish)
            .try_for_each(|(_, m)| validate::message(m))?;
        settlement
            .state
            .iter()
            .try_for_each(state::validate_write)?;
        self.backend
            .settle(queue, lease_id, settlement, log, next)
            .await
    }
    /// Like [`Store::settle`], for a lease known by its id (a pull consumer's receipts).
    pub async fn settle_held(
        &self,
        queue: &str,
        lease_id: i64,
        settlement: Settlement,
    ) -> Result<Settled> {
        self.settle_with(queue, lease_id, settlement, None, None)
            .await
    }
    /// Moves up to `limit` messages from a dead-letter queue back to the queue each came from,
    /// or to `to`, with attempts reset. Returns how many moved.
    pub async fn redrive(&self, dlq: &str, to: Option<&str>, limit: Option<u64>) -> Result<u64> {
        self.backend.redrive(dlq, to, Redrive::Oldest(limit)).await
    }
    /// Like [`Store::redrive`], for the given messages only (ids not in `dlq`, or not ids of
    /// this store at all, are skipped).
    pub async fn redrive_messages(
        &self,
        dlq: &str,
        to: Option<&str>,
        ids: Vec<String>,
    ) -> Result<u64> {
        self.backend.redrive(dlq, to, Redrive::Ids(ids)).await
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
    /// Whether messages are visible now and when the next one comes due, in one snapshot: what
    /// a consumer whose lease came back empty needs.
    pub async fn lull(&self, queue: &str) -> Result<Lull> {
        self.check_exists(queue).await?;
        self.backend.lull(queue).await
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

    /// `function`'s invocations (dry runs left out) in each bucket of `window`, every bucket
    /// given, in order: how many, how many failed, and their duration percentiles.
    pub async fn invocation_stats(
        &self,
        function: &str,
        window: StatsWindow,
    ) -> Result<Vec<InvocationBucket>> {
        let found = self.backend.invocation_stats(function, window).await?;
        Ok(invocation_stats::fill(&window, found))
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
    // ---- key-value state ----
    /// Creates the bucket, or changes its expiry; keys written from then on expire `ttl_ms`
    /// after their last write (never, without one).
    pub async fn put_bucket(&self, name: &str, ttl_ms: Option<u64>) -> Result<BucketRecord> {
        state::validate_bucket_name(name)?;
        state::validate_ttl(ttl_ms)?;
        self.backend.put_bucket(name, ttl_ms).await
    }
    pub async fn get_bucket(&self, name: &str) -> Result<BucketRecord> {
        self.backend.get_bucket(name).await
    }
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        self.backend.list_buckets().await
    }
    /// Deletes the bucket and every key in it.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.backend.delete_bucket(name).await
    }
    /// The committed, unexpired value of a key; `None` when it has none.
    pub async fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<KvEntry>> {
        state::validate_key(key)?;
        self.backend.kv_get(bucket, key).await
    }
    /// A page of a bucket's live keys starting with `prefix`, after `cursor` (the previous
    /// page's), at most `limit` (capped at [`state::MAX_KEYS_PAGE`]).
    pub async fn kv_keys(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let limit = limit.clamp(1, state::MAX_KEYS_PAGE);
        let keys = self
            .backend
            .kv_keys(bucket, prefix, cursor, limit + 1)
            .await?;
        Ok(KeyPage::from_read(keys, limit))
    }
    /// Commits writes at once (an operator's), all or none, by the rules a settle's follow.
    pub async fn kv_write(&self, writes: Vec<StateWrite>) -> Result<()> {
        writes.iter().try_for_each(state::validate_write)?;
        self.backend.kv_write(writes).await
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
        messages.iter().try_for_each(validate::message)?;
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
