//! The physical floor of the SQLite store's design: the same statements, pragmas and fsyncs as
//! its writer uses for enqueue, lease and ack ([`message_path`]), run directly on a connection
//! with no channel, no HTTP and no WebAssembly in between.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::params;

use anyhow::Result;
use sluice::store::sqlite::message_path::{self as sql, open};

/// What the floor measured.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Inserting the backlog, `batch` messages per commit.
    pub insert: Duration,
    /// Draining it: per batch one transaction that deletes the previous batch and leases the
    /// next `batch` messages.
    pub drain: Duration,
    pub messages: u64,
}

/// Inserts `messages` bodies of `body_bytes` into a fresh database under `dir`, then leases and
/// deletes them `batch` at a time, each step committed (and fsynced) on its own.
pub fn measure(dir: &Path, messages: u64, body_bytes: usize, batch: usize) -> Result<Floor> {
    let (conn, _) = open(dir)?;
    let conn = std::sync::Mutex::new(conn);
    let batch = batch.max(1);
    let start = Instant::now();
    produce(&conn, messages, body_bytes, batch)?;
    let insert = start.elapsed();
    let start = Instant::now();
    consume(&conn, messages, batch)?;
    Ok(Floor {
        insert,
        drain: start.elapsed(),
        messages,
    })
}

/// One producer and one consumer at once on their own threads, sharing the one connection (as
/// an application with one SQLite writer would; two connections would take turns through
/// SQLite's sleeping busy handler) and each committing once per batch: the time from the first
/// insert to the last acknowledgement.
pub fn measure_concurrent(
    dir: &Path,
    messages: u64,
    body_bytes: usize,
    batch: usize,
) -> Result<Duration> {
    let (conn, _) = open(dir)?;
    let conn = std::sync::Mutex::new(conn);
    let batch = batch.max(1);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let conn = &conn;
        let produced = scope.spawn(move || produce(conn, messages, body_bytes, batch));
        let consumed = consume(conn, messages, batch);
        produced
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the producer panicked")))
            .and(consumed)
    })?;
    Ok(start.elapsed())
}

const QUEUE: &str = "floor";

/// The connection, shared by the concurrent floor's producer and consumer threads.
type Shared = std::sync::Mutex<rusqlite::Connection>;

fn lock(conn: &Shared) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Inserts `messages` bodies, `batch` per commit.
fn produce(conn: &Shared, messages: u64, body_bytes: usize, batch: usize) -> Result<()> {
    let body = vec![b'x'; body_bytes];
    let mut left = messages;
    while left > 0 {
        let n = left.min(batch as u64);
        let conn = lock(conn);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        insert(&conn, &body, n as usize)?;
        conn.execute_batch("COMMIT")?;
        left -= n;
    }
    Ok(())
}

/// Inserts `n` ready messages with `body` into the floor's queue, as an enqueue's rows are (no
/// attributes, group, source or dead-letter reason; the default priority's lane). Returns
/// their ids.
fn insert(conn: &rusqlite::Connection, body: &[u8], n: usize) -> Result<Vec<i64>> {
    let mut insert = conn.prepare_cached(sql::INSERT_MESSAGE)?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        insert.execute(params![
            QUEUE,
            body,
            None::<&str>,
            0i64,
            0i64,
            None::<&str>,
            4i64,
            None::<&str>,
            5i64,
            None::<&str>
        ])?;
        ids.push(conn.last_insert_rowid());
    }
    Ok(ids)
}

