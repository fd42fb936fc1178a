//! The one writer thread and its group commit: it takes every request waiting on its channel
//! (up to a cap), runs each in its own savepoint inside one transaction, commits once (one
//! fsync), then answers them all. It also runs the retention sweep on a timer.
//!
//! A transaction made only of [`Durability::Volatile`] requests (leases) commits without the
//! fsync: see [`Durability`] for why losing one in a power cut loses nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::{CatalogChange, Error, QueueSettings, Result, Shared, StoreOptions, messages, sql};

/// At most this many requests share one commit, bounding how long the first of them waits.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// How often expired messages and dedup entries are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The handles' side of the writer: a channel in, the thread to join on drop.
pub struct Handle {
    sender: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has answered what it already took.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn spawn(conn: Connection, shared: Arc<Shared>, options: StoreOptions) -> Result<Handle> {
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("sluice-store-writer".into())
        .spawn(move || {
            Writer {
                conn,
                shared,
                options,
                settings: HashMap::new(),
                synchronous: Durability::Durable,
            }
            .run(receiver)
        })
        .map_err(|e| Error::Unavailable(format!("cannot start the store writer: {e}")))?;
    Ok(Handle {
        sender: Some(sender),
        thread: Some(thread),
    })
}

/// Whether a request's commit must be on disk before the request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Fsynced before the answer (`synchronous=FULL`): enqueues, settles, everything a caller
    /// is told is kept.
    Durable,
    /// Committed to the WAL without waiting for the fsync (`synchronous=NORMAL`): only a lease
    /// or a lease's extension. A power cut may lose it (a process crash cannot: the write is in
    /// the kernel's page cache); then its messages are simply visible again and the attempt it
    /// counted is not counted. The WAL is written in order, so a settle checked against the
    /// lease is durable only with it: no ack, retry or send can outlive the lease it needed.
    Volatile,
}

impl Handle {
    /// Runs `op` in the writer's next transaction and answers once it is committed with
    /// `durability` (a transaction shared with a durable request is durable).
    pub async fn submit<R, F>(&self, durability: Durability, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = OpJob {
            op: Some(op),
            durability,
            result: None,
            done: move |r| {
                let _ = reply.send(r);
            },
        };
        let sender = self.sender.as_ref().ok_or_else(closed)?;
        sender.send(Box::new(job)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> Error {
    Error::Unavailable("the store's writer has stopped".into())
}

/// What one request may do inside the transaction.
pub struct Tx<'a> {
    pub conn: &'a Connection,
    pub now: u64,
    settings: &'a mut HashMap<String, Arc<QueueSettings>>,
    effects: Effects,
    counts: HashMap<String, Counts>,
    /// Changes to `message_due`, by queue and due time: (ready, leased).
    due: HashMap<(String, u64), (i64, i64)>,
    /// Each queue's `due_through`, read once per request.
    due_through: HashMap<String, u64>,
}

/// What happens after a request commits.
#[derive(Default)]
pub struct Effects {
    notify: HashSet<String>,
    /// Messages whose reply was stored: their waiters wake after commit.
    replied: Vec<String>,
    created: Vec<String>,
    deleted: Vec<String>,
}

/// Additions to a queue's persisted counters, written once per request.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub enqueued: u64,
    pub acked: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub expired: u64,
    /// Messages added minus messages removed.
    pub depth: i64,
}

/// Where a message stands for the live counts: when it becomes (or became) visible, and
/// whether a lease holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Due {
    pub visible_at: u64,
    pub leased: bool,
}

impl Due {
    pub fn ready(visible_at: u64) -> Due {
        Due {
            visible_at,
            leased: false,
        }
    }

    pub fn leased(visible_at: u64) -> Due {
        Due {
            visible_at,
            leased: true,
        }
    }

    /// Reads `visible_at, lease_id IS NOT NULL` from columns `at` and `at + 1`.
    pub fn from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Due> {
        Ok(Due {
            visible_at: u64::try_from(row.get::<_, i64>(at)?).unwrap_or(0),
            leased: row.get(at + 1)?,
        })
    }
}

