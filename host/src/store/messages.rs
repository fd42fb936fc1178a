//! Message operations inside the writer's transaction: enqueue (with dedup), lease, extend,
//! settle (ack, retry, dead-letter, send: all or nothing), redrive, purge and the retention
//! sweep. Each takes the request's [`Tx`] and leaves counters and wake-ups to it.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::read::{decode_attributes, encode_attributes, message_from_row};
use super::validate::message_size;
use super::writer::{Tx, int};
use super::{
    DeadLetter, Enqueued, Error, Lease, Message, NewMessage, QueueSettings, Result, Retry, Settled,
    Settlement, sql,
};

/// Attributes the store adds to a dead-lettered message, and removes on redrive.
pub const ATTR_DEAD_LETTER_REASON: &str = "sluice-dead-letter-reason";
pub const ATTR_ATTEMPTS: &str = "sluice-attempts";
pub const ATTR_SOURCE_QUEUE: &str = "sluice-source-queue";
const RESERVED_ATTRIBUTES: [&str; 3] = [ATTR_DEAD_LETTER_REASON, ATTR_ATTEMPTS, ATTR_SOURCE_QUEUE];

/// The most messages one lease may hold.
pub const MAX_LEASE_MESSAGES: usize = 10_000;
/// Refuses an enqueue that would take the queue past `max_depth` (counting stops at the limit,
/// so the check costs at most `max_depth` index steps and nothing for unbounded queues).
fn check_depth(
    conn: &rusqlite::Connection,
    queue: &str,
    max_depth: u64,
    adding: u64,
) -> Result<()> {
    let depth: i64 = conn
        .prepare_cached(sql::DEPTH_UP_TO)?
        .query_row(params![queue, int(max_depth)], |r| r.get(0))?;
    if u64::try_from(depth).unwrap_or(0) + adding > max_depth {
        return Err(Error::QueueFull {
            queue: queue.to_owned(),
            max_depth,
        });
    }
    Ok(())
}

/// Reason given to messages found visible again with no attempts left (their consumer died).
pub const REASON_LEASE_EXPIRED: &str = "lease expired after max attempts";

pub fn enqueue(tx: &mut Tx<'_>, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
    let settings = tx.settings(queue)?;
    for m in &messages {
        let size = message_size(&m.body, &m.attributes);
        if size > settings.max_message_bytes {
            return Err(Error::MessageTooLarge {
                queue: queue.to_owned(),
                size,
                limit: settings.max_message_bytes,
            });
        }
    }
    if let Some(max_depth) = settings.max_depth {
        check_depth(tx.conn, queue, max_depth, messages.len() as u64)?;
    }
    let conn = tx.conn;
    let now = tx.now;
    let mut out = Vec::with_capacity(messages.len());
    let mut added = 0;
    let mut insert = conn.prepare_cached(sql::INSERT_MESSAGE)?;
    for m in messages {
        let dedup = m
            .dedup_id
            .as_deref()
            .filter(|_| settings.dedup_window_ms > 0);
        if let Some(dedup_id) = dedup {
            let original: Option<i64> = conn
                .prepare_cached(sql::DEDUP_LOOKUP)?
                .query_row(params![queue, dedup_id, int(now)], |r| r.get(0))
                .optional()?;
            if let Some(id) = original {
                out.push(Enqueued {
                    id: id.to_string(),
                    duplicate: true,
                });
                continue;
            }
        }
        let visible_at = now.saturating_add(m.delay_ms);
        insert.execute(params![
            queue,
            m.body,
            encode_attributes(&m.attributes)?,
            int(now),
            int(visible_at),
            None::<&str>
        ])?;
        let id = conn.last_insert_rowid();
        if let Some(dedup_id) = dedup {
            let expires_at = now.saturating_add(settings.dedup_window_ms);
            conn.prepare_cached(sql::DEDUP_REMEMBER)?.execute(params![
                queue,
                dedup_id,
                id,
                int(expires_at)
            ])?;
        }

        added += 1;
        out.push(Enqueued {
            id: id.to_string(),
            duplicate: false,
        });
    }
    drop(insert);
    tx.count(queue).enqueued += added;
    // Delayed messages wake consumers too: they change when the queue's next message is due.
    if added > 0 {
        tx.notify(queue);
    }
    Ok(out)
}

