//! The storage contract: what a database must do for Sluice, after river's driver interface.
//! Backends execute; the decisions (what a settle does to each message, which attributes a
//! dead letter gets, where a publish goes) are made in [`super::rules`] and [`super::topics`].

use std::collections::HashSet;
use std::time::Duration;

use super::{
    BucketRecord, Enqueued, FunctionRecord, InvocationBucket, InvocationEntry, InvocationQuery,
    InvocationRetention, KvEntry, Lease, LeaseRequest, LogWrite, Lull, Message, NewMessage,
    Published, QueueInfo, QueueSettings, ReasonCounts, ReasonFilter, Redrive, ReplayFrom, Reply,
    Result, ScheduleRecord, Settled, Settlement, StateWrite, StatsWindow, SubscriptionRecord,
    TokenRecord, TopicRecord, TriggerRecord,
};

/// The storage contract: what a database must do for Sluice. Every write is durable when it
/// returns; `settle` applies all of a settlement or none of it, and only to messages the lease
/// still holds. Backends report commits through the [`super::Events`] they were opened with.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors: `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Whether other hosts may share this database: leases, caps and the catalog are then
    /// enforced by the database, and changes arrive from other hosts as well as this one.
    fn shares_database(&self) -> bool;
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
    /// Like [`Backend::peek`], only the messages `filter` picks (a dead-letter queue's, by
    /// the reason they died for): an index walk, however few match.
    async fn peek_by_reason(
        &self,
        queue: &str,
        filter: &ReasonFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Message>>;
    /// The `limit` reasons most of the queue's messages were dead-lettered for, with their
    /// counts, across the whole queue, read in one snapshot.
    async fn dead_letter_reasons(&self, queue: &str, limit: usize) -> Result<ReasonCounts>;
    /// Leases up to `max` visible messages: higher priorities first, then by visible time and
    /// enqueue order; only the head of each group (its oldest message). With `favoured`, that
    /// priority's messages come first, out of turn. With `max_leases`, refuses (returns `None`)
    /// while that many leases of the queue are live, across every host sharing the database.
    async fn lease(&self, queue: &str, request: LeaseRequest) -> Result<Option<Lease>>;
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
        next: Option<LeaseRequest>,
    ) -> Result<Settled>;
    /// Moves the `which` messages of dead-letter queue `dlq` back to the queue each came from,
    /// or to `to`, with attempts reset; returns how many moved.
    async fn redrive(&self, dlq: &str, to: Option<&str>, which: Redrive) -> Result<u64>;
    /// Deletes the given messages of `queue`, in flight or not; returns how many.
    async fn delete_messages(&self, queue: &str, ids: Vec<String>) -> Result<u64>;
    async fn next_visible_at_ms(&self, queue: &str) -> Result<Option<u64>>;
    async fn visible_count(&self, queue: &str, cap: u64) -> Result<u64>;
    /// [`Lull`]: `visible_count(queue, 1) > 0` and `next_visible_at_ms(queue)` read in one
    /// snapshot and one round trip.
    async fn lull(&self, queue: &str) -> Result<Lull>;
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

    /// The non-empty buckets of `window` of `function`'s invocations, dry runs left out, with
    /// percentiles as [`super::invocation_stats::percentile_cont`] computes them.
    async fn invocation_stats(
        &self,
        function: &str,
        window: StatsWindow,
    ) -> Result<Vec<InvocationBucket>>;

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

    // ---- key-value state: written by `settle` (and `kv_write`), swept by `expire` ----
    /// Creates the bucket, or changes its expiry (for writes from then on).
    async fn put_bucket(&self, name: &str, ttl_ms: Option<u64>) -> Result<BucketRecord>;
    async fn get_bucket(&self, name: &str) -> Result<BucketRecord>;
    async fn list_buckets(&self) -> Result<Vec<BucketRecord>>;
    /// Deletes the bucket and its keys.
    async fn delete_bucket(&self, name: &str) -> Result<()>;
    /// The live (unexpired) value of a key; `None` when it has none.
    async fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<KvEntry>>;
    /// Up to `limit` live keys starting with `prefix`, after `after`, in byte order.
    async fn kv_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// Applies writes at once, in one commit, as a settle's state is applied.
    async fn kv_write(&self, writes: Vec<StateWrite>) -> Result<()>;

    // Replies: committed by `settle`, swept by `expire`.
    /// The reply to `message_id`, unless there is none or it expired.
    async fn get_reply(&self, message_id: &str) -> Result<Option<Reply>>;
}