/// Leases and acknowledges until `total` messages are gone. Each transaction acknowledges the
/// previous batch and leases the next: one fsync per batch, which is what the host reaches when
/// a settle leases the next batch in its commit.
fn consume(conn: &Shared, total: u64, batch: usize) -> Result<()> {
    let mut lease_id = 0i64;
    let mut held: Vec<i64> = Vec::with_capacity(batch);
    let mut acked = 0u64;
    loop {
        let conn = lock(conn);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        if !held.is_empty() {
            // The host reads each deleted row's due time for its counters; so does the floor.
            let mut ack = conn.prepare_cached(sql::ACK_MANY)?;
            let mut gone = ack.query(params![json_ids(&held), lease_id, QUEUE])?;
            while let Some(row) = gone.next()? {
                let _id: i64 = row.get(0)?;
                let _visible_at: i64 = row.get(1)?;
                acked += 1;
            }
        }
        held.clear();
        lease_id += 1;
        {
            let mut visible = conn.prepare_cached(sql::visible_in_order(0))?;
            let mut rows = visible.query(params![QUEUE, 1i64, batch as i64])?;
            while let Some(row) = rows.next()? {
                // Read the whole row, as a lease does, to hand it to the handler.
                let id: i64 = row.get(0)?;
                let _body: Vec<u8> = row.get(1)?;
                held.push(id);
            }
            drop(rows);
            if !held.is_empty() {
                conn.prepare_cached(sql::TAKE_LEASE_MANY)?.execute(params![
                    json_ids(&held),
                    lease_id,
                    1_000_000i64,
                    0i64
                ])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        drop(conn);
        if held.is_empty() {
            if acked >= total {
                return Ok(());
            }
            // The producer is behind: let it have the database instead of spinning on it.
            std::thread::yield_now();
        }
    }
}

fn json_ids(ids: &[i64]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", ids.join(","))
}

/// Send → start latencies of the floor under paced load: requests of `per_request` messages
/// come due `rate` messages a second for `duration`, each handed to [`lease_on_commit`] when
/// it is due. No HTTP, no channel to a dispatcher, no WebAssembly: what any durable design
/// pays on this disk.
pub fn measure_latency(
    dir: &Path,
    rate: f64,
    per_request: usize,
    duration: Duration,
    body_bytes: usize,
) -> Result<Vec<Duration>> {
    let per_request = per_request.max(1);
    let requests = ((rate * duration.as_secs_f64()) as usize / per_request).max(1);
    let interval = Duration::from_secs_f64(per_request as f64 / rate);
    let (due_tx, due_rx) = std::sync::mpsc::channel::<Due>();
    let start = Instant::now();
    std::thread::scope(|scope| {
        // The producer's schedule: a request is sent when it is due.
        scope.spawn(move || {
            for request in 0..requests as u32 {
                let at = start + interval * request;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                let due = Due {
                    at,
                    messages: per_request,
                    committed: None,
                };
                if due_tx.send(due).is_err() {
                    return;
                }
            }
        });
        lease_on_commit(dir, body_bytes, due_rx)
    })
}

/// One request for [`lease_on_commit`]: `messages` messages sent at `at`, told their ids on
/// `committed` once they are durable.
pub struct Due {
    pub at: Instant,
    pub messages: usize,
    pub committed: Option<tokio::sync::oneshot::Sender<Vec<i64>>>,
}

/// The latency floor's writer, on a fresh database in `dir`, until `dues` closes: it commits
/// every request waiting (a group commit with its fsync, as the host's writer does), answers
/// them, then leases what it just inserted in a second commit without the fsync (as a host's
/// lease is), which is when a handler could start. Returns each message's latency from when
/// its request was sent.
pub fn lease_on_commit(
    dir: &Path,
    body_bytes: usize,
    dues: std::sync::mpsc::Receiver<Due>,
) -> Result<Vec<Duration>> {
    let (conn, _) = open(dir)?;
    let body = vec![b'x'; body_bytes];
    let mut latencies = Vec::new();
    let mut lease_id = 0i64;
    while let Ok(first) = dues.recv() {
        let mut batch = vec![first];
        batch.extend(dues.try_iter());
        let messages = batch.iter().map(|d| d.messages).sum();
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let ids = insert(&conn, &body, messages)?;
        conn.execute_batch("COMMIT")?;
        let mut rest = ids.as_slice();
        for due in &mut batch {
            let (own, after) = rest.split_at(due.messages);
            rest = after;
            if let Some(committed) = due.committed.take() {
                let _ = committed.send(own.to_vec());
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        lease_id += 1;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached(sql::TAKE_LEASE_MANY)?.execute(params![
            json_ids(&ids),
            lease_id,
            1_000_000i64,
            0i64
        ])?;
        conn.execute_batch("COMMIT")?;
        let started = Instant::now();
        for due in batch {
            latencies.extend(std::iter::repeat_n(started - due.at, due.messages));
        }
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_floor_starts_every_message_it_was_sent() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let latencies = measure_latency(dir.path(), 2_000.0, 10, Duration::from_millis(100), 64)
            .expect("measure");
        // 2,000 msg/s for 0.1 s in requests of 10: 20 requests, 200 messages, each started
        // after it was due.
        assert_eq!(latencies.len(), 200);
        assert!(latencies.iter().all(|l| *l > Duration::ZERO));
        let (conn, _) = open(dir.path()).expect("open");
        let leased: i64 = conn
            .query_row(
                "SELECT count(*) FROM messages WHERE lease_id IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(leased, 200);
    }
}
