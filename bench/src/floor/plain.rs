//! The strong plain queue: what a user who needs one durable queue writes by hand, and what
//! Sluice's end-to-end figure is held against. One table per queue with only its primary key
//! (no queue column, no secondary index to maintain), taken in `id` order; a producer sending
//! batches and waiting for each commit, and consumers, each on a connection of its own. A
//! consumer deletes what it takes in the statement that takes it: at-most-once, no attempt
//! counted, nothing to redeliver, which is why it is a peer and not a design Sluice could
//! adopt. Same durability as the host: SQLite in WAL with `synchronous=FULL`, PostgreSQL with
//! `synchronous_commit=on`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use rusqlite::{Connection, params};
use tokio_postgres::NoTls;

/// How long one peer took: `messages` sent by the producer while the consumers ran, from the
/// first insert to the last delete.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub messages: u64,
    pub took: Duration,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.took.as_secs_f64()
    }
}

/// A drain's pace as its queue empties: the last tenth of the messages' pace against the
/// first tenth's (1.0 when it stays flat). `tenths[k]` is when the first `(k + 1)` tenths were
/// taken, from the drain's start.
pub fn last_tenth_to_first(tenths: &[Duration]) -> f64 {
    match tenths {
        [first, .., before_last, last] => {
            first.as_secs_f64() / last.saturating_sub(*before_last).as_secs_f64().max(1e-9)
        }
        _ => 1.0,
    }
}

/// How the SQLite consumer takes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Deletes it in the statement that reads it: the plain queue.
    Delete,
    /// The least the delivery contract needs, on the same one-table layout: a lease marks the
    /// batch taken and counts each attempt (columns outside every index), and the batch is
    /// deleted under that lease in the transaction that leases the next. Each message is
    /// written three times (insert, lease, delete) where the plain queue writes it twice.
    Lease,
    /// The same, for a queue whose messages may come due later (delays, retries with backoff,
    /// lease expiry): an index on `(visible_at, id)` the lease reads in due order and moves
    /// each leased message in, as any such queue needs one order by due time. One secondary
    /// index is the least Sluice's features (delays, and priorities leading that order) need.
    LeaseByDueTime,
}

impl Take {
    /// What this way of taking adds to the peer's table.
    fn index(self) -> Option<&'static str> {
        match self {
            Take::Delete | Take::Lease => None,
            Take::LeaseByDueTime => Some(SQLITE_DUE_INDEX),
        }
    }
}

const SQLITE_TABLE: &str = "CREATE TABLE jobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL,
    visible_at INTEGER NOT NULL DEFAULT 0, lease_id INTEGER, attempt INTEGER NOT NULL DEFAULT 0)";
const SQLITE_INSERT: &str = "INSERT INTO jobs (body) VALUES (?1)";
const SQLITE_TAKE: &str =
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs ORDER BY id LIMIT ?1) RETURNING id, body";
/// Leases up to `?1` visible messages in id order for lease `?2` until `?3`.
const SQLITE_LEASE: &str = "UPDATE jobs SET lease_id = ?2, visible_at = ?3, attempt = attempt + 1
    WHERE id IN (SELECT id FROM jobs WHERE visible_at <= 1 ORDER BY id LIMIT ?1)
    RETURNING id, body";
const SQLITE_DUE_INDEX: &str = "CREATE INDEX jobs_by_due_time ON jobs (visible_at, id)";
/// The same lease in due-time order, through that index.
const SQLITE_LEASE_BY_DUE_TIME: &str =
    "UPDATE jobs SET lease_id = ?2, visible_at = ?3, attempt = attempt + 1
    WHERE id IN (SELECT id FROM jobs WHERE visible_at <= 1 ORDER BY visible_at, id LIMIT ?1)
    RETURNING id, body";
/// Acknowledges what lease `?3` holds of ids `?1` to `?2` (a lease takes a run of ids).
const SQLITE_ACK: &str = "DELETE FROM jobs WHERE id BETWEEN ?1 AND ?2 AND lease_id = ?3";

