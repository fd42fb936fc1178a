//! The embedded backend: SQLite in the data directory (WAL, `synchronous=FULL`).
//!
//! Writes go through one writer thread that groups whatever requests are waiting into one
//! transaction (group commit), so many concurrent enqueues share one fsync. Reads use their own
//! connections and never wait for the writer. One process owns the file, so a lease taken by
//! the writer thread is exclusive by construction.

mod catalog;
mod components;
pub mod invocations;
mod kv;
pub(super) mod messages;
mod read;
mod replies;
mod schedules;
pub(super) mod schema;
pub(super) mod sql;
mod tokens;
mod topics;
pub(super) mod writer;

/// The message path as the writer runs it: the writer's `open` (schema, pragmas, durability)
/// and the statements of an enqueue, a lease and an acknowledgement. Public so that a
/// measurement outside the host (`sluice bench`'s floor) runs exactly this SQL rather than a
/// copy that could drift from it.
pub mod message_path {
    pub use super::schema::open;
    pub use super::sql::{ACK_MANY, INSERT_MESSAGE, TAKE_LEASE_MANY, visible_in_order};
}

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{
    Backend, CatalogChange, Clock, DEFAULT_PRIORITY, Enqueued, Error, Events, FunctionRecord,
    FunctionVersion, Lease, LeaseRequest, LogWrite, MAX_LEASE_MESSAGES, MAX_PRIORITY, Message,
    NewMessage, QueueInfo, QueueSettings, QueueStats, REASON_LEASE_EXPIRED, ReasonCounts,
    ReasonFilter, Redrive, Result, ScheduleRecord, Settled, Settlement, StoreOptions, TokenRecord,
    TriggerRecord, validate,
};
use super::{BucketRecord, KvEntry, Lull, StateWrite};
use super::{InvocationBucket, InvocationEntry, InvocationQuery, InvocationRetention, StatsWindow};
use super::{Published, ReplayFrom, SubscriptionRecord, TopicRecord};
use messages::ChunkPacer;
use writer::Durability;

/// State the writer thread and the backend both see.
pub(in crate::store) struct Shared {
    clock: Arc<dyn Clock>,
    events: Arc<Events>,
    commits: AtomicU64,
}

/// SQLite behind the storage contract. Dropping it closes the writer's channel and joins it.
pub struct SqliteBackend {
    shared: Arc<Shared>,
    writer: writer::Handle,
    readers: read::Pool,
    components: PathBuf,
    /// How old an invocation the sweep removes.
    log_max_age_ms: u64,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database in `dir`; components are kept beside it.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
    ) -> Result<SqliteBackend> {
        let (conn, path) = schema::open(dir)?;
        events.set_queues(catalog::queue_names(&conn)?);
        let shared = Arc::new(Shared {
            clock,
            events,
            commits: AtomicU64::new(0),
        });
        let readers = read::Pool::new(path);
        let log_max_age_ms = options.log_max_age_ms();
        let writer = writer::spawn(conn, shared.clone(), options)?;
        Ok(SqliteBackend {
            shared,
            writer,
            readers,
            components: dir.join("components"),
            log_max_age_ms,
        })
    }

    /// Runs `op` in the writer's next transaction (tests reach SQLite directly through it).
    pub(in crate::store) async fn write<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut writer::Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.writer.submit(Durability::Durable, op).await
    }

    /// Runs a lease or an extension: answered once committed, without waiting for the fsync
    /// (see [`Durability::Volatile`]).
    pub(in crate::store) async fn write_lease<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut writer::Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.writer.submit(Durability::Volatile, op).await
    }

    /// Runs `op` on a read connection (tests recount through it).
    pub(in crate::store) async fn read<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Connection, u64) -> Result<R> + Send + 'static,
    {
        let now = self.shared.clock.now_ms();
        self.readers.run(move |conn| op(conn, now)).await
    }

    fn changed(&self, change: CatalogChange) {
        self.shared.events.catalog_changed(change);
    }
}

/// A message id as this backend issues it; anything else was never one of ours.
fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok()
}

