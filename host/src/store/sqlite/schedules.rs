//! Schedules in SQLite: put, read, delete, and firing one tick (moving the schedule on and
//! enqueueing its message in the writer's transaction, only if it still stands at that tick).

use rusqlite::{Connection, OptionalExtension, params};

use super::messages;
use super::writer::{Tx, int};
use super::{Enqueued, Error, NewMessage, Result, ScheduleRecord};
use crate::store::codec::{decode_attributes, encode_attributes};

/// The SQLite schema of schedules (migration 5).
pub const SCHEMA_V5: &str = "
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    attributes  TEXT,
    next_tick   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX schedules_by_queue ON schedules(queue);
";

const COLUMNS: &str = "name, cron, timezone, queue, body, attributes, next_tick, created_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ScheduleRecord, Option<String>)> {
    Ok((
        ScheduleRecord {
            name: r.get(0)?,
            cron: r.get(1)?,
            timezone: r.get(2)?,
            queue: r.get(3)?,
            body: r.get(4)?,
            attributes: Vec::new(),
            next_tick_ms: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            created_at_ms: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        },
        r.get(5)?,
    ))
}

fn decoded((mut record, attributes): (ScheduleRecord, Option<String>)) -> Result<ScheduleRecord> {
    record.attributes = decode_attributes(attributes.as_deref())?;
    Ok(record)
}

pub fn put(tx: &mut Tx<'_>, schedule: ScheduleRecord) -> Result<ScheduleRecord> {
    // Its queue must exist; the message must fit it.
    let settings = tx.settings(&schedule.queue)?;
    let message = NewMessage {
        body: schedule.body.clone(),
        attributes: schedule.attributes.clone(),
        ..NewMessage::default()
    };
    crate::store::validate::messages_fit(&schedule.queue, &settings, &[message])?;
    let created_at: i64 = tx
        .conn
        .prepare_cached("SELECT created_at FROM schedules WHERE name = ?1")?
        .query_row(params![schedule.name], |r| r.get(0))
        .optional()?
        .unwrap_or(int(schedule.created_at_ms));
    tx.conn
        .prepare_cached(
            "INSERT INTO schedules (name, cron, timezone, queue, body, attributes, next_tick,
                created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (name) DO UPDATE SET cron = ?2, timezone = ?3, queue = ?4, body = ?5,
                attributes = ?6, next_tick = ?7",
        )?
        .execute(params![
            schedule.name,
            schedule.cron,
            schedule.timezone,
            schedule.queue,
            schedule.body,
            encode_attributes(&schedule.attributes)?,
            int(schedule.next_tick_ms),
            created_at,
        ])?;
    Ok(ScheduleRecord {
        created_at_ms: u64::try_from(created_at).unwrap_or(0),
        ..schedule
    })
}

pub fn get(conn: &Connection, name: &str) -> Result<ScheduleRecord> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM schedules WHERE name = ?1"))?
        .query_row(params![name], from_row)
        .optional()?
        .ok_or_else(|| Error::ScheduleNotFound(name.to_owned()))?;
    decoded(row)
}

pub fn list(conn: &Connection) -> Result<Vec<ScheduleRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM schedules ORDER BY name"))?
        .query_map([], from_row)?
        .map(|row| decoded(row?))
        .collect()
}

pub fn delete(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let deleted = tx
        .conn
        .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
        .execute(params![name])?;
    if deleted == 0 {
        return Err(Error::ScheduleNotFound(name.to_owned()));
    }
    Ok(())
}

/// The schedule that enqueues into `queue`, if any (a queue with one cannot be deleted).
pub fn schedule_of(conn: &Connection, queue: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT name FROM schedules WHERE queue = ?1 ORDER BY name LIMIT 1")?
        .query_row(params![queue], |r| r.get(0))
        .optional()?)
}

pub fn fire(
    tx: &mut Tx<'_>,
    name: &str,
    tick_ms: u64,
    next_tick_ms: u64,
    extra: Vec<(String, String)>,
) -> Result<Option<Enqueued>> {
    let moved: Option<(String, Vec<u8>, Option<String>)> = tx
        .conn
        .prepare_cached(
            "UPDATE schedules SET next_tick = ?3 WHERE name = ?1 AND next_tick = ?2
             RETURNING queue, body, attributes",
        )?
        .query_row(params![name, int(tick_ms), int(next_tick_ms)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((queue, body, attributes)) = moved else {
        return Ok(None);
    };
    let mut attributes = decode_attributes(attributes.as_deref())?;
    attributes.extend(extra);
    let message = NewMessage {
        body,
        attributes,
        ..NewMessage::default()
    };
    Ok(messages::enqueue(tx, &queue, vec![message])?.pop())
}
