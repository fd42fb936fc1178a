//! The shared backend: PostgreSQL, so several hosts serve the same queues.
//!
//! Leases take rows with `FOR UPDATE SKIP LOCKED` in one statement, so hosts never lease the
//! same message, reading each queue from this host's [`marks`] rather than from its front; a
//! settle is one transaction whose every change is guarded by the lease id, so it applies only
//! while the lease is held. A trigger's concurrency cap is a set of slot rows per queue in the
//! database (a lease takes a free one with `SKIP LOCKED`), so it holds across hosts. After each
//! commit [`notify`] tells the other hosts which queues it gave work to, and [`listen`] turns
//! other hosts' NOTIFYs into this host's [`Events`]; a timer per host runs the retention sweep,
//! which is safe to run everywhere at once. The statements of the message hot path (enqueue,
//! lease, settle, their probes) are prepared once per pooled connection (`prepare_cached`), so
//! each call is one round trip and PostgreSQL does not parse and plan it again.

mod invocations;
mod kv;
mod listen;
mod marks;
mod messages;
mod notify;
mod replies;
mod schedules;
pub(in crate::store) mod schema;
mod sql;
mod topics;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::codec::{decode_settings, encode_settings};
use super::rules::DeadLetterChain;
use super::{
    Backend, CatalogChange, Clock, Enqueued, Error, Events, FunctionRecord, FunctionVersion,
    InvocationBucket, InvocationEntry, InvocationQuery, InvocationRetention, Lease, LeaseRequest,
    LogWrite, Message, NewMessage, QueueInfo, QueueSettings, QueueStats, ReasonCounts,
    ReasonFilter, Redrive, Result, ScheduleRecord, Settled, Settlement, StoreOptions, TokenRecord,
    TriggerRecord,
};
use super::{BucketRecord, KvEntry, Lull, StateWrite, StatsWindow};
use super::{Published, ReplayFrom, SubscriptionRecord, TopicRecord};
use marks::Marks;
use messages::Work;
use notify::Notifier;

/// Connections each host keeps to the database.
const POOL_SIZE: usize = 16;
/// How long an operation waits for a connection before answering "unavailable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often each host sweeps expired messages and folds counters.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Counts and times never reach `i64::MAX`; saturate if they do.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// PostgreSQL behind the storage contract.
pub struct PostgresBackend {
    pool: Pool,
    clock: Arc<dyn Clock>,
    events: Arc<Events>,
    commits: AtomicU64,
    /// Wakes the other hosts after each commit.
    notifier: Arc<Notifier>,
    tasks: Vec<JoinHandle<()>>,
    /// How old an invocation the sweep removes.
    log_max_age_ms: u64,
    /// Where this host's leases start reading each queue.
    marks: Marks,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The URL with any password left out, for messages.
fn display_url(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

impl PostgresBackend {
    /// Connects, migrates, and starts listening for other hosts' commits.
    pub async fn connect(
        url: &str,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
    ) -> Result<PostgresBackend> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            Error::Unavailable(format!(
                "invalid PostgreSQL URL ({e}); expected postgres://USER@HOST:PORT/DB"
            ))
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("sluice");
        let location = display_url(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Unavailable(format!("PostgreSQL pool: {e}")))?;
        let mut client = pool.get().await.map_err(|e| {
            Error::Unavailable(format!("cannot connect to PostgreSQL at {location}: {e}"))
        })?;
        schema::migrate(&mut client, &location).await?;
        let names = client.query(sql::QUEUE_NAMES, &[]).await?;
        events.set_queues(names.iter().map(|r| r.get(0)).collect());
        drop(client);

        let (notifier, notifying) = Notifier::spawn(config.clone());
        let listener = tokio::spawn(listen::run(config, events.clone()));
        let backend = PostgresBackend {
            notifier: Arc::new(notifier),
            pool,
            clock,
            events,
            commits: AtomicU64::new(0),
            tasks: vec![listener, notifying],
            log_max_age_ms: options.log_max_age_ms(),
            marks: Marks::default(),
        };
        Ok(backend.with_sweeper())
    }

    /// Starts this host's retention sweep timer.
    fn with_sweeper(mut self) -> PostgresBackend {
        let pool = self.pool.clone();
        let clock = self.clock.clone();
        let notifier = self.notifier.clone();
        let log_max_age_ms = self.log_max_age_ms;
        let sweeper = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SWEEP_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(err) = sweep(&pool, &notifier, clock.now_ms(), log_max_age_ms).await {
                    tracing::warn!(%err, "retention sweep failed");
                }
            }
        });
        self.tasks.push(sweeper);
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot reach PostgreSQL: {e}")))
    }

    /// After a commit: wake this host's consumers at once, and the other hosts' before
    /// returning (see [`notify`]).
    async fn committed(&self, work: Work) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        for queue in &work.released {
            self.marks.forget(queue);
        }
        for queue in &work.wake {
            self.events.notify(queue);
        }
        for id in &work.replied {
            self.events.reply_committed(id);
        }
        self.notifier.wake(work.wake).await;
    }

    /// Announces a catalog change to this host now and to the others at commit.
    async fn announce(tx: &Transaction<'_>, payload: &str) -> Result<()> {
        tx.execute(sql::NOTIFY_CATALOG, &[&payload]).await?;
        Ok(())
    }
}