impl Tx<'_> {
    /// A queue's settings, cached across transactions.
    pub fn settings(&mut self, queue: &str) -> Result<Arc<QueueSettings>> {
        if let Some(s) = self.settings.get(queue) {
            return Ok(s.clone());
        }
        let json: Option<String> = {
            let mut stmt = self.conn.prepare_cached(sql::QUEUE_SETTINGS)?;
            let mut rows = stmt.query(params![queue])?;
            match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            }
        };
        let json = json.ok_or_else(|| Error::QueueNotFound(queue.to_owned()))?;
        let settings = crate::store::codec::decode_settings(queue, &json)?;
        let settings = Arc::new(settings);
        self.settings.insert(queue.to_owned(), settings.clone());
        Ok(settings)
    }

    /// Drops cached settings; called by every request that changes queues.
    pub fn forget_settings(&mut self) {
        self.settings.clear();
    }

    pub fn count(&mut self, queue: &str) -> &mut Counts {
        self.counts.entry(queue.to_owned()).or_default()
    }

    /// A message was added to `queue`: every insert into `messages` calls this.
    pub fn added(&mut self, queue: &str, due: Due) -> Result<()> {
        self.count(queue).depth += 1;
        self.track(queue, due, 1)
    }

    /// A message was deleted from `queue`: every delete from `messages` calls this.
    pub fn removed(&mut self, queue: &str, due: Due) -> Result<()> {
        self.count(queue).depth -= 1;
        self.track(queue, due, -1)
    }

    /// A message of `queue` changed its due time or lease.
    pub fn moved(&mut self, queue: &str, from: Due, to: Due) -> Result<()> {
        self.track(queue, from, -1)?;
        self.track(queue, to, 1)
    }

    /// How many messages `queue` holds now, this request's changes included.
    pub fn depth(&mut self, queue: &str) -> Result<u64> {
        let stored: i64 = self
            .conn
            .prepare_cached(sql::QUEUE_DEPTH)?
            .query_row(params![queue], |r| r.get(0))?;
        let pending = self.counts.get(queue).map_or(0, |c| c.depth);
        Ok(u64::try_from(stored + pending).unwrap_or(0))
    }

    fn due_through(&mut self, queue: &str) -> Result<u64> {
        if let Some(&t) = self.due_through.get(queue) {
            return Ok(t);
        }
        let t: i64 = self
            .conn
            .prepare_cached(sql::DUE_THROUGH)?
            .query_row(params![queue], |r| r.get(0))?;
        let t = u64::try_from(t).unwrap_or(0);
        self.due_through.insert(queue.to_owned(), t);
        Ok(t)
    }

    fn track(&mut self, queue: &str, due: Due, n: i64) -> Result<()> {
        if due.visible_at <= self.due_through(queue)? {
            return Ok(());
        }
        let entry = self
            .due
            .entry((queue.to_owned(), due.visible_at))
            .or_default();
        match due.leased {
            false => entry.0 += n,
            true => entry.1 += n,
        }
        Ok(())
    }

    /// Folds `queue`'s entries due by now into its `due_through`, so what follows (a lease
    /// takes only messages due by now) leaves `message_due` alone.
    pub fn fold_due(&mut self, queue: &str) -> Result<()> {
        self.flush_due()?;
        let now = int(self.now);
        self.conn
            .prepare_cached(sql::FOLD_DUE)?
            .execute(params![queue, now])?;
        self.conn
            .prepare_cached(sql::SET_DUE_THROUGH)?
            .execute(params![queue, now])?;
        self.due_through.remove(queue);
        Ok(())
    }

    /// The same for every queue.
    pub fn fold_all_due(&mut self) -> Result<()> {
        self.flush_due()?;
        let now = int(self.now);
        self.conn
            .prepare_cached(sql::FOLD_ALL_DUE)?
            .execute(params![now])?;
        self.conn
            .prepare_cached(sql::SET_ALL_DUE_THROUGH)?
            .execute(params![now])?;
        self.due_through.clear();
        Ok(())
    }

    fn flush_due(&mut self) -> Result<()> {
        if self.due.is_empty() {
            return Ok(());
        }
        let mut add = self.conn.prepare_cached(sql::ADD_DUE)?;
        let mut drop_empty = self.conn.prepare_cached(sql::DROP_EMPTY_DUE)?;
        for ((queue, at), (ready, leased)) in self.due.drain() {
            if (ready, leased) == (0, 0) {
                continue;
            }
            add.execute(params![queue, int(at), ready, leased])?;
            if ready < 0 || leased < 0 {
                drop_empty.execute(params![queue, int(at)])?;
            }
        }
        Ok(())
    }

    /// Wake the queue's consumers after commit.
    pub fn notify(&mut self, queue: &str) {
        if !self.effects.notify.contains(queue) {
            self.effects.notify.insert(queue.to_owned());
        }
    }

    pub fn queue_created(&mut self, queue: &str) {
        self.effects.created.push(queue.to_owned());
    }

    /// Wake the waiters for `message_id`'s reply after commit.
    pub fn replied(&mut self, message_id: &str) {
        self.effects.replied.push(message_id.to_owned());
    }

    /// The queue is gone: its counters and due times are deleted with it, not written.
    pub fn queue_deleted(&mut self, queue: &str) {
        self.effects.deleted.push(queue.to_owned());
        self.counts.remove(queue);
        self.due.retain(|(q, _), _| q != queue);
        self.due_through.remove(queue);
    }

    fn flush_counts(&mut self) -> Result<()> {
        self.flush_due()?;
        let mut stmt = self.conn.prepare_cached(sql::ADD_COUNTERS)?;
        for (queue, c) in self.counts.drain() {
            if c == Counts::default() {
                continue;
            }
            stmt.execute(params![
                queue,
                int(c.enqueued),
                int(c.acked),
                int(c.retried),
                int(c.dead_lettered),
                int(c.dropped),
                int(c.expired),
                c.depth
            ])?;
        }
        Ok(())
    }
}

