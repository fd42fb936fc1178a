//! Reads on their own connections (a small pool used from `spawn_blocking`), so peeks, stats
//! and wake-up checks never wait behind the writer's transaction; and the row decoding shared
//! with the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::writer::int;
use super::{Error, Message, Result, schema, sql};
use crate::store::{Lull, ReasonCounts, ReasonFilter, ReasonRow};

/// Idle read connections kept open; more are opened under load and closed after.
const MAX_IDLE_READERS: usize = 4;

pub struct Pool {
    path: Arc<Path>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Pool {
    pub fn new(path: PathBuf) -> Pool {
        Pool {
            path: path.into(),
            idle: Arc::default(),
        }
    }

    pub async fn run<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let path = self.path.clone();
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => schema::open_reader(&path)?,
            };
            let result = op(&conn);
            let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::Unavailable(format!("read task failed: {e}")))?
    }
}

pub fn peek(conn: &Connection, queue: &str, after: u64, limit: usize) -> Result<Vec<Message>> {
    let limit = int(limit as u64);
    let messages = conn
        .prepare_cached(sql::PEEK)?
        .query_map(params![queue, int(after), limit], |row| {
            message_from_row(row, queue)
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(messages)
}

/// Like [`peek`], only the messages `filter` picks.
pub fn peek_by_reason(
    conn: &Connection,
    queue: &str,
    filter: &ReasonFilter,
    after: u64,
    limit: usize,
) -> Result<Vec<Message>> {
    let limit = int(limit as u64);
    let decode = |row: &Row<'_>| message_from_row(row, queue);
    let messages = match filter {
        ReasonFilter::Reason(reason) => conn
            .prepare_cached(sql::PEEK_REASON)?
            .query_map(params![queue, int(after), limit, reason], decode)?
            .collect::<rusqlite::Result<_>>()?,
        ReasonFilter::NoReason => conn
            .prepare_cached(sql::PEEK_NO_REASON)?
            .query_map(params![queue, int(after), limit], decode)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(messages)
}

/// The `limit` reasons most of the queue's dead letters died for, and the counts around them.
pub fn dead_letter_reasons(conn: &Connection, queue: &str, limit: usize) -> Result<ReasonCounts> {
    let mut statement = conn.prepare_cached(sql::DEAD_LETTER_REASONS)?;
    let rows = statement
        .query_map(params![queue, int(limit as u64)], |row| {
            Ok(ReasonRow {
                total: row.get(0)?,
                reason: row.get(1)?,
                count: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
                with_reason: row.get::<_, Option<i64>>(3)?.unwrap_or(0),
                distinct: row.get::<_, Option<i64>>(4)?.unwrap_or(0),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ReasonCounts::from_rows(rows))
}

pub fn next_visible_at(conn: &Connection, now: u64, queue: &str) -> Result<Option<u64>> {
    let at: Option<i64> = conn
        .prepare_cached(sql::NEXT_VISIBLE_AT)?
        .query_row(params![queue, int(now)], |r| r.get(0))?;
    Ok(at.map(|v| u64::try_from(v).unwrap_or(0)))
}

pub fn visible_count(conn: &Connection, now: u64, queue: &str, cap: u64) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(sql::VISIBLE_COUNT)?
        .query_row(params![queue, int(now), int(cap)], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Both reads of [`Lull`] in one read transaction, so one snapshot.
pub fn lull(conn: &Connection, now: u64, queue: &str) -> Result<Lull> {
    let tx = conn.unchecked_transaction()?;
    let lull = Lull {
        visible_now: visible_count(&tx, now, queue, 1)? > 0,
        next_visible_at_ms: next_visible_at(&tx, now, queue)?,
    };
    tx.commit()?;
    Ok(lull)
}

/// Decodes `id, body, attributes, attempt, enqueued_at` and, at 7 to 9, `priority, group_key,
/// first_leased_at`.
pub fn message_from_row(row: &Row<'_>, queue: &str) -> rusqlite::Result<Message> {
    let attributes: Option<String> = row.get(2)?;
    let attributes = decode_attributes(attributes.as_deref()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Message {
        id: row.get::<_, i64>(0)?.to_string(),
        queue: queue.to_owned(),
        body: row.get(1)?,
        attributes,
        attempt: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX),
        enqueued_at_ms: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
        priority: u8::try_from(row.get::<_, i64>(7)?).unwrap_or(crate::store::DEFAULT_PRIORITY),
        group: row.get(8)?,
        first_leased_at_ms: row
            .get::<_, Option<i64>>(9)?
            .map(|at| u64::try_from(at).unwrap_or(0)),
    })
}

pub use crate::store::codec::{decode_attributes, encode_attributes};

pub fn queue_settings(conn: &Connection, queue: &str) -> Result<crate::store::QueueSettings> {
    let text: Option<String> = conn
        .prepare_cached(sql::QUEUE_SETTINGS)?
        .query_row(params![queue], |r| r.get(0))
        .optional()?;
    let text = text.ok_or_else(|| Error::QueueNotFound(queue.to_owned()))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Unavailable(format!("settings of queue `{queue}` are unreadable: {e}")))
}