pub fn lease(
    tx: &mut Tx<'_>,
    queue: &str,
    max: usize,
    visibility: Option<Duration>,
) -> Result<Option<Lease>> {
    let settings = tx.settings(queue)?;
    let max = max.min(MAX_LEASE_MESSAGES);
    if max == 0 {
        return Ok(None);
    }
    let visibility_ms = visibility
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(settings.visibility_timeout_ms);
    let conn = tx.conn;
    let now = tx.now;
    let expires_at = now.saturating_add(visibility_ms);
    let lease_id: i64 = rand::random();
    let mut messages = Vec::new();
    loop {
        let want = max - messages.len();
        let candidates: Vec<Message> = conn
            .prepare_cached(sql::VISIBLE_IN_ORDER)?
            .query_map(params![queue, int(now), int(want as u64)], |row| {
                message_from_row(row, queue)
            })?
            .collect::<rusqlite::Result<_>>()?;
        let exhausted = candidates.len() < want;
        let mut ids = String::with_capacity(candidates.len() * 12 + 2);
        ids.push('[');
        let first_taken = messages.len();
        for mut m in candidates {
            let m_id = parse_id(&m.id)
                .ok_or_else(|| Error::Unavailable(format!("bad message id {}", m.id)))?;
            if m.attempt >= settings.max_attempts {
                // Delivered max_attempts times and visible again: its last consumer never
                // settled it. Delivering it once more would exceed the limit.
                dead_letter(tx, queue, &settings, m_id, REASON_LEASE_EXPIRED)?;
                continue;
            }
            if ids.len() > 1 {
                ids.push(',');
            }
            ids.push_str(&m.id);
            m.attempt += 1;
            messages.push(m);
        }
        ids.push(']');
        if messages.len() > first_taken {
            conn.prepare_cached(sql::TAKE_LEASE_MANY)?.execute(params![
                ids,
                lease_id,
                int(expires_at)
            ])?;
        }
        if exhausted || messages.len() >= max {
            break;
        }
    }
    if messages.is_empty() {
        return Ok(None);
    }
    Ok(Some(Lease {
        id: lease_id,
        queue: queue.to_owned(),
        messages,
        expires_at_ms: expires_at,
    }))
}

pub fn extend(tx: &mut Tx<'_>, lease_id: i64, ids: &[String], visibility: Duration) -> Result<u64> {
    let visibility_ms = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
    let expires_at = tx.now.saturating_add(visibility_ms);
    let mut stmt = tx.conn.prepare_cached(sql::EXTEND_LEASE)?;
    let mut extended = 0;
    for id in ids.iter().filter_map(|id| parse_id(id)) {
        extended += stmt.execute(params![id, lease_id, int(expires_at)])? as u64;
    }
    Ok(extended)
}