/// The running host's retention sweep, for everything the store keeps for a time: queue
/// messages and dedup ids, topic history, replies, and invocations older than
/// `log_max_age_ms`.
async fn sweep(pool: &Pool, notifier: &Notifier, now: u64, log_max_age_ms: u64) -> Result<u64> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    let tx = client.transaction().await?;
    let mut work = Work::new(now);
    let expired = messages::expire(&tx, &mut work).await?;
    topics::expire(&tx, now).await?;
    replies::expire(&tx, now).await?;
    kv::expire(&tx, now).await?;
    invocations::expire(&tx, now.saturating_sub(log_max_age_ms)).await?;
    work.flush(&tx).await?;
    tx.commit().await?;
    drop(client);
    notifier.wake(work.wake).await;
    Ok(expired)
}

/// Runs `$body` in a transaction with a [`Work`], flushes its counters, commits, gives the
/// connection back to the pool and wakes the consumers of the queues it gave work to, here and
/// on the other hosts. An error anywhere rolls everything back.
macro_rules! in_tx {
    ($self:ident, |$tx:ident, $work:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let $tx = client.transaction().await?;
        let mut work = Work::new($self.clock.now_ms());
        let out = {
            let $work = &mut work;
            $body
        };
        work.flush(&$tx).await?;
        $tx.commit().await?;
        drop(client);
        $self.committed(work).await;
        out
    }};
}

fn queue_from_row(row: &tokio_postgres::Row) -> Result<QueueInfo> {
    let name: String = row.get(0);
    let settings = decode_settings(&name, row.get(1))?;
    Ok(QueueInfo {
        settings,
        created_at_ms: count(row.get(2)),
        stats: QueueStats {
            enqueued_total: count(row.get(3)),
            acked_total: count(row.get(4)),
            retried_total: count(row.get(5)),
            dead_lettered_total: count(row.get(6)),
            dropped_total: count(row.get(7)),
            expired_total: count(row.get(8)),
            ..QueueStats::default()
        },
        name,
    })
}

fn trigger_from_row(r: &tokio_postgres::Row) -> TriggerRecord {
    TriggerRecord {
        function: r.get(0),
        queue: r.get(1),
        batch_size: u32::try_from(r.get::<_, i32>(2)).unwrap_or(1),
        max_wait_ms: count(r.get(3)),
        max_concurrency: u32::try_from(r.get::<_, i32>(4)).unwrap_or(1),
        paused: r.get(5),
    }
}

async fn with_live_stats(
    client: &impl deadpool_postgres::GenericClient,
    now: u64,
    mut info: QueueInfo,
) -> Result<QueueInfo> {
    let row = client
        .query_one(sql::QUEUE_LIVE_COUNTS, &[&info.name, &int(now)])
        .await?;
    info.stats.visible = count(row.get(0));
    info.stats.delayed = count(row.get(1));
    info.stats.in_flight = count(row.get(2));
    info.stats.oldest_age_ms = row
        .get::<_, Option<i64>>(3)
        .map(|t| now.saturating_sub(count(t)));
    Ok(info)
}