pub(crate) fn sqlite_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    ensure!(mode.eq_ignore_ascii_case("wal"), "journal mode is {mode}");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// The SQLite peer: a producer and a consumer thread, each with its own connection, committing
/// once per batch, the consumer taking batches as `take` says. SQLite has one writer at a time;
/// the two take turns through [`Turns`], as a careful user does, rather than through SQLite's
/// busy handler, which sleeps for milliseconds when it finds the database locked.
pub fn sqlite(
    dir: &Path,
    take: Take,
    messages: u64,
    body_bytes: usize,
    batch: usize,
) -> Result<Run> {
    let path = sqlite_table(dir, take)?;
    let (producer, consumer) = (sqlite_connection(&path)?, sqlite_connection(&path)?);
    let turns = Turns::default();
    let batch = batch.max(1);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let turns = &turns;
        let produced = scope.spawn(move || -> Result<()> {
            let bodies = vec![vec![b'x'; body_bytes]; batch];
            let (mut left, mut produced) = (messages, Ok(()));
            while left > 0 && produced.is_ok() {
                let n = left.min(batch as u64);
                produced = sqlite_insert(&producer, turns, &bodies[..n as usize]).map(drop);
                left -= n;
            }
            turns.finish();
            produced
        });
        let consumed = sqlite_consume(&consumer, turns, take, messages, batch);
        let produced = produced
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the producer panicked")));
        produced.and(consumed)
    })?;
    Ok(Run {
        messages,
        took: started.elapsed(),
    })
}

/// How the SQLite peer's producer and consumer share the one writer: a lock they take in turn,
/// holding how many messages the producer has committed, and a condition the producer signals
/// after each commit, on which a consumer that has taken them all waits (rather than spinning
/// on an empty table).
#[derive(Default)]
pub(crate) struct Turns {
    inserted: Mutex<u64>,
    committed: Condvar,
    finished: AtomicBool,
}

impl Turns {
    fn take(&self) -> MutexGuard<'_, u64> {
        self.inserted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The producer has sent all it will: a waiting consumer stops waiting.
    pub(crate) fn finish(&self) {
        let _turn = self.take();
        self.finished.store(true, Ordering::Relaxed);
        self.committed.notify_all();
    }
}

/// A fresh database in `dir` holding the peer's empty table, as `take` needs it; returns its
/// path.
pub(crate) fn sqlite_table(dir: &Path, take: Take) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("plain.db");
    let _ = std::fs::remove_file(&path);
    let conn = sqlite_connection(&path)?;
    conn.execute_batch(SQLITE_TABLE)?;
    if let Some(index) = take.index() {
        conn.execute_batch(index)?;
    }
    Ok(path)
}

/// The producer's side: `bodies` in one transaction, in its turn; returns their ids.
pub(crate) fn sqlite_insert(
    producer: &Connection,
    turns: &Turns,
    bodies: &[impl AsRef<[u8]>],
) -> Result<Vec<i64>> {
    let mut turn = turns.take();
    producer.execute_batch("BEGIN IMMEDIATE")?;
    let mut ids = Vec::with_capacity(bodies.len());
    {
        let mut insert = producer.prepare_cached(SQLITE_INSERT)?;
        for body in bodies {
            insert.execute(params![body.as_ref()])?;
            ids.push(producer.last_insert_rowid());
        }
    }
    producer.execute_batch("COMMIT")?;
    *turn += bodies.len() as u64;
    drop(turn);
    turns.committed.notify_all();
    Ok(ids)
}

/// The consumer's side: takes batches as `take` says until `messages` are done. Once it has
/// taken every message committed so far it waits for the producer's next commit, so that with
/// [`Take::Lease`] the batch it holds is acknowledged in the transaction that leases the next
/// one rather than in a commit of its own; it fails if the producer finished without sending
/// them all.
pub(crate) fn sqlite_consume(
    consumer: &Connection,
    turns: &Turns,
    take: Take,
    messages: u64,
    batch: usize,
) -> Result<()> {
    let batch = batch.max(1);
    let (mut done, mut taken, mut lease_id) = (0u64, 0u64, 0i64);
    let mut held: Vec<i64> = Vec::with_capacity(batch);
    while done < messages {
        let turn = turns
            .committed
            .wait_while(turns.take(), |inserted| {
                *inserted == taken && !turns.finished.load(Ordering::Relaxed)
            })
            .unwrap_or_else(PoisonError::into_inner);
        ensure!(
            *turn > taken || !held.is_empty(),
            "the producer stopped after {taken} of {messages} messages"
        );
        consumer.execute_batch("BEGIN IMMEDIATE")?;
        if let (Some(first), Some(last)) = (held.first(), held.last()) {
            let mut ack = consumer.prepare_cached(SQLITE_ACK)?;
            done += ack.execute(params![first, last, lease_id])? as u64;
        }
        held.clear();
        lease_id += 1;
        let mut statement = match take {
            Take::Delete => consumer.prepare_cached(SQLITE_TAKE)?,
            Take::Lease => consumer.prepare_cached(SQLITE_LEASE)?,
            Take::LeaseByDueTime => consumer.prepare_cached(SQLITE_LEASE_BY_DUE_TIME)?,
        };
        let mut rows = match take {
            Take::Delete => statement.query(params![batch as i64])?,
            Take::Lease | Take::LeaseByDueTime => {
                statement.query(params![batch as i64, lease_id, i64::MAX])?
            }
        };
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let _body: Vec<u8> = row.get(1)?;
            held.push(id);
        }
        drop(rows);
        drop(statement);
        consumer.execute_batch("COMMIT")?;
        drop(turn);
        taken += held.len() as u64;
        if take == Take::Delete {
            done += held.len() as u64;
            held.clear();
        }
    }
    Ok(())
}