/// Applies a whole settlement; any error rolls back all of it (the request's savepoint).
pub fn settle(
    tx: &mut Tx<'_>,
    queue: &str,
    lease_id: i64,
    settlement: Settlement,
) -> Result<Settled> {
    let Settlement {
        ack,
        retry,
        dead_letter: dead,
        send,
    } = settlement;
    let conn = tx.conn;
    let now = tx.now;
    let mut out = Settled::default();

    // An ack counts only while this lease still holds the message. One statement for the
    // whole list; ids that are not numbers can never be held, so they are simply stale.
    let mut acked = 0;
    if !ack.is_empty() {
        let mut ids = String::with_capacity(ack.len() * 12 + 2);
        ids.push('[');
        for id in ack.iter().filter_map(|id| parse_id(id)) {
            if ids.len() > 1 {
                ids.push(',');
            }
            ids.push_str(&id.to_string());
        }
        ids.push(']');
        acked = conn
            .prepare_cached(sql::ACK_MANY)?
            .execute(params![ids, lease_id])? as u64;
        out.stale += ack.len() as u64 - acked;
    }
    out.acked = acked;
    tx.count(queue).acked += acked;

    for Retry {
        id,
        delay_ms,
        error,
    } in retry
    {
        let Some((id, attempt)) = held(tx, &id, lease_id)? else {
            out.stale += 1;
            continue;
        };
        let settings = tx.settings(queue)?;
        if attempt >= settings.max_attempts {
            if dead_letter(tx, queue, &settings, id, &error)? {
                out.dead_lettered += 1;
            } else {
                out.dropped += 1;
            }
            continue;
        }
        let visible_at = now.saturating_add(delay_ms);
        conn.prepare_cached(sql::RETRY)?
            .execute(params![id, int(visible_at), error])?;
        out.retried += 1;
        tx.count(queue).retried += 1;
        tx.notify(queue);
    }

    for DeadLetter { id, reason } in dead {
        let Some((id, _)) = held(tx, &id, lease_id)? else {
            out.stale += 1;
            continue;
        };
        let settings = tx.settings(queue)?;
        if dead_letter(tx, queue, &settings, id, &reason)? {
            out.dead_lettered += 1;
        } else {
            out.dropped += 1;
        }
    }

    for (target, message) in send {
        // A missing queue or an oversized message fails the whole settlement.
        out.sent += enqueue(tx, &target, vec![message])?.len() as u64;
    }
    Ok(out)
}

/// The message's id and attempt when `lease_id` still holds it.
fn held(tx: &Tx<'_>, id: &str, lease_id: i64) -> Result<Option<(i64, u32)>> {
    let Some(id) = parse_id(id) else {
        return Ok(None);
    };
    let attempt: Option<i64> = tx
        .conn
        .prepare_cached(sql::LEASED_ATTEMPT)?
        .query_row(params![id, lease_id], |r| r.get(0))
        .optional()?;
    Ok(attempt.map(|a| (id, u32::try_from(a).unwrap_or(u32::MAX))))
}

/// Moves message `id` of `queue` to the queue's dead-letter queue as a new message, with the
/// reason, attempts and source queue as attributes; without one, deletes it. Returns true when
/// dead-lettered, false when dropped.
fn dead_letter(
    tx: &mut Tx<'_>,
    queue: &str,
    settings: &QueueSettings,
    id: i64,
    reason: &str,
) -> Result<bool> {
    let conn = tx.conn;
    let now = tx.now;
    let (body, attributes, attempt): (Vec<u8>, Option<String>, i64) = conn
        .prepare_cached(sql::MESSAGE_FOR_MOVE)?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    conn.prepare_cached(sql::DELETE_MESSAGE)?
        .execute(params![id])?;
    let Some(dlq) = &settings.dead_letter_queue else {
        tx.count(queue).dropped += 1;
        return Ok(false);
    };
    let mut attributes = decode_attributes(attributes.as_deref())?;
    attributes.retain(|(k, _)| !RESERVED_ATTRIBUTES.contains(&k.as_str()));
    attributes.push((ATTR_DEAD_LETTER_REASON.into(), reason.to_owned()));
    attributes.push((ATTR_ATTEMPTS.into(), attempt.to_string()));
    attributes.push((ATTR_SOURCE_QUEUE.into(), queue.to_owned()));
    conn.prepare_cached(sql::INSERT_MESSAGE)?.execute(params![
        dlq,
        body,
        encode_attributes(&attributes)?,
        int(now),
        int(now),
        queue
    ])?;
    tx.count(queue).dead_lettered += 1;
    tx.count(dlq).enqueued += 1;
    tx.notify(dlq);
    Ok(true)
}

