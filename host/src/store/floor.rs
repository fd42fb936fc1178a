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
    /// Draining it: per batch one transaction that leases `batch` messages, then one that
    /// deletes them (the lease and the settle of one trigger batch).
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
                insert.execute(params![queue, body, None::<&str>, 0i64, 0i64, None::<&str>])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        left -= n;
    }
    let insert = start.elapsed();

    let start = Instant::now();
    let mut lease_id = 0i64;
    let mut ids: Vec<i64> = Vec::with_capacity(batch);
    loop {
        lease_id += 1;
        ids.clear();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut visible = conn.prepare_cached(sql::VISIBLE_IN_ORDER)?;
            let mut rows = visible.query(params![queue, 1i64, batch as i64])?;
            while let Some(row) = rows.next()? {
                // Read the whole row, as a lease does, to hand it to the handler.
                let id: i64 = row.get(0)?;
                let _body: Vec<u8> = row.get(1)?;
                ids.push(id);
            }
            drop(rows);
            let mut take = conn.prepare_cached(sql::TAKE_LEASE)?;
            for id in &ids {
                take.execute(params![id, lease_id, 1_000_000i64])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        if ids.is_empty() {
            break;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut ack = conn.prepare_cached(sql::ACK)?;
            for id in &ids {
                ack.execute(params![id, lease_id])?;
            }
        }
        conn.execute_batch("COMMIT")?;
    }
    Ok(Floor {
        insert,
        drain: start.elapsed(),
        messages,
    })
}