pub(crate) const PG_TABLE: &str = "DROP TABLE IF EXISTS plain_jobs;
    CREATE TABLE plain_jobs (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL)";
const PG_INSERT: &str = "INSERT INTO plain_jobs (body) SELECT unnest($1::bytea[])";
/// The same, answering the new ids, as an HTTP front tells its producer.
pub(crate) const PG_INSERT_RETURNING: &str =
    "INSERT INTO plain_jobs (body) SELECT unnest($1::bytea[]) RETURNING id";
/// The taken ids as an array: prepared once, the statement runs on a generic plan, and a
/// subquery join's generic plan reads the whole table, where `id = ANY(…)` stays a
/// primary-key lookup. The scan starts at the consumer's mark (`$2`, see [`pg_consume`]).
const PG_TAKE: &str = "DELETE FROM plain_jobs WHERE id = ANY(ARRAY(
    SELECT id FROM plain_jobs WHERE id >= $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
    RETURNING id, body";

/// Where a PostgreSQL peer's consumer starts its next scan, after a batch that took `ids`:
/// at the first of them when the batch was full, from the front (id 0) when it was short.
pub(crate) fn mark_after(ids: impl ExactSizeIterator<Item = i64>, batch: usize) -> i64 {
    match ids.len() == batch.max(1) {
        true => ids.min().unwrap_or(0),
        false => 0,
    }
}

pub(crate) async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The PostgreSQL peer on a fresh table of the database at `url`: one producer inserting a
/// batch per transaction (one statement, the bodies as an array) while `consumers` consumers
/// each delete a batch per transaction, every statement prepared once per connection.
pub async fn postgres(
    url: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
) -> Result<Run> {
    pg_connect(url).await?.batch_execute(PG_TABLE).await?;
    let consumers = pg_consumers(url, consumers).await?;
    let producer = pg_connect(url).await?;
    let signal = producing();
    let started = Instant::now();
    // A producer that fails ends the run (the consumers would otherwise wait for it forever).
    tokio::try_join!(
        pg_produce(producer, messages, body_bytes, batch, Some(signal.clone())),
        pg_consume(consumers, messages, batch, Some(signal))
    )?;
    let took = started.elapsed();
    pg_drop(url).await?;
    Ok(Run { messages, took })
}

/// The PostgreSQL peer's drain: `messages` inserted first, then taken by `consumers`; the time
/// of the taking alone.
/// Also returns when each tenth of the backlog was taken (see [`last_tenth_to_first`]).
pub async fn postgres_drain(
    url: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
) -> Result<(Run, Vec<Duration>)> {
    pg_connect(url).await?.batch_execute(PG_TABLE).await?;
    pg_produce(pg_connect(url).await?, messages, body_bytes, batch, None).await?;
    let consumers = pg_consumers(url, consumers).await?;
    let started = Instant::now();
    let tenths = pg_consume(consumers, messages, batch, None).await?;
    let took = started.elapsed();
    pg_drop(url).await?;
    let tenths = tenths.into_iter().map(|t| t - started).collect();
    Ok((Run { messages, took }, tenths))
}

/// What a PostgreSQL peer's producer has committed so far, for its consumers to wait on instead
/// of polling an empty table (they share one process, as a user's producer and consumers in
/// one application do).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Produced {
    pub(crate) inserts: u64,
    pub(crate) finished: bool,
}

pub(crate) type Producing = Arc<tokio::sync::watch::Sender<Produced>>;

pub(crate) fn producing() -> Producing {
    Arc::new(tokio::sync::watch::Sender::new(Produced::default()))
}

/// How many inserts the producer had committed when this was read.
pub(crate) fn inserts(producing: &Producing) -> u64 {
    producing.borrow().inserts
}

/// Waits until the producer commits an insert after the first `seen`, or finishes.
pub(crate) async fn more_than(producing: &Producing, seen: u64) {
    // Never closed: the consumers hold the sender too.
    let _ = producing
        .subscribe()
        .wait_for(|p| p.inserts > seen || p.finished)
        .await;
}

pub(crate) async fn pg_consumers(url: &str, n: usize) -> Result<Vec<tokio_postgres::Client>> {
    let mut clients = Vec::new();
    for _ in 0..n.max(1) {
        clients.push(pg_connect(url).await?);
    }
    Ok(clients)
}

pub(crate) async fn pg_drop(url: &str) -> Result<()> {
    let client = pg_connect(url).await?;
    client.batch_execute("DROP TABLE plain_jobs").await?;
    Ok(())
}