pub fn redrive(tx: &mut Tx<'_>, dlq: &str, to: Option<&str>, limit: Option<u64>) -> Result<u64> {
    tx.settings(dlq)?;
    if let Some(to) = to {
        if to == dlq {
            return Err(Error::InvalidSettings(format!(
                "cannot redrive `{dlq}` into itself"
            )));
        }
        tx.settings(to)?;
    }
    let conn = tx.conn;
    let now = tx.now;
    let limit = limit.unwrap_or(u64::MAX);
    let mut moved = 0u64;
    let mut cursor = 0i64;
    while moved < limit {
        let page = (limit - moved).min(500);
        let rows: Vec<(i64, Option<String>)> = conn
            .prepare_cached(sql::REDRIVABLE)?
            .query_map(params![dlq, cursor, int(now), int(page)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            break;
        }
        for (id, source) in rows {
            cursor = id;
            // Messages whose source is unknown or gone stay in the dead-letter queue.
            let Some(target) = to.map(str::to_owned).or(source) else {
                continue;
            };
            if target == dlq {
                continue;
            }
            match tx.settings(&target) {
                Ok(_) => {}
                Err(Error::QueueNotFound(_)) => continue,
                Err(e) => return Err(e),
            }
            let (body, attributes): (Vec<u8>, Option<String>) = conn
                .prepare_cached(sql::MESSAGE_FOR_MOVE)?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let mut attributes = decode_attributes(attributes.as_deref())?;
            attributes.retain(|(k, _)| !RESERVED_ATTRIBUTES.contains(&k.as_str()));
            conn.prepare_cached(sql::DELETE_MESSAGE)?
                .execute(params![id])?;
            conn.prepare_cached(sql::INSERT_MESSAGE)?.execute(params![
                target,
                body,
                encode_attributes(&attributes)?,
                int(now),
                int(now),
                None::<&str>
            ])?;
            tx.count(&target).enqueued += 1;
            tx.notify(&target);
            moved += 1;
            if moved >= limit {
                break;
            }
        }
    }
    Ok(moved)
}

pub fn purge(tx: &mut Tx<'_>, queue: &str) -> Result<u64> {
    tx.settings(queue)?;
    let purged = tx
        .conn
        .prepare_cached(sql::DELETE_QUEUE_MESSAGES)?
        .execute(params![queue])?;
    Ok(purged as u64)
}

/// The most messages one sweep deletes, so a large backlog expiring at once never holds the
/// writer for long; the rest goes in the next sweeps.
const MAX_EXPIRED_PER_SWEEP: u64 = 50_000;

/// The retention sweep: deletes messages older than their queue's retention (counted as
/// expired) and forgets dedup ids whose window has passed. It walks messages oldest first and
/// stops at the first one younger than the shortest retention: nothing after it can be expired.
pub fn expire(tx: &mut Tx<'_>) -> Result<u64> {
    let conn = tx.conn;
    let now = tx.now;
    conn.prepare_cached(sql::DEDUP_FORGET_EXPIRED)?
        .execute(params![int(now)])?;
    let mut retention = std::collections::HashMap::new();
    {
        let mut stmt = conn.prepare_cached(sql::QUEUE_RETENTIONS)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (queue, settings): (String, String) = (row.get(0)?, row.get(1)?);
            let settings: QueueSettings = serde_json::from_str(&settings).map_err(|e| {
                Error::Unavailable(format!("settings of queue `{queue}` are unreadable: {e}"))
            })?;
            retention.insert(queue, settings.retention_ms);
        }
    }
    let Some(shortest) = retention.values().copied().min() else {
        return Ok(0);
    };
    let horizon = now.saturating_sub(shortest);
    let mut total = 0;
    let mut cursor = 0i64;
    'walk: while total < MAX_EXPIRED_PER_SWEEP {
        let rows: Vec<(i64, String, i64)> = conn
            .prepare_cached(sql::OLDEST_MESSAGES)?
            .query_map(params![cursor, 1_000], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            break;
        }
        for (id, queue, enqueued_at) in rows {
            cursor = id;
            let enqueued_at = u64::try_from(enqueued_at).unwrap_or(0);
            if enqueued_at >= horizon {
                break 'walk;
            }
            let keep_ms = retention.get(&queue).copied().unwrap_or(u64::MAX);
            if enqueued_at < now.saturating_sub(keep_ms) {
                conn.prepare_cached(sql::DELETE_MESSAGE)?
                    .execute(params![id])?;
                tx.count(&queue).expired += 1;
                total += 1;
            }
        }
    }
    Ok(total)
}

pub fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok()
}
