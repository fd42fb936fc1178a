//! Schedules in PostgreSQL: put, read, delete, and firing one tick (moving the schedule on and
//! enqueueing its message in one transaction, only if it still stands at that tick, so exactly
//! one host fires each tick).

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::messages::{self, Work};
use super::{Enqueued, Error, NewMessage, Result, ScheduleRecord, count, int};
use crate::store::codec::{decode_attributes, encode_attributes};
use crate::store::validate;

/// The PostgreSQL schema of schedules (migration 2).
pub const SCHEMA_V2: &str = "
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    queue       TEXT NOT NULL REFERENCES queues(name),
    body        BYTEA NOT NULL,
    attributes  TEXT,
    next_tick   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX schedules_by_queue ON schedules(queue);
";

const COLUMNS: &str = "name, cron, timezone, queue, body, attributes, next_tick, created_at";

fn from_row(row: &Row) -> Result<ScheduleRecord> {
    let attributes: Option<String> = row.get(5);
    Ok(ScheduleRecord {
        name: row.get(0),
        cron: row.get(1),
        timezone: row.get(2),
        queue: row.get(3),
        body: row.get(4),
        attributes: decode_attributes(attributes.as_deref())?,
        next_tick_ms: count(row.get(6)),
        created_at_ms: count(row.get(7)),
    })
}

pub async fn put(
    tx: &Transaction<'_>,
    work: &mut Work,
    schedule: ScheduleRecord,
) -> Result<ScheduleRecord> {
    let settings = work.settings(tx, &schedule.queue).await?;
    let message = NewMessage {
        body: schedule.body.clone(),
        attributes: schedule.attributes.clone(),
        ..NewMessage::default()
    };
    validate::messages_fit(&schedule.queue, &settings, &[message])?;
    let row = tx
        .query_one(
            "INSERT INTO schedules (name, cron, timezone, queue, body, attributes, next_tick,
                created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET cron = $2, timezone = $3, queue = $4, body = $5,
                attributes = $6, next_tick = $7
             RETURNING created_at",
            &[
                &schedule.name,
                &schedule.cron,
                &schedule.timezone,
                &schedule.queue,
                &schedule.body,
                &encode_attributes(&schedule.attributes)?,
                &int(schedule.next_tick_ms),
                &int(schedule.created_at_ms),
            ],
        )
        .await?;
    Ok(ScheduleRecord {
        created_at_ms: count(row.get(0)),
        ..schedule
    })
}

pub async fn get(client: &impl GenericClient, name: &str) -> Result<ScheduleRecord> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM schedules WHERE name = $1"),
            &[&name],
        )
        .await?
        .ok_or_else(|| Error::ScheduleNotFound(name.to_owned()))?;
    from_row(&row)
}

pub async fn list(client: &impl GenericClient) -> Result<Vec<ScheduleRecord>> {
    client
        .query(
            &format!("SELECT {COLUMNS} FROM schedules ORDER BY name"),
            &[],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn delete(tx: &Transaction<'_>, name: &str) -> Result<()> {
    let deleted = tx
        .execute("DELETE FROM schedules WHERE name = $1", &[&name])
        .await?;
    if deleted == 0 {
        return Err(Error::ScheduleNotFound(name.to_owned()));
    }
    Ok(())
}

/// The schedule that enqueues into `queue`, if any (a queue with one cannot be deleted).
pub async fn schedule_of(tx: &Transaction<'_>, queue: &str) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT name FROM schedules WHERE queue = $1 ORDER BY name LIMIT 1",
            &[&queue],
        )
        .await?
        .map(|row| row.get(0)))
}

pub async fn fire(
    tx: &Transaction<'_>,
    work: &mut Work,
    name: &str,
    tick_ms: u64,
    next_tick_ms: u64,
    extra: Vec<(String, String)>,
) -> Result<Option<Enqueued>> {
    let Some(row) = tx
        .query_opt(
            "UPDATE schedules SET next_tick = $3 WHERE name = $1 AND next_tick = $2
             RETURNING queue, body, attributes",
            &[&name, &int(tick_ms), &int(next_tick_ms)],
        )
        .await?
    else {
        return Ok(None);
    };
    let queue: String = row.get(0);
    let stored: Option<String> = row.get(2);
    let mut attributes = decode_attributes(stored.as_deref())?;
    attributes.extend(extra);
    let message = NewMessage {
        body: row.get(1),
        attributes,
        ..NewMessage::default()
    };
    Ok(messages::enqueue(tx, work, &queue, vec![message])
        .await?
        .pop())
}