/// SQLite integers are signed; counts and times never reach `i64::MAX`, saturate if they do.
pub fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One request: run inside the transaction, then told whether the commit held.
trait Job: Send {
    /// Runs the request; returns its effects when it succeeded.
    fn run(&mut self, tx: &mut Tx<'_>) -> Option<Effects>;
    /// Answers the request; `commit` is the transaction's fate.
    fn finish(self: Box<Self>, commit: Result<(), String>);
    fn durability(&self) -> Durability;
}

struct OpJob<F, R, D> {
    op: Option<F>,
    durability: Durability,
    result: Option<Result<R>>,
    done: D,
}

impl<R, F, D> Job for OpJob<F, R, D>
where
    R: Send,
    F: FnOnce(&mut Tx<'_>) -> Result<R> + Send,
    D: FnOnce(Result<R>) + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> Option<Effects> {
        let op = self.op.take()?;
        let result = op(tx).and_then(|v| tx.flush_counts().map(|()| v));
        let ok = result.is_ok();
        self.result = Some(result);
        ok.then(|| std::mem::take(&mut tx.effects))
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let result = match (self.result, commit) {
            // A request that failed on its own reports its own error whatever the commit did.
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(Error::Unavailable(e)),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(Error::Unavailable("request was not run".into())),
        };
        (self.done)(result);
    }

    fn durability(&self) -> Durability {
        self.durability
    }
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    options: StoreOptions,
    settings: HashMap<String, Arc<QueueSettings>>,
    /// What the connection's `synchronous` setting is now (it opens `FULL`).
    synchronous: Durability,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Box<dyn Job>>) {
        let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
        let sweep_more = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut open = true;
        while open {
            let mut jobs: Vec<Box<dyn Job>> = Vec::new();
            match receiver.recv_timeout(next_sweep.saturating_duration_since(Instant::now())) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !jobs.is_empty() {
                open = self.gather(&receiver, &mut jobs);
            }
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + SWEEP_INTERVAL;
                let more = sweep_more.clone();
                let log_max_age_ms = self.options.log_max_age_ms();
                jobs.push(Box::new(OpJob {
                    op: Some(move |tx: &mut Tx<'_>| messages::sweep(tx, log_max_age_ms)),
                    durability: Durability::Durable,
                    result: None,
                    done: move |r: Result<(u64, bool)>| match r {
                        Ok((_, left)) => more.store(left, Ordering::Relaxed),
                        Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
                    },
                }));
            }
            self.commit(jobs);
            // A sweep that used its whole budget goes on in the next transaction, after
            // whatever requests arrived meanwhile.
            if sweep_more.swap(false, Ordering::Relaxed) {
                next_sweep = Instant::now();
            }
        }
    }