async fn get_function_in(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<FunctionRecord> {
    let active: i32 = client
        .query_opt(sql::ACTIVE_VERSION, &[&name])
        .await?
        .ok_or_else(|| Error::FunctionNotFound(name.to_owned()))?
        .get(0);
    let versions = client
        .query(sql::FUNCTION_VERSIONS, &[&name])
        .await?
        .iter()
        .map(|r| {
            let config: String = r.get(4);
            FunctionVersion {
                version: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                sha256: r.get(1),
                size: count(r.get(2)),
                created_at_ms: count(r.get(3)),
                // Stored by us from a `Value`; unreadable only if edited by hand.
                config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
            }
        })
        .collect();
    let trigger = client
        .query_opt(sql::TRIGGER_OF_FUNCTION, &[&name])
        .await?
        .map(|r| trigger_from_row(&r));
    Ok(FunctionRecord {
        name: name.to_owned(),
        active_version: u32::try_from(active).unwrap_or(0),
        versions,
        trigger,
    })
}

async fn queue_exists(client: &impl deadpool_postgres::GenericClient, name: &str) -> Result<bool> {
    Ok(client
        .query_opt(sql::QUEUE_EXISTS, &[&name])
        .await?
        .is_some())
}

/// The dead-letter queue must exist when the settings are stored, and following dead-letter
/// queues from `queue` must end: a cycle would pass a message around it forever. Changes that
/// set a dead-letter queue take turns across hosts, so two of them cannot close a cycle
/// together.
/// The dead-letter rule ([`DeadLetterChain`]) read in `tx`, serialised with every other change
/// of a dead-letter queue (two changes checked at once could close a cycle between them).
async fn check_dead_letter_queue(
    tx: &Transaction<'_>,
    queue: &str,
    settings: &QueueSettings,
) -> Result<()> {
    let Some(mut chain) = DeadLetterChain::of(queue, settings) else {
        return Ok(());
    };
    tx.execute(sql::LOCK_DEAD_LETTER_CHANGES, &[]).await?;
    if !queue_exists(tx, chain.dead_letter_queue()).await? {
        return Err(chain.missing());
    }
    while let Some(next) = chain.next() {
        let after: Option<String> = tx
            .query_opt(sql::DEAD_LETTER_QUEUE_OF, &[&next])
            .await?
            .and_then(|r| r.get(0));
        chain.found(after)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn shares_database(&self) -> bool {
        true
    }

    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        let now = self.clock.now_ms();
        in_tx!(self, |tx, _work| {
            check_dead_letter_queue(&tx, name, &settings).await?;
            let inserted = tx
                .execute(
                    sql::INSERT_QUEUE,
                    &[
                        &name,
                        &encode_settings(&settings)?,
                        &settings.dead_letter_queue,
                        &int(now),
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(Error::QueueExists(name.to_owned()));
            }
            Self::announce(&tx, &listen::queue_created(name)).await?;
        });
        self.events.queue_created(name);
        self.events
            .catalog_changed(CatalogChange::Queue(name.to_owned()));
        Ok(QueueInfo {
            name: name.to_owned(),
            settings,
            created_at_ms: now,
            stats: QueueStats::default(),
        })
    }

    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo> {
        in_tx!(self, |tx, _work| {
            check_dead_letter_queue(&tx, name, &settings).await?;
            let changed = tx
                .execute(
                    sql::UPDATE_QUEUE_SETTINGS,
                    &[
                        &name,
                        &encode_settings(&settings)?,
                        &settings.dead_letter_queue,
                    ],
                )
                .await?;
            if changed == 0 {
                return Err(Error::QueueNotFound(name.to_owned()));
            }
            Self::announce(&tx, &listen::queue_changed(name)).await?;
        });
        self.events
            .catalog_changed(CatalogChange::Queue(name.to_owned()));
        self.get_queue(name).await
    }

    async fn get_queue(&self, name: &str) -> Result<QueueInfo> {
        let client = self.client().await?;
        let row = client
            .query_opt(sql::SELECT_QUEUES, &[&Some(name)])
            .await?
            .ok_or_else(|| Error::QueueNotFound(name.to_owned()))?;
        with_live_stats(&client, self.clock.now_ms(), queue_from_row(&row)?).await
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        let client = self.client().await?;
        let now = self.clock.now_ms();
        let rows = client.query(sql::SELECT_QUEUES, &[&None::<&str>]).await?;
        // Every queue's live counts at once: the connection pipelines them.
        let queues = rows.iter().map(|row| {
            let client = &client;
            async move { with_live_stats(client, now, queue_from_row(row)?).await }
        });
        futures::future::try_join_all(queues).await
    }

    async fn queue_names(&self) -> Result<HashSet<String>> {
        let client = self.client().await?;
        let rows = client.query(sql::QUEUE_NAMES, &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn queue_settings(&self, name: &str) -> Result<QueueSettings> {
        let client = self.client().await?;
        let row = client
            .query_opt(&client.prepare_cached(sql::QUEUE_SETTINGS).await?, &[&name])
            .await?
            .ok_or_else(|| Error::QueueNotFound(name.to_owned()))?;
        decode_settings(name, row.get(0))
    }

    async fn delete_queue(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            // Locked first: an insert into the queue from now on waits, then finds it gone.
            if tx
                .query_opt(sql::LOCK_QUEUE_FOR_DELETE, &[&name])
                .await?
                .is_none()
            {
                return Err(Error::QueueNotFound(name.to_owned()));
            }
            if let Some(row) = tx.query_opt(sql::QUEUES_USING_AS_DLQ, &[&name]).await? {
                return Err(Error::QueueInUse {
                    queue: name.to_owned(),
                    used_by: row.get(0),
                });
            }
            if let Some(row) = tx.query_opt(sql::CONSUMER_OF_QUEUE, &[&name]).await? {
                return Err(Error::QueueHasConsumer {
                    queue: name.to_owned(),
                    function: row.get(0),
                });
            }
            if let Some(schedule) = schedules::schedule_of(&tx, name).await? {
                return Err(Error::QueueScheduled {
                    queue: name.to_owned(),
                    schedule,
                });
            }
            if let Some(topic) = topics::subscription_of(&tx, name).await? {
                return Err(Error::QueueSubscribed {
                    queue: name.to_owned(),
                    topic,
                });
            }
            tx.execute(sql::DELETE_QUEUE_MESSAGES, &[&name]).await?;
            tx.execute(sql::DELETE_QUEUE_DEDUP, &[&name]).await?;
            tx.execute(sql::DELETE_QUEUE_COUNTS, &[&name]).await?;
            tx.execute(sql::DELETE_QUEUE, &[&name]).await?;
            Self::announce(&tx, &listen::queue_deleted(name)).await?;
        });
        self.events.queue_deleted(name);
        self.events
            .catalog_changed(CatalogChange::Queue(name.to_owned()));
        Ok(())
    }

    async fn purge(&self, name: &str) -> Result<u64> {
        Ok(in_tx!(self, |tx, work| messages::purge(&tx, work, name).await?))
    }

    async fn enqueue(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
        if !messages::standalone(&messages) {
            return Ok(in_tx!(self, |tx, work| messages::enqueue(
                &tx, work, queue, messages
            )
            .await?));
        }
        // Nothing to hold until commit: no transaction, so two round trips (the settings with
        // the ids, then the insert that commits) instead of four.
        let client = self.client().await?;
        let mut work = Work::new(self.clock.now_ms());
        let out = messages::enqueue(&client, &mut work, queue, messages).await?;
        drop(client);
        self.committed(work).await;
        Ok(out)
    }

    async fn peek(&self, queue: &str, limit: usize, after: Option<&str>) -> Result<Vec<Message>> {
        let after = messages::parse_cursor(after)?;
        let client = self.client().await?;
        let rows = client
            .query(sql::PEEK, &[&queue, &after, &(limit as i64)])
            .await?;
        messages::peek_rows(rows, queue)
    }

    async fn peek_by_reason(
        &self,
        queue: &str,
        filter: &ReasonFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<Message>> {
        let after = messages::parse_cursor(after)?;
        let limit = limit as i64;
        let client = self.client().await?;
        let rows = match filter {
            ReasonFilter::Reason(reason) => {
                client
                    .query(sql::PEEK_REASON, &[&queue, &after, &limit, reason])
                    .await?
            }
            ReasonFilter::NoReason => {
                client
                    .query(sql::PEEK_NO_REASON, &[&queue, &after, &limit])
                    .await?
            }
        };
        messages::peek_rows(rows, queue)
    }

    async fn dead_letter_reasons(&self, queue: &str, limit: usize) -> Result<ReasonCounts> {
        let client = self.client().await?;
        let rows = client
            .query(sql::DEAD_LETTER_REASONS, &[&queue, &(limit as i64)])
            .await?;
        Ok(messages::reason_counts(rows))
    }

    async fn lease(&self, queue: &str, request: LeaseRequest) -> Result<Option<Lease>> {
        Ok(in_tx!(self, |tx, work| {
            // One round trip for both.
            let commit_without_waiting = async {
                tx.batch_execute(sql::COMMIT_WITHOUT_WAITING).await?;
                Ok::<_, Error>(())
            };
            let ((), settings) =
                tokio::try_join!(commit_without_waiting, messages::read_settings(&tx, queue))?;
            work.remember(queue, settings);
            messages::lease(&tx, work, &self.marks, queue, request).await?
        }))
    }

    async fn extend(
        &self,
        queue: &str,
        lease_id: i64,
        ids: Vec<String>,
        visibility: Duration,
    ) -> Result<u64> {
        Ok(in_tx!(self, |tx, work| messages::extend(
            &tx, work, queue, lease_id, &ids, visibility
        )
        .await?))
    }

    async fn settle(
        &self,
        queue: &str,
        lease_id: i64,
        settlement: Settlement,
        log: Option<LogWrite>,
        next: Option<LeaseRequest>,
    ) -> Result<Settled> {
        Ok(in_tx!(self, |tx, work| {
            // The settlement's first statements, the invocation row and the settings the next
            // lease needs do not depend on each other: they go out in one round trip.
            let now = work.now;
            let log = async {
                match log {
                    Some(LogWrite { entry, retention }) => {
                        Ok(invocations::insert(&tx, now, vec![entry], retention)
                            .await?
                            .pop())
                    }
                    None => Ok(None),
                }
            };
            let settings = async {
                match next {
                    Some(_) => messages::read_settings(&tx, queue).await.map(Some),
                    None => Ok(None),
                }
            };
            let (mut settled, logged, settings) = tokio::try_join!(
                messages::settle(&tx, work, queue, lease_id, settlement),
                log,
                settings
            )?;
            settled.logged = logged;
            if let Some(settings) = settings {
                work.remember(queue, settings);
            }
            if let Some(next) = next {
                // The settle above freed this lease's slot, so under a cap the next lease may
                // take it again; when it does, nothing was freed for other consumers to wake
                // for (a retry or a released group head still wakes them).
                settled.next = messages::lease(&tx, work, &self.marks, queue, next).await?;
                if settled.next.is_some() {
                    work.freed.remove(queue);
                }
            }
            settled
        }))
    }

    async fn redrive(&self, dlq: &str, to: Option<&str>, which: Redrive) -> Result<u64> {
        Ok(in_tx!(self, |tx, work| match &which {
            Redrive::Oldest(limit) => messages::redrive(&tx, work, dlq, to, *limit).await?,
            Redrive::Ids(ids) => messages::redrive_ids(&tx, work, dlq, to, ids).await?,
        }))
    }

    async fn delete_messages(&self, queue: &str, ids: Vec<String>) -> Result<u64> {
        Ok(in_tx!(self, |tx, work| messages::delete(
            &tx, work, queue, &ids
        )
        .await?))
    }

    async fn next_visible_at_ms(&self, queue: &str) -> Result<Option<u64>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client.prepare_cached(sql::NEXT_VISIBLE_AT).await?,
                &[&queue, &int(self.clock.now_ms())],
            )
            .await?;
        Ok(row.and_then(|row| row.get::<_, Option<i64>>(0)).map(count))
    }

    async fn visible_count(&self, queue: &str, cap: u64) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &client.prepare_cached(sql::VISIBLE_COUNT).await?,
                &[&queue, &int(self.clock.now_ms()), &int(cap)],
            )
            .await?;
        Ok(count(row.get(0)))
    }

    async fn lull(&self, queue: &str) -> Result<Lull> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &client.prepare_cached(sql::LULL).await?,
                &[&queue, &int(self.clock.now_ms())],
            )
            .await?;
        Ok(Lull {
            visible_now: row.get(0),
            next_visible_at_ms: row.get::<_, Option<i64>>(1).map(count),
        })
    }

    async fn expire(&self) -> Result<u64> {
        sweep(
            &self.pool,
            &self.notifier,
            self.clock.now_ms(),
            self.log_max_age_ms,
        )
        .await
    }

    async fn add_function_version(
        &self,
        name: &str,
        sha256: &str,
        size: u64,
        config: serde_json::Value,
    ) -> Result<FunctionRecord> {
        let now = int(self.clock.now_ms());
        let record = in_tx!(self, |tx, _work| {
            tx.execute(sql::INSERT_FUNCTION, &[&name, &now]).await?;
            tx.execute(sql::LOCK_FUNCTION, &[&name]).await?;
            let last: i32 = tx.query_one(sql::LAST_VERSION, &[&name]).await?.get(0);
            let version = last + 1;
            tx.execute(
                sql::INSERT_VERSION,
                &[
                    &name,
                    &version,
                    &sha256,
                    &int(size),
                    &now,
                    &config.to_string(),
                ],
            )
            .await?;
            tx.execute(sql::SET_ACTIVE_VERSION, &[&name, &version])
                .await?;
            Self::announce(&tx, &listen::function_changed(name)).await?;
            get_function_in(&tx, name).await?
        });
        self.events
            .catalog_changed(CatalogChange::Function(name.to_owned()));
        Ok(record)
    }

    async fn get_function(&self, name: &str) -> Result<FunctionRecord> {
        let client = self.client().await?;
        get_function_in(&client, name).await
    }

    async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        let client = self.client().await?;
        let names: Vec<String> = client
            .query(sql::FUNCTION_NAMES, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match get_function_in(&client, &name).await {
                Ok(record) => out.push(record),
                // Deleted by another host between the two reads.
                Err(Error::FunctionNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn activate_version(&self, name: &str, version: u32) -> Result<FunctionRecord> {
        let record = in_tx!(self, |tx, _work| {
            if tx
                .query_opt(sql::FUNCTION_EXISTS, &[&name])
                .await?
                .is_none()
            {
                return Err(Error::FunctionNotFound(name.to_owned()));
            }
            let v = i32::try_from(version).unwrap_or(i32::MAX);
            if tx
                .query_opt(sql::VERSION_EXISTS, &[&name, &v])
                .await?
                .is_none()
            {
                return Err(Error::VersionNotFound {
                    name: name.to_owned(),
                    version,
                });
            }
            tx.execute(sql::SET_ACTIVE_VERSION, &[&name, &v]).await?;
            Self::announce(&tx, &listen::function_changed(name)).await?;
            get_function_in(&tx, name).await?
        });
        self.events
            .catalog_changed(CatalogChange::Function(name.to_owned()));
        Ok(record)
    }

    async fn delete_function(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            if tx.execute(sql::DELETE_FUNCTION, &[&name]).await? == 0 {
                return Err(Error::FunctionNotFound(name.to_owned()));
            }
            tx.execute(invocations::DELETE_FUNCTION, &[&name]).await?;
            Self::announce(&tx, &listen::function_changed(name)).await?;
        });
        self.events
            .catalog_changed(CatalogChange::Function(name.to_owned()));
        Ok(())
    }

    async fn put_trigger(&self, trigger: TriggerRecord) -> Result<TriggerRecord> {
        in_tx!(self, |tx, _work| {
            if !queue_exists(&tx, &trigger.queue).await? {
                return Err(Error::QueueNotFound(trigger.queue));
            }
            if tx
                .query_opt(sql::FUNCTION_EXISTS, &[&trigger.function])
                .await?
                .is_none()
            {
                return Err(Error::FunctionNotFound(trigger.function));
            }
            if let Some(row) = tx
                .query_opt(sql::CONSUMER_OF_QUEUE, &[&trigger.queue])
                .await?
            {
                let function: String = row.get(0);
                if function != trigger.function {
                    return Err(Error::QueueHasConsumer {
                        queue: trigger.queue,
                        function,
                    });
                }
            }
            let upserted = tx
                .execute(
                    sql::UPSERT_TRIGGER,
                    &[
                        &trigger.function,
                        &trigger.queue,
                        &i32::try_from(trigger.batch_size).unwrap_or(i32::MAX),
                        &int(trigger.max_wait_ms),
                        &i32::try_from(trigger.max_concurrency).unwrap_or(i32::MAX),
                        &trigger.paused,
                    ],
                )
                .await;
            match upserted {
                Ok(_) => {}
                // Another host bound a different function to this queue at the same moment.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(Error::QueueHasConsumer {
                        queue: trigger.queue,
                        function: "another function".into(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
            Self::announce(&tx, &listen::function_changed(&trigger.function)).await?;
        });
        self.events
            .catalog_changed(CatalogChange::Function(trigger.function.clone()));
        Ok(trigger)
    }

    async fn delete_trigger(&self, function: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            if tx
                .query_opt(sql::FUNCTION_EXISTS, &[&function])
                .await?
                .is_none()
            {
                return Err(Error::FunctionNotFound(function.to_owned()));
            }
            tx.execute(sql::DELETE_TRIGGER, &[&function]).await?;
            Self::announce(&tx, &listen::function_changed(function)).await?;
        });
        self.events
            .catalog_changed(CatalogChange::Function(function.to_owned()));
        Ok(())
    }

    async fn list_triggers(&self) -> Result<Vec<TriggerRecord>> {
        let client = self.client().await?;
        let rows = client.query(sql::ALL_TRIGGERS, &[]).await?;
        Ok(rows.iter().map(trigger_from_row).collect())
    }

    async fn put_component(&self, sha256: &str, bytes: Vec<u8>) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(sql::INSERT_COMPONENT, &[&sha256, &bytes])
            .await?;
        Ok(())
    }

    async fn get_component(&self, sha256: &str) -> Result<Vec<u8>> {
        let client = self.client().await?;
        let row = client
            .query_opt(sql::SELECT_COMPONENT, &[&sha256])
            .await?
            .ok_or_else(|| Error::ComponentNotFound(sha256.to_owned()))?;
        Ok(row.get(0))
    }

    async fn record_invocations(
        &self,
        entries: Vec<InvocationEntry>,
        retention: Option<InvocationRetention>,
    ) -> Result<Vec<InvocationEntry>> {
        let now = self.clock.now_ms();
        Ok(in_tx!(self, |tx, _work| invocations::insert(
            &tx, now, entries, retention
        )
        .await?))
    }

    async fn invocations(
        &self,
        function: &str,
        query: InvocationQuery,
    ) -> Result<Vec<InvocationEntry>> {
        let client = self.client().await?;
        invocations::page(&client, function, &query).await
    }

    async fn invocation_stats(
        &self,
        function: &str,
        window: StatsWindow,
    ) -> Result<Vec<InvocationBucket>> {
        let client = self.client().await?;
        invocations::stats(&client, function, &window).await
    }

    async fn add_token(&self, token: TokenRecord) -> Result<()> {
        let scopes =
            serde_json::to_string(&token.scopes).map_err(|e| Error::Unavailable(e.to_string()))?;
        in_tx!(self, |tx, _work| {
            let inserted = tx
                .execute(
                    sql::INSERT_TOKEN,
                    &[
                        &token.id,
                        &token.name,
                        &token.hash,
                        &scopes,
                        &int(token.created_at_ms),
                        &token.sqs_secret,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(Error::InvalidSettings(format!(
                        "a token with id `{}` already exists",
                        token.id
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            Self::announce(&tx, listen::TOKENS_CHANGED).await?;
        });
        self.events.catalog_changed(CatalogChange::Tokens);
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let client = self.client().await?;
        let rows = client.query(sql::ALL_TOKENS, &[]).await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let scopes: String = r.get(3);
                let scopes = serde_json::from_str(&scopes).map_err(|e| {
                    Error::Unavailable(format!("scopes of token `{id}` are unreadable: {e}"))
                })?;
                Ok(TokenRecord {
                    name: r.get(1),
                    hash: r.get(2),
                    scopes,
                    created_at_ms: count(r.get(4)),
                    sqs_secret: r.get(5),
                    id,
                })
            })
            .collect()
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            if tx.execute(sql::DELETE_TOKEN, &[&id]).await? == 0 {
                return Err(Error::TokenNotFound(id.to_owned()));
            }
            Self::announce(&tx, listen::TOKENS_CHANGED).await?;
        });
        self.events.catalog_changed(CatalogChange::Tokens);
        Ok(())
    }

    async fn put_schedule(&self, schedule: ScheduleRecord) -> Result<ScheduleRecord> {
        let record = in_tx!(self, |tx, work| {
            let record = schedules::put(&tx, work, schedule).await?;
            Self::announce(&tx, listen::SCHEDULES_CHANGED).await?;
            record
        });
        self.events.catalog_changed(CatalogChange::Schedules);
        Ok(record)
    }

    async fn get_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        let client = self.client().await?;
        schedules::get(&client, name).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>> {
        let client = self.client().await?;
        schedules::list(&client).await
    }

    async fn delete_schedule(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            schedules::delete(&tx, name).await?;
            Self::announce(&tx, listen::SCHEDULES_CHANGED).await?;
        });
        self.events.catalog_changed(CatalogChange::Schedules);
        Ok(())
    }

    async fn fire_schedule(
        &self,
        name: &str,
        tick_ms: u64,
        next_tick_ms: u64,
        extra: Vec<(String, String)>,
    ) -> Result<Option<Enqueued>> {
        Ok(in_tx!(self, |tx, work| schedules::fire(
            &tx,
            work,
            name,
            tick_ms,
            next_tick_ms,
            extra
        )
        .await?))
    }

    async fn create_topic(&self, name: &str, retention_ms: u64) -> Result<TopicRecord> {
        let now = self.clock.now_ms();
        in_tx!(self, |tx, _work| {
            topics::create(&tx, now, name, retention_ms).await?;
            Self::announce(&tx, listen::TOPICS_CHANGED).await?;
        });
        self.events.catalog_changed(CatalogChange::Topics);
        self.get_topic(name).await
    }

    async fn put_bucket(&self, name: &str, ttl_ms: Option<u64>) -> Result<BucketRecord> {
        let client = self.client().await?;
        kv::put_bucket(&client, self.clock.now_ms(), name, ttl_ms).await
    }

    async fn get_bucket(&self, name: &str) -> Result<BucketRecord> {
        let client = self.client().await?;
        kv::get_bucket(&client, name).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let client = self.client().await?;
        kv::list_buckets(&client).await
    }

    async fn delete_bucket(&self, name: &str) -> Result<()> {
        let client = self.client().await?;
        kv::delete_bucket(&client, name).await
    }

    async fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<KvEntry>> {
        let client = self.client().await?;
        kv::get(&client, self.clock.now_ms(), bucket, key).await
    }

    async fn kv_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let client = self.client().await?;
        kv::keys(&client, self.clock.now_ms(), bucket, prefix, after, limit).await
    }

    async fn kv_write(&self, writes: Vec<StateWrite>) -> Result<()> {
        in_tx!(self, |tx, work| kv::apply(&tx, work.now, writes).await?);
        Ok(())
    }

    async fn get_reply(&self, message_id: &str) -> Result<Option<super::Reply>> {
        let client = self.client().await?;
        replies::get(&client, self.clock.now_ms(), message_id).await
    }

    async fn get_topic(&self, name: &str) -> Result<TopicRecord> {
        let client = self.client().await?;
        topics::get(&client, name).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicRecord>> {
        let client = self.client().await?;
        topics::list(&client, None).await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            topics::delete(&tx, name).await?;
            Self::announce(&tx, listen::TOPICS_CHANGED).await?;
        });
        self.events.catalog_changed(CatalogChange::Topics);
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        queue: &str,
        filter: serde_json::Value,
        from: ReplayFrom,
    ) -> Result<SubscriptionRecord> {
        let record = in_tx!(self, |tx, work| {
            let record = topics::subscribe(&tx, work, topic, queue, &filter, from).await?;
            Self::announce(&tx, listen::TOPICS_CHANGED).await?;
            record
        });
        self.events.catalog_changed(CatalogChange::Topics);
        Ok(record)
    }

    async fn unsubscribe(&self, topic: &str, queue: &str) -> Result<()> {
        in_tx!(self, |tx, _work| {
            topics::unsubscribe(&tx, topic, queue).await?;
            Self::announce(&tx, listen::TOPICS_CHANGED).await?;
        });
        self.events.catalog_changed(CatalogChange::Topics);
        Ok(())
    }

    async fn publish(&self, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<Published>> {
        Ok(in_tx!(self, |tx, work| topics::publish(
            &tx, work, topic, messages
        )
        .await?))
    }

    async fn lagging_subscriptions(&self) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        topics::lagging(&client).await
    }

    async fn catch_up(&self, topic: &str, queue: &str) -> Result<bool> {
        Ok(in_tx!(self, |tx, work| topics::catch_up(
            &tx, work, topic, queue
        )
        .await?))
    }
}

impl From<tokio_postgres::Error> for Error {
    /// Every PostgreSQL failure the store does not turn into a precise error is a storage
    /// problem (connection lost, server restarting): callers may retry later.
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Error::Unavailable(format!("PostgreSQL: {}", db.message())),
            None => Error::Unavailable(format!("PostgreSQL: {e}")),
        }
    }
}
