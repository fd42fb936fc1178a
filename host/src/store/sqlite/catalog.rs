//! Queues, functions and triggers as records: creating, changing, deleting and reading them,
//! with the rules that tie them together (a dead-letter queue must exist and cannot be deleted
//! while used; one consumer per queue).

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::writer::{Tx, int};
use super::{
    Error, FunctionRecord, FunctionVersion, QueueInfo, QueueSettings, QueueStats, Result,
    TriggerRecord, messages, sql,
};
use crate::store::rules::DeadLetterChain;

pub fn queue_names(conn: &Connection) -> Result<HashSet<String>> {
    let names = conn
        .prepare_cached(sql::QUEUE_NAMES)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(names)
}

fn queue_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(sql::QUEUE_EXISTS)?
        .exists(params![name])?)
}

fn encode_settings(settings: &QueueSettings) -> Result<String> {
    serde_json::to_string(settings).map_err(|e| Error::InvalidSettings(e.to_string()))
}

/// The dead-letter queue must exist when the settings are stored, and following dead-letter
/// queues from `queue` must end: a cycle would pass a message around it forever, each lap
/// resetting its attempts.
/// The dead-letter rule ([`DeadLetterChain`]) read with this connection.
fn check_dead_letter_queue(conn: &Connection, queue: &str, settings: &QueueSettings) -> Result<()> {
    let Some(mut chain) = DeadLetterChain::of(queue, settings) else {
        return Ok(());
    };
    if !queue_exists(conn, chain.dead_letter_queue())? {
        return Err(chain.missing());
    }
    while let Some(next) = chain.next() {
        let after = conn
            .prepare_cached(sql::DEAD_LETTER_QUEUE_OF)?
            .query_row(params![next], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten();
        chain.found(after)?;
    }
    Ok(())
}

pub fn create_queue(tx: &mut Tx<'_>, name: &str, settings: &QueueSettings) -> Result<QueueInfo> {
    let conn = tx.conn;
    if queue_exists(conn, name)? {
        return Err(Error::QueueExists(name.to_owned()));
    }
    check_dead_letter_queue(conn, name, settings)?;
    conn.prepare_cached(sql::INSERT_QUEUE)?.execute(params![
        name,
        encode_settings(settings)?,
        settings.dead_letter_queue,
        int(tx.now)
    ])?;
    tx.forget_settings();
    tx.queue_created(name);
    Ok(QueueInfo {
        name: name.to_owned(),
        settings: settings.clone(),
        created_at_ms: tx.now,
        stats: QueueStats::default(),
    })
}

pub fn update_queue(tx: &mut Tx<'_>, name: &str, settings: &QueueSettings) -> Result<QueueInfo> {
    let conn = tx.conn;
    check_dead_letter_queue(conn, name, settings)?;
    let changed = conn
        .prepare_cached(sql::UPDATE_QUEUE_SETTINGS)?
        .execute(params![
            name,
            encode_settings(settings)?,
            settings.dead_letter_queue
        ])?;
    if changed == 0 {
        return Err(Error::QueueNotFound(name.to_owned()));
    }
    tx.forget_settings();
    get_queue(conn, tx.now, name)
}

/// One request of a queue delete: checks it is allowed, then deletes up to `chunk` of its
/// messages; once at most `chunk` are left, deletes them, its dedup entries and the queue
/// itself. Returns true when the queue is gone.
pub fn delete_queue(tx: &mut Tx<'_>, name: &str, chunk: u64) -> Result<bool> {
    let conn = tx.conn;
    if !queue_exists(conn, name)? {
        return Err(Error::QueueNotFound(name.to_owned()));
    }
    let used_by: Option<String> = conn
        .prepare_cached(sql::QUEUES_USING_AS_DLQ)?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    if let Some(used_by) = used_by {
        return Err(Error::QueueInUse {
            queue: name.to_owned(),
            used_by,
        });
    }
    if let Some(function) = consumer_of(conn, name)? {
        return Err(Error::QueueHasConsumer {
            queue: name.to_owned(),
            function,
        });
    }
    if let Some(schedule) = super::schedules::schedule_of(conn, name)? {
        return Err(Error::QueueScheduled {
            queue: name.to_owned(),
            schedule,
        });
    }
    if let Some(topic) = super::topics::subscription_of(conn, name)? {
        return Err(Error::QueueSubscribed {
            queue: name.to_owned(),
            topic,
        });
    }
    if tx.depth(name)? > chunk {
        messages::purge(tx, name, Some(i64::MAX), chunk)?;
        return Ok(false);
    }
    let dedup = conn
        .prepare_cached(sql::DELETE_QUEUE_DEDUP_SOME)?
        .execute(params![name, int(chunk)])?;
    if dedup as u64 == chunk {
        return Ok(false);
    }
    messages::purge(tx, name, Some(i64::MAX), chunk)?;
    conn.prepare_cached(sql::DELETE_QUEUE_DUE)?
        .execute(params![name])?;
    conn.prepare_cached(sql::DELETE_QUEUE)?
        .execute(params![name])?;
    tx.forget_settings();
    tx.queue_deleted(name);
    Ok(true)
}

pub fn get_queue(conn: &Connection, now: u64, name: &str) -> Result<QueueInfo> {
    let info = conn
        .prepare_cached(sql::SELECT_QUEUE)?
        .query_row(params![name], queue_from_row)
        .optional()?
        .ok_or_else(|| Error::QueueNotFound(name.to_owned()))??;
    with_live_stats(conn, now, info)
}

pub fn list_queues(conn: &Connection, now: u64) -> Result<Vec<QueueInfo>> {
    let queues: Vec<Result<Counted>> = conn
        .prepare_cached(sql::SELECT_QUEUES)?
        .query_map([], queue_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    queues
        .into_iter()
        .map(|q| with_live_stats(conn, now, q?))
        .collect()
}

/// Decodes a queue row; the outer error is SQLite's, the inner one unreadable settings.
fn queue_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Counted>> {
    let name: String = row.get(0)?;
    let settings: String = row.get(1)?;
    let total = |i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    let stats = QueueStats {
        enqueued_total: total(3)?,
        acked_total: total(4)?,
        retried_total: total(5)?,
        dead_lettered_total: total(6)?,
        dropped_total: total(7)?,
        expired_total: total(8)?,
        ..QueueStats::default()
    };
    let created_at_ms = total(2)?;
    let depth = total(9)?;
    let due_through = total(10)?;
    Ok(serde_json::from_str(&settings)
        .map_err(|e| Error::Unavailable(format!("settings of queue `{name}` are unreadable: {e}")))
        .map(|settings| Counted {
            info: QueueInfo {
                name,
                settings,
                created_at_ms,
                stats,
            },
            depth,
            due_through,
        }))
}

/// A queue row with the counters live stats start from.
struct Counted {
    info: QueueInfo,
    depth: u64,
    due_through: u64,
}

/// Visible, delayed and in flight from the counters (see `sql::SCHEMA_V3`): the depth, minus
/// what `message_due` says is due after now. Costs the number of distinct future due times,
/// not the number of messages; the oldest message is one index step.
fn with_live_stats(conn: &Connection, now: u64, counted: Counted) -> Result<QueueInfo> {
    let Counted {
        mut info,
        depth,
        due_through,
    } = counted;
    // Messages due by `due_through` are not tracked, so they count as visible even if this
    // reader's clock is a moment behind the writer's.
    let now = now.max(due_through);
    let (delayed, in_flight): (i64, i64) = conn
        .prepare_cached(sql::QUEUE_NOT_DUE)?
        .query_row(params![info.name, int(now)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let oldest: Option<i64> = conn
        .prepare_cached(sql::QUEUE_OLDEST)?
        .query_row(params![info.name], |r| r.get(0))
        .optional()?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    info.stats.delayed = count(delayed);
    info.stats.in_flight = count(in_flight);
    info.stats.visible = depth.saturating_sub(count(delayed) + count(in_flight));
    info.stats.oldest_age_ms = oldest.map(|t| now.saturating_sub(count(t)));
    Ok(info)
}

// ---- functions ----

pub fn add_function_version(
    tx: &mut Tx<'_>,
    name: &str,
    sha256: &str,
    size: u64,
    config: &serde_json::Value,
) -> Result<FunctionRecord> {
    let conn = tx.conn;
    let now = int(tx.now);
    conn.prepare_cached(sql::INSERT_FUNCTION)?
        .execute(params![name, now])?;
    let last: i64 = conn
        .prepare_cached(sql::LAST_VERSION)?
        .query_row(params![name], |r| r.get(0))?;
    let version = last + 1;
    conn.prepare_cached(sql::INSERT_VERSION)?.execute(params![
        name,
        version,
        sha256,
        int(size),
        now,
        config.to_string()
    ])?;
    conn.prepare_cached(sql::SET_ACTIVE_VERSION)?
        .execute(params![name, version])?;
    get_function(conn, name)
}

pub fn get_function(conn: &Connection, name: &str) -> Result<FunctionRecord> {
    let active: i64 = conn
        .prepare_cached(sql::ACTIVE_VERSION)?
        .query_row(params![name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::FunctionNotFound(name.to_owned()))?;
    let versions = conn
        .prepare_cached(sql::FUNCTION_VERSIONS)?
        .query_map(params![name], |r| {
            let config: String = r.get(4)?;
            Ok(FunctionVersion {
                version: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                sha256: r.get(1)?,
                size: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                created_at_ms: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                // Stored by us from a `Value`; unreadable only if the file was edited by hand.
                config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let trigger = conn
        .prepare_cached(sql::TRIGGER_OF_FUNCTION)?
        .query_row(params![name], trigger_from_row)
        .optional()?;
    Ok(FunctionRecord {
        name: name.to_owned(),
        active_version: u32::try_from(active).unwrap_or(0),
        versions,
        trigger,
    })
}

pub fn list_functions(conn: &Connection) -> Result<Vec<FunctionRecord>> {
    let names: Vec<String> = conn
        .prepare_cached(sql::FUNCTION_NAMES)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names.iter().map(|n| get_function(conn, n)).collect()
}

pub fn activate_version(tx: &mut Tx<'_>, name: &str, version: u32) -> Result<FunctionRecord> {
    let conn = tx.conn;
    if !conn
        .prepare_cached(sql::FUNCTION_EXISTS)?
        .exists(params![name])?
    {
        return Err(Error::FunctionNotFound(name.to_owned()));
    }
    if !conn
        .prepare_cached(sql::VERSION_EXISTS)?
        .exists(params![name, version])?
    {
        return Err(Error::VersionNotFound {
            name: name.to_owned(),
            version,
        });
    }
    conn.prepare_cached(sql::SET_ACTIVE_VERSION)?
        .execute(params![name, version])?;
    get_function(conn, name)
}

/// Deletes the function; its versions and trigger go with it (ON DELETE CASCADE).
pub fn delete_function(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    if tx
        .conn
        .prepare_cached(sql::DELETE_FUNCTION)?
        .execute(params![name])?
        == 0
    {
        return Err(Error::FunctionNotFound(name.to_owned()));
    }
    Ok(())
}

// ---- triggers ----

fn consumer_of(conn: &Connection, queue: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(sql::CONSUMER_OF_QUEUE)?
        .query_row(params![queue], |r| r.get(0))
        .optional()?)
}

pub fn put_trigger(tx: &mut Tx<'_>, trigger: TriggerRecord) -> Result<TriggerRecord> {
    let conn = tx.conn;
    if !queue_exists(conn, &trigger.queue)? {
        return Err(Error::QueueNotFound(trigger.queue));
    }
    if !conn
        .prepare_cached(sql::FUNCTION_EXISTS)?
        .exists(params![trigger.function])?
    {
        return Err(Error::FunctionNotFound(trigger.function));
    }
    if let Some(function) = consumer_of(conn, &trigger.queue)?
        && function != trigger.function
    {
        return Err(Error::QueueHasConsumer {
            queue: trigger.queue,
            function,
        });
    }
    conn.prepare_cached(sql::UPSERT_TRIGGER)?.execute(params![
        trigger.function,
        trigger.queue,
        trigger.batch_size,
        int(trigger.max_wait_ms),
        trigger.max_concurrency,
        trigger.paused
    ])?;
    Ok(trigger)
}

/// Removes the function's trigger; a function without one is left as it is.
pub fn delete_trigger(tx: &mut Tx<'_>, function: &str) -> Result<()> {
    let conn = tx.conn;
    if !conn
        .prepare_cached(sql::FUNCTION_EXISTS)?
        .exists(params![function])?
    {
        return Err(Error::FunctionNotFound(function.to_owned()));
    }
    conn.prepare_cached(sql::DELETE_TRIGGER)?
        .execute(params![function])?;
    Ok(())
}

pub fn list_triggers(conn: &Connection) -> Result<Vec<TriggerRecord>> {
    let triggers = conn
        .prepare_cached(sql::ALL_TRIGGERS)?
        .query_map([], trigger_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(triggers)
}

fn trigger_from_row(r: &Row<'_>) -> rusqlite::Result<TriggerRecord> {
    Ok(TriggerRecord {
        function: r.get(0)?,
        queue: r.get(1)?,
        batch_size: r.get(2)?,
        max_wait_ms: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        max_concurrency: r.get(4)?,
        paused: r.get(5)?,
    })
}