/// One producer on `client`: `messages` bodies of `body_bytes`, `batch` per transaction, each
/// batch one execution of `insert` (which takes the bodies as a `bytea[]`).
pub(crate) async fn pg_produce_with(
    client: tokio_postgres::Client,
    insert: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    signal: Option<Producing>,
) -> Result<()> {
    let insert = client.prepare(insert).await?;
    let body = vec![b'x'; body_bytes];
    let mut sent = 0;
    while sent < messages {
        let n = (messages - sent).min(batch.max(1) as u64) as usize;
        let bodies: Vec<&[u8]> = vec![body.as_slice(); n];
        // One statement is one transaction: a round trip per batch, where an explicit
        // BEGIN … COMMIT would take three.
        client.execute(&insert, &[&bodies]).await?;
        if let Some(signal) = &signal {
            signal.send_modify(|p| p.inserts += 1);
        }
        sent += n as u64;
    }
    if let Some(signal) = &signal {
        signal.send_modify(|p| p.finished = true);
    }
    Ok(())
}

async fn pg_produce(
    client: tokio_postgres::Client,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    signal: Option<Producing>,
) -> Result<()> {
    pg_produce_with(client, PG_INSERT, messages, body_bytes, batch, signal).await
}

/// Runs the consumers until `messages` have been taken between them; returns when each tenth
/// of them was. A consumer that finds the table empty waits for the producer's next insert
/// (with `signal`) or yields (a drain's backlog, with none).
///
/// Each consumer starts its scan at the first id its last full batch took (its mark), as the
/// host's leases do (`store::postgres::marks`): the ids before it are gone, and the scan would
/// otherwise step over their dead index entries until a vacuum. A short batch starts the
/// next scan from the front.
pub(crate) async fn pg_consume(
    clients: Vec<tokio_postgres::Client>,
    messages: u64,
    batch: usize,
    signal: Option<Producing>,
) -> Result<Vec<Instant>> {
    let taken = Arc::new(AtomicU64::new(0));
    let tenths = Arc::new(std::sync::Mutex::new(Vec::with_capacity(10)));
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (taken, tenths, signal) = (taken.clone(), tenths.clone(), signal.clone());
        tasks.spawn(async move {
            let take = client.prepare(PG_TAKE).await?;
            let limit = batch.max(1) as i64;
            let mut from = 0i64;
            while taken.load(Ordering::Relaxed) < messages {
                let seen = signal.as_ref().map_or(0, inserts);
                // One statement, one transaction, one round trip.
                let rows = client.query(&take, &[&limit, &from]).await?;
                for row in &rows {
                    let _body: &[u8] = row.get(1);
                }
                from = mark_after(rows.iter().map(|row| row.get(0)), batch);
                if rows.is_empty() {
                    // The producer is behind: wait for it instead of spinning on an empty table.
                    match &signal {
                        Some(signal) => more_than(signal, seen).await,
                        None => tokio::task::yield_now().await,
                    }
                }
                let before = taken.fetch_add(rows.len() as u64, Ordering::Relaxed);
                let after = before + rows.len() as u64;
                let mut tenths = tenths.lock().unwrap_or_else(|e| e.into_inner());
                while tenths.len() < 10 && after * 10 >= messages * (tenths.len() as u64 + 1) {
                    tenths.push(Instant::now());
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let tenths = tenths.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(tenths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_marks_its_first_id_and_a_short_one_the_front() {
        assert_eq!(mark_after([9, 7, 8].into_iter(), 3), 7);
        assert_eq!(mark_after([9, 7].into_iter(), 3), 0);
        assert_eq!(mark_after(std::iter::empty::<i64>(), 3), 0);
    }

    #[test]
    fn a_flat_drain_is_one_and_a_slowing_one_less() {
        let secs = |s: &[u64]| {
            s.iter()
                .map(|&s| Duration::from_secs(s))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            last_tenth_to_first(&secs(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])),
            1.0
        );
        assert_eq!(
            last_tenth_to_first(&secs(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 13])),
            0.25
        );
        assert_eq!(last_tenth_to_first(&[]), 1.0);
    }

    #[test]
    fn the_sqlite_peer_takes_every_message_and_leaves_none_either_way() {
        for take in [Take::Delete, Take::Lease, Take::LeaseByDueTime] {
            let dir = tempfile::TempDir::new().expect("temp dir");
            let run = sqlite(dir.path(), take, 1_050, 64, 100).expect("run");
            assert_eq!(run.messages, 1_050);
            let conn = Connection::open(dir.path().join("plain.db")).expect("open");
            let left: i64 = conn
                .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
                .expect("count");
            assert_eq!(left, 0, "{take:?}");
        }
    }
}