    /// Adds whatever else is waiting (and, with `max_batch_wait`, what arrives soon) to the
    /// batch. Returns false once the channel is closed.
    fn gather(&self, receiver: &Receiver<Box<dyn Job>>, jobs: &mut Vec<Box<dyn Job>>) -> bool {
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        let deadline = Instant::now() + self.options.max_batch_wait;
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match receiver.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        true
    }

    /// One transaction for the whole batch, one savepoint per request.
    fn commit(&mut self, mut jobs: Vec<Box<dyn Job>>) {
        if jobs.is_empty() {
            return;
        }
        let durability = match jobs.iter().all(|j| j.durability() == Durability::Volatile) {
            true => Durability::Volatile,
            false => Durability::Durable,
        };
        if let Err(e) = self.synchronous(durability) {
            return self.fail(jobs, &e.to_string());
        }
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            return self.fail(jobs, &e.to_string());
        }
        let mut effects = Vec::with_capacity(jobs.len());
        for i in 0..jobs.len() {
            if let Err(e) = self
                .conn
                .prepare_cached("SAVEPOINT request")
                .and_then(|mut s| s.execute([]))
            {
                return self.fail(jobs, &e.to_string());
            }
            let mut tx = Tx {
                conn: &self.conn,
                now: self.shared.clock.now_ms(),
                settings: &mut self.settings,
                effects: Effects::default(),
                counts: HashMap::new(),
                due: HashMap::new(),
                due_through: HashMap::new(),
            };
            match jobs[i].run(&mut tx) {
                Some(done) => effects.push(done),
                None => {
                    // Settings cached during the failed request may describe rolled-back rows.
                    self.settings.clear();
                    if self.conn.is_autocommit() {
                        // SQLite rolled the whole transaction back (disk full, I/O error): every
                        // request of the batch is lost with it.
                        return self
                            .fail(jobs, "the transaction was rolled back by a storage error");
                    }
                    let rolled_back = self
                        .conn
                        .prepare_cached("ROLLBACK TO request")
                        .and_then(|mut s| s.execute([]));
                    if let Err(e) = rolled_back {
                        return self.fail(jobs, &e.to_string());
                    }
                }
            }
            if let Err(e) = self
                .conn
                .prepare_cached("RELEASE request")
                .and_then(|mut s| s.execute([]))
            {
                return self.fail(jobs, &e.to_string());
            }
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            return self.fail(jobs, &e.to_string());
        }
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        // Effects before answers: once `create_queue` returns, `queue_exists` sees it.
        for e in effects {
            self.apply(e);
        }
        for job in jobs {
            job.finish(Ok(()));
        }
    }

    /// Sets how the next commit syncs: `FULL` fsyncs the WAL at commit, `NORMAL` leaves the
    /// fsync to the next `FULL` commit or checkpoint (both keep the database consistent).
    fn synchronous(&mut self, durability: Durability) -> rusqlite::Result<()> {
        if self.synchronous != durability {
            let mode = match durability {
                Durability::Durable => "FULL",
                Durability::Volatile => "NORMAL",
            };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.synchronous = durability;
        }
        Ok(())
    }

    fn apply(&self, effects: Effects) {
        let events = &self.shared.events;
        for q in effects.created {
            events.queue_created(&q);
            events.catalog_changed(CatalogChange::Queue(q));
        }
        for q in effects.deleted {
            events.queue_deleted(&q);
            events.catalog_changed(CatalogChange::Queue(q));
        }
        for q in &effects.notify {
            events.notify(q);
        }
        for id in &effects.replied {
            events.reply_committed(id);
        }
    }

    /// Rolls the transaction back and answers every request of the batch with the failure; the
    /// writer itself carries on with the next batch.
    fn fail(&mut self, jobs: Vec<Box<dyn Job>>, message: &str) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.settings.clear();
        tracing::warn!(
            error = message,
            requests = jobs.len(),
            "store commit failed"
        );
        for job in jobs {
            job.finish(Err(message.to_owned()));
        }
    }
}
