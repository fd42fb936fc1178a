//! The physical floor of this store's design, for `sluice bench`: the same SQLite statements,
//! pragmas and fsyncs as the writer uses for enqueue, lease and ack, run directly on a
//! connection with no channel, no HTTP and no WebAssembly in between.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::params;

use super::{Result, schema, sql};

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
    let (conn, _) = schema::open(dir)?;
    let body = vec![b'x'; body_bytes];
    let batch = batch.max(1);
    let queue = "floor";

    let start = Instant::now();
    let mut left = messages;
    while left > 0 {
        let n = left.min(batch as u64);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut insert = conn.prepare_cached(sql::INSERT_MESSAGE)?;
            for _ in 0..n {
                insert.execute(params![
                    queue,
                    body,
                    None::<&str>,
                    0i64,
                    0i64,
                    None::<&str>,
                    4i64,
                    None::<&str>,
                    5i64
                ])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        left -= n;
    }
    let insert = start.elapsed();

    // Each transaction acknowledges the previous batch and leases the next: one fsync per
    // batch, which is what the host's group commit reaches when settles and leases overlap.
    let start = Instant::now();
    let mut lease_id = 0i64;
    let mut held: Vec<i64> = Vec::with_capacity(batch);
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        if !held.is_empty() {
            // The host reads each deleted row's due time for its counters; so does the floor.
            let mut ack = conn.prepare_cached(sql::ACK_MANY)?;
            let mut gone = ack.query(params![json_ids(&held), lease_id, queue])?;
            while let Some(row) = gone.next()? {
                let _id: i64 = row.get(0)?;
                let _visible_at: i64 = row.get(1)?;
            }
        }
        held.clear();
        lease_id += 1;
        {
            let mut visible = conn.prepare_cached(sql::visible_in_order(0))?;
            let mut rows = visible.query(params![queue, 1i64, batch as i64])?;
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
                    1_000_000i64
                ])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        if held.is_empty() {
            break;
        }
    }
    Ok(Floor {
        insert,
        drain: start.elapsed(),
        messages,
    })
}

fn json_ids(ids: &[i64]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", ids.join(","))
}