/// A peek's cursor (the last id of the previous page) as a row id; 0 without one.
fn peek_cursor(after: Option<&str>) -> Result<u64> {
    match after {
        None => Ok(0),
        Some(cursor) => parse_id(cursor)
            .and_then(|id| u64::try_from(id).ok())
            .ok_or_else(|| Error::InvalidCursor(cursor.to_owned())),
    }
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn shares_database(&self) -> bool {
        false
    }

    fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        let name = name.to_owned();
        self.write(move |tx| catalog::create_queue(tx, &name, &settings))
            .await
    }

    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        let owned = name.to_owned();
        let info = self
            .write(move |tx| catalog::update_queue(tx, &owned, &settings))
            .await?;
        self.changed(CatalogChange::Queue(name.to_owned()));
        Ok(info)
    }

    async fn get_queue(&self, name: &str) -> Result<QueueInfo> {
        let name = name.to_owned();
        self.read(move |conn, now| catalog::get_queue(conn, now, &name))
            .await
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.read(catalog::list_queues).await
    }

    async fn queue_names(&self) -> Result<HashSet<String>> {
        self.read(|conn, _| catalog::queue_names(conn)).await
    }

    async fn queue_settings(&self, name: &str) -> Result<QueueSettings> {
        let name = name.to_owned();
        self.read(move |conn, _| read::queue_settings(conn, &name))
            .await
    }

    /// A deep queue's messages go in chunks, each its own commit, so other queues are not held
    /// up; the queue itself goes with the last chunk.
    async fn delete_queue(&self, name: &str) -> Result<()> {
        let mut pacer = ChunkPacer::default();
        loop {
            let queue = name.to_owned();
            let chunk = pacer.size();
            let (done, took) = self
                .write(move |tx| timed(|| catalog::delete_queue(tx, &queue, chunk)))
                .await?;
            if done {
                return Ok(());
            }
            pacer.record(took);
        }
    }

    /// Deletes what the queue holds when the purge begins, in chunks, each its own commit, so
    /// writes to other queues wait for one chunk at most; messages enqueued meanwhile are kept.
    async fn purge(&self, name: &str) -> Result<u64> {
        let mut upto = None;
        let mut total = 0;
        let mut pacer = ChunkPacer::default();
        loop {
            let queue = name.to_owned();
            let chunk = pacer.size();
            let step = self
                .write(move |tx| timed(|| messages::purge(tx, &queue, upto, chunk)))
                .await;
            let ((deleted, newest), took) = match step {
                Ok(step) => step,
                // Deleted meanwhile: its messages are gone as well.
                Err(Error::QueueNotFound(_)) if upto.is_some() => return Ok(total),
                Err(e) => return Err(e),
            };
            total += deleted;
            upto = Some(newest);
            if deleted < chunk {
                return Ok(total);
            }
            pacer.record(took);
        }
    }

    async fn enqueue(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        let queue = queue.to_owned();
        self.write(move |tx| messages::enqueue(tx, &queue, messages))
            .await
    }

    async fn peek(&self, queue: &str, limit: usize, after: Option<&str>) -> Result<Vec<Message>> {
        let after = peek_cursor(after)?;
        let queue = queue.to_owned();
        self.read(move |conn, _| read::peek(conn, &queue, after, limit))
            .await
    }

    async fn peek_by_reason(
        &self,
        queue: &str,
        filter: &ReasonFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Message>> {
        let after = peek_cursor(after)?;
        let (queue, filter) = (queue.to_owned(), filter.clone());
        self.read(move |conn, _| read::peek_by_reason(conn, &queue, &filter, after, limit))
            .await
    }

    async fn dead_letter_reasons(&self, queue: &str, limit: usize) -> Result<ReasonCounts> {
        let queue = queue.to_owned();
        self.read(move |conn, _| read::dead_letter_reasons(conn, &queue, limit))
            .await
    }

    async fn lease(&self, queue: &str, request: LeaseRequest) -> Result<Option<Lease>> {
        let queue = queue.to_owned();
        let first_lane = first_lane(request.favoured);
        self.write_lease(move |tx| {
            let LeaseRequest {
                max,
                visibility,
                max_leases,
                ..
            } = request;
            messages::lease(tx, &queue, max, visibility, max_leases, first_lane)
        })
        .await
    }

    async fn extend(
        &self,
        queue: &str,
        lease_id: i64,
        ids: Vec<String>,
        visibility: Duration,
    ) -> Result<u64> {
        let queue = queue.to_owned();
        self.write_lease(move |tx| messages::extend(tx, &queue, lease_id, &ids, visibility))
            .await
    }

    async fn settle(
        &self,
        queue: &str,
        lease_id: i64,
        settlement: Settlement,
        log: Option<LogWrite>,
        next: Option<LeaseRequest>,
    ) -> Result<Settled> {
        let queue = queue.to_owned();
        self.write(move |tx| {
            let mut settled = messages::settle(tx, &queue, lease_id, settlement)?;
            if let Some(LogWrite { entry, retention }) = log {
                settled.logged = invocations::insert(tx, vec![entry], retention)?.pop();
            }
            if let Some(next) = next {
                settled.next = messages::lease(
                    tx,
                    &queue,
                    next.max,
                    next.visibility,
                    next.max_leases,
                    first_lane(next.favoured),
                )?;
            }
            Ok(settled)
        })
        .await
    }

    /// Moves in chunks, each its own commit, so writes to other queues are not held up.
    async fn redrive(&self, dlq: &str, to: Option<&str>, which: Redrive) -> Result<u64> {
        let limit = match which {
            Redrive::Oldest(limit) => limit.unwrap_or(u64::MAX),
            Redrive::Ids(ids) => {
                let ids = parse_ids(&ids);
                let dlq = dlq.to_owned();
                let to = to.map(str::to_owned);
                return self
                    .write(move |tx| messages::redrive_ids(tx, &dlq, to.as_deref(), &ids))
                    .await;
            }
        };
        let mut progress = messages::RedriveProgress::default();
        let mut pacer = ChunkPacer::default();
        while !progress.done && progress.moved < limit {
            let dlq = dlq.to_owned();
            let to = to.map(str::to_owned);
            let chunk = pacer.size();
            let took;
            (progress, took) = self
                .write(move |tx| {
                    timed(|| messages::redrive(tx, &dlq, to.as_deref(), limit, chunk, progress))
                })
                .await?;
            pacer.record(took);
        }
        Ok(progress.moved)
    }

    async fn delete_messages(&self, queue: &str, ids: Vec<String>) -> Result<u64> {
        let ids = parse_ids(&ids);
        let queue = queue.to_owned();
        self.write(move |tx| messages::delete(tx, &queue, &ids))
            .await
    }

    async fn next_visible_at_ms(&self, queue: &str) -> Result<Option<u64>> {
        let queue = queue.to_owned();
        self.read(move |conn, now| read::next_visible_at(conn, now, &queue))
            .await
    }

    async fn visible_count(&self, queue: &str, cap: u64) -> Result<u64> {
        let queue = queue.to_owned();
        self.read(move |conn, now| read::visible_count(conn, now, &queue, cap))
            .await
    }

    async fn lull(&self, queue: &str) -> Result<Lull> {
        let queue = queue.to_owned();
        self.read(move |conn, now| read::lull(conn, now, &queue))
            .await
    }

    async fn expire(&self) -> Result<u64> {
        // The running host's sweep (see the writer), until nothing is left to sweep.
        let mut total = 0;
        loop {
            let log_max_age_ms = self.log_max_age_ms;
            let (expired, more) = self
                .write(move |tx| messages::sweep(tx, log_max_age_ms))
                .await?;
            total += expired;
            if !more {
                return Ok(total);
            }
        }
    }

    async fn put_bucket(&self, name: &str, ttl_ms: Option<u64>) -> Result<BucketRecord> {
        let name = name.to_owned();
        self.write(move |tx| kv::put_bucket(tx, &name, ttl_ms))
            .await
    }

    async fn get_bucket(&self, name: &str) -> Result<BucketRecord> {
        let name = name.to_owned();
        self.read(move |conn, _| kv::get_bucket(conn, &name)).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        self.read(|conn, _| kv::list_buckets(conn)).await
    }

    async fn delete_bucket(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| kv::delete_bucket(tx, &name)).await
    }

    async fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<KvEntry>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |conn, now| kv::get(conn, now, &bucket, &key))
            .await
    }

    async fn kv_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let after = after.map(str::to_owned);
        self.read(move |conn, now| kv::keys(conn, now, &bucket, &prefix, after.as_deref(), limit))
            .await
    }

    async fn kv_write(&self, writes: Vec<StateWrite>) -> Result<()> {
        self.write(move |tx| kv::apply(tx, writes)).await
    }

    async fn get_reply(&self, message_id: &str) -> Result<Option<super::Reply>> {
        let message_id = message_id.to_owned();
        self.read(move |conn, now| replies::get(conn, now, &message_id))
            .await
    }

    async fn add_function_version(
        &self,
        name: &str,
        sha256: &str,
        size: u64,
        config: serde_json::Value,
    ) -> Result<FunctionRecord> {
        let owned = name.to_owned();
        let sha256 = sha256.to_owned();
        let record = self
            .write(move |tx| catalog::add_function_version(tx, &owned, &sha256, size, &config))
            .await?;
        self.changed(CatalogChange::Function(name.to_owned()));
        Ok(record)
    }

    async fn get_function(&self, name: &str) -> Result<FunctionRecord> {
        let name = name.to_owned();
        self.read(move |conn, _| catalog::get_function(conn, &name))
            .await
    }

    async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.read(|conn, _| catalog::list_functions(conn)).await
    }

    async fn activate_version(&self, name: &str, version: u32) -> Result<FunctionRecord> {
        let owned = name.to_owned();
        let record = self
            .write(move |tx| catalog::activate_version(tx, &owned, version))
            .await?;
        self.changed(CatalogChange::Function(name.to_owned()));
        Ok(record)
    }

    async fn delete_function(&self, name: &str) -> Result<()> {
        let owned = name.to_owned();
        self.write(move |tx| {
            catalog::delete_function(tx, &owned)?;
            invocations::delete_function(tx, &owned)
        })
        .await?;
        self.changed(CatalogChange::Function(name.to_owned()));
        Ok(())
    }

    async fn put_trigger(&self, trigger: TriggerRecord) -> Result<TriggerRecord> {
        let record = self
            .write(move |tx| catalog::put_trigger(tx, trigger))
            .await?;
        self.changed(CatalogChange::Function(record.function.clone()));
        Ok(record)
    }

    async fn delete_trigger(&self, function: &str) -> Result<()> {
        let owned = function.to_owned();
        self.write(move |tx| catalog::delete_trigger(tx, &owned))
            .await?;
        self.changed(CatalogChange::Function(function.to_owned()));
        Ok(())
    }

    async fn list_triggers(&self) -> Result<Vec<TriggerRecord>> {
        self.read(|conn, _| catalog::list_triggers(conn)).await
    }

    async fn put_component(&self, sha256: &str, bytes: Vec<u8>) -> Result<()> {
        components::put(&self.components, sha256, bytes).await
    }

    async fn get_component(&self, sha256: &str) -> Result<Vec<u8>> {
        components::get(&self.components, sha256).await
    }

    async fn record_invocations(
        &self,
        entries: Vec<InvocationEntry>,
        retention: Option<InvocationRetention>,
    ) -> Result<Vec<InvocationEntry>> {
        self.write(move |tx| invocations::insert(tx, entries, retention))
            .await
    }

    async fn invocations(
        &self,
        function: &str,
        query: InvocationQuery,
    ) -> Result<Vec<InvocationEntry>> {
        let function = function.to_owned();
        self.read(move |conn, _| invocations::page(conn, &function, &query))
            .await
    }

    async fn invocation_stats(
        &self,
        function: &str,
        window: StatsWindow,
    ) -> Result<Vec<InvocationBucket>> {
        let function = function.to_owned();
        self.read(move |conn, _| invocations::stats(conn, &function, &window))
            .await
    }

    async fn add_token(&self, token: TokenRecord) -> Result<()> {
        self.write(move |tx| tokens::insert(tx, &token)).await?;
        self.changed(CatalogChange::Tokens);
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|conn, _| tokens::list(conn)).await
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| tokens::delete(tx, &id)).await?;
        self.changed(CatalogChange::Tokens);
        Ok(())
    }

    async fn put_schedule(&self, schedule: ScheduleRecord) -> Result<ScheduleRecord> {
        let record = self.write(move |tx| schedules::put(tx, schedule)).await?;
        self.changed(CatalogChange::Schedules);
        Ok(record)
    }

    async fn get_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        let name = name.to_owned();
        self.read(move |conn, _| schedules::get(conn, &name)).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.read(|conn, _| schedules::list(conn)).await
    }

    async fn delete_schedule(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| schedules::delete(tx, &name)).await?;
        self.changed(CatalogChange::Schedules);
        Ok(())
    }

    async fn fire_schedule(
        &self,
        name: &str,
        tick_ms: u64,
        next_tick_ms: u64,
        extra: Vec<(String, String)>,
    ) -> Result<Option<Enqueued>> {
        let name = name.to_owned();
        self.write(move |tx| schedules::fire(tx, &name, tick_ms, next_tick_ms, extra))
            .await
    }

    async fn create_topic(&self, name: &str, retention_ms: u64) -> Result<TopicRecord> {
        let owned = name.to_owned();
        let topic = self
            .write(move |tx| topics::create(tx, &owned, retention_ms))
            .await?;
        self.changed(CatalogChange::Topics);
        Ok(topic)
    }

    async fn get_topic(&self, name: &str) -> Result<TopicRecord> {
        let name = name.to_owned();
        self.read(move |conn, _| topics::get(conn, &name)).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicRecord>> {
        self.read(|conn, _| topics::list(conn)).await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| topics::delete(tx, &name)).await?;
        self.changed(CatalogChange::Topics);
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: serde_json::Value,
        from: ReplayFrom,
    ) -> Result<SubscriptionRecord> {
        let (topic, queue) = (topic.to_owned(), queue.to_owned());
        let record = self
            .write(move |tx| topics::subscribe(tx, &topic, &queue, &filter, from))
            .await?;
        self.changed(CatalogChange::Topics);
        Ok(record)
    }

    async fn unsubscribe(&self, topic: &str, queue: &str) -> Result<()> {
        let (topic, queue) = (topic.to_owned(), queue.to_owned());
        self.write(move |tx| topics::unsubscribe(tx, &topic, &queue))
            .await?;
        self.changed(CatalogChange::Topics);
        Ok(())
    }

    async fn publish(&self, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<Published>> {
        let topic = topic.to_owned();
        self.write(move |tx| topics::publish(tx, &topic, messages))
            .await
    }

    async fn lagging_subscriptions(&self) -> Result<Vec<(String, String)>> {
        self.read(|conn, _| topics::lagging(conn)).await
    }

    async fn catch_up(&self, topic: &str, queue: &str) -> Result<bool> {
        let (topic, queue) = (topic.to_owned(), queue.to_owned());
        self.write(move |tx| topics::catch_up(tx, &topic, &queue))
            .await
    }
}

impl From<rusqlite::Error> for Error {
    /// Every SQLite failure the store does not turn into a precise error is a storage problem
    /// (disk full, read-only, I/O, corruption): callers may retry later.
    fn from(e: rusqlite::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

/// This store's message ids among `ids` (a message id here is its row id in decimal); any other
/// string names no message of this store.
/// The lease's first lane: the favoured priority's, else the highest priority's.
fn first_lane(favoured: Option<u8>) -> usize {
    usize::from(MAX_PRIORITY - favoured.unwrap_or(MAX_PRIORITY).min(MAX_PRIORITY))
}

fn parse_ids(ids: &[String]) -> Vec<u64> {
    ids.iter().filter_map(|id| id.parse().ok()).collect()
}

/// Runs one chunk of a bulk operation and says how long it held the writer.
fn timed<T>(chunk: impl FnOnce() -> Result<T>) -> Result<(T, std::time::Duration)> {
    let started = std::time::Instant::now();
    let done = chunk()?;
    Ok((done, started.elapsed()))
}
