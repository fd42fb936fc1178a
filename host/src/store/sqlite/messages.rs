//! Message operations inside the writer's transaction: enqueue (with dedup), lease, extend,
//! settle (ack, retry, dead-letter, send: all or nothing), redrive, purge and the retention
//! sweep. Each takes the request's [`Tx`] and leaves counters and wake-ups to it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::parse_id;
use super::read::{decode_attributes, encode_attributes, message_from_row};
use super::validate;
use super::writer::{Due, Tx, int};
use super::{
    DEFAULT_PRIORITY, Enqueued, Error, Lease, MAX_LEASE_MESSAGES, MAX_PRIORITY, Message,
    NewMessage, QueueSettings, REASON_LEASE_EXPIRED, Result, Settled, Settlement, sql,
};
use crate::store::rules::{
    Disposal, attempts_spent, dead_letter_attributes, disposal_ids, dispose, message_id,
    redrive_target, redriven_attributes, stale_acks,
};

/// The most messages one request of a bulk operation (purge, queue delete, redrive, retention
/// sweep) deletes or moves. Each chunk commits on its own, so writes to other queues wait at
/// most one chunk, never the whole operation; [`ChunkPacer`] sizes chunks below this so one
/// holds the writer for about [`BULK_SLICE`].
pub const BULK_CHUNK: u64 = 2_000;

/// How long one chunk of a bulk operation should hold the writer.
pub const BULK_SLICE: Duration = Duration::from_millis(5);

/// The smallest chunk, so a bulk operation always makes progress.
const MIN_CHUNK: u64 = 16;

/// Sizes the chunks of one bulk operation from how long the last one held the writer: a deep
/// table with many indexes makes each row slower, and a busy machine each chunk, so a fixed
/// count would hold other queues' writes for longer than [`BULK_SLICE`]. Starts small, grows
/// at most 2x per chunk, shrinks at once.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPacer {
    size: u64,
}

impl Default for ChunkPacer {
    fn default() -> Self {
        ChunkPacer { size: 128 }
    }
}

impl ChunkPacer {
    /// How many rows the next chunk may touch.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Records that a chunk of [`ChunkPacer::size`] rows held the writer for `took`.
    pub fn record(&mut self, took: Duration) {
        let took = took.as_secs_f64().max(1e-6);
        let fitting = (self.size as f64 * BULK_SLICE.as_secs_f64() / took) as u64;
        self.size = fitting.min(self.size * 2).clamp(MIN_CHUNK, BULK_CHUNK);
    }
}

/// Refuses an enqueue that would take the queue past `max_depth` (one read of its counter).
fn check_depth(tx: &mut Tx<'_>, queue: &str, max_depth: u64, adding: u64) -> Result<()> {
    if tx.depth(queue)? + adding > max_depth {
        return Err(Error::QueueFull {
            queue: queue.to_owned(),
            max_depth,
        });
    }
    Ok(())
}

/// What a new row holds besides its queue.
struct Row<'m> {
    body: &'m [u8],
    attributes: Option<String>,
    visible_at: u64,
    source_queue: Option<&'m str>,
    /// Why it was dead-lettered, for a message moving to its dead-letter queue.
    dead_letter_reason: Option<&'m str>,
    priority: u8,
    group: Option<&'m str>,
}

/// Inserts one message and returns its id. A message of a group that already has one in the
/// queue waits in the held lane until every message before it has left the queue.
fn insert(tx: &Tx<'_>, queue: &str, row: Row<'_>) -> Result<i64> {
    let conn = tx.conn;
    let waits = match row.group {
        Some(group) => conn
            .prepare_cached(sql::GROUP_HAS_MESSAGES)?
            .query_row(params![queue, group], |_| Ok(()))
            .optional()?
            .is_some(),
        None => false,
    };
    let lane = match waits {
        true => sql::HELD_LANE,
        false => i64::from(MAX_PRIORITY - row.priority.min(MAX_PRIORITY)),
    };
    conn.prepare_cached(sql::INSERT_MESSAGE)?.execute(params![
        queue,
        row.body,
        row.attributes,
        int(tx.now),
        int(row.visible_at),
        row.source_queue,
        row.priority,
        row.group,
        lane,
        row.dead_letter_reason
    ])?;
    Ok(conn.last_insert_rowid())
}

/// After a message of `group` left `queue`: lets the group's new head be delivered.
fn release_group(tx: &mut Tx<'_>, queue: &str, group: Option<&str>) -> Result<()> {
    let Some(group) = group else {
        return Ok(());
    };
    let released = tx
        .conn
        .prepare_cached(sql::RELEASE_GROUP_HEAD)?
        .execute(params![queue, group])?;
    if released > 0 {
        tx.notify(queue);
    }
    Ok(())
}

pub fn enqueue(tx: &mut Tx<'_>, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>> {
    let settings = tx.settings(queue)?;
    validate::messages_fit(queue, &settings, &messages)?;
    if let Some(max_depth) = settings.max_depth {
        check_depth(tx, queue, max_depth, messages.len() as u64)?;
    }
    let conn = tx.conn;
    let now = tx.now;
    let mut out = Vec::with_capacity(messages.len());
    let mut added = 0;
    let mut due = Vec::with_capacity(messages.len());
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
        let row = Row {
            body: &m.body,
            attributes: encode_attributes(&m.attributes)?,
            visible_at,
            source_queue: None,
            dead_letter_reason: None,
            priority: m.priority,
            group: m.group.as_deref(),
        };
        let id = insert(tx, queue, row)?;
        due.push(Due::ready(visible_at));
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
    for due in due {
        tx.added(queue, due)?;
    }
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
    max_leases: Option<u32>,
    first_lane: usize,
) -> Result<Option<Lease>> {
    let settings = tx.settings(queue)?;
    let max = max.min(MAX_LEASE_MESSAGES);
    if max == 0 {
        return Ok(None);
    }
    if let Some(cap) = max_leases {
        let live: i64 = tx
            .conn
            .prepare_cached(sql::LIVE_LEASES)?
            .query_row(params![queue, int(tx.now)], |r| r.get(0))?;
        if live >= i64::from(cap) {
            return Ok(None);
        }
    }
    let visibility_ms = visibility
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(settings.visibility_timeout_ms);
    // Everything a lease takes is due by now: after the fold, moving it needs no entry of
    // `message_due` but the one for the lease's expiry.
    tx.fold_due(queue)?;
    let conn = tx.conn;
    let now = tx.now;
    let expires_at = now.saturating_add(visibility_ms);
    let lease_id: i64 = rand::random();
    let mut messages = Vec::new();
    loop {
        let want = max - messages.len();
        let candidates: Vec<(Message, Due)> = conn
            .prepare_cached(sql::visible_in_order(first_lane))?
            .query_map(params![queue, int(now), int(want as u64)], |row| {
                Ok((message_from_row(row, queue)?, Due::from_row(row, 5)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let exhausted = candidates.len() < want;
        let mut dead = false;
        let mut ids = String::with_capacity(candidates.len() * 12 + 2);
        ids.push('[');
        let first_taken = messages.len();
        for (mut m, due) in candidates {
            let m_id = parse_id(&m.id)
                .ok_or_else(|| Error::Unavailable(format!("bad message id {}", m.id)))?;
            if attempts_spent(m.attempt, &settings) {
                // Delivered max_attempts times and visible again: its last consumer never
                // settled it. Delivering it once more would exceed the limit.
                dead_letter(tx, queue, &settings, m_id, REASON_LEASE_EXPIRED)?;
                dead = true;
                continue;
            }
            if ids.len() > 1 {
                ids.push(',');
            }
            ids.push_str(&m.id);
            m.attempt += 1;
            m.first_leased_at_ms.get_or_insert(now);
            messages.push(m);
            tx.moved(queue, due, Due::leased(expires_at))?;
        }
        ids.push(']');
        if messages.len() > first_taken {
            conn.prepare_cached(sql::TAKE_LEASE_MANY)?.execute(params![
                ids,
                lease_id,
                int(expires_at),
                int(now)
            ])?;
        }
        // A message dead-lettered here may have held its group: the group's next message is
        // deliverable now, so look again rather than leave it for the next lease.
        if (exhausted && !dead) || messages.len() >= max {
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

pub fn extend(
    tx: &mut Tx<'_>,
    queue: &str,
    lease_id: i64,
    ids: &[String],
    visibility: Duration,
) -> Result<u64> {
    let visibility_ms = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
    let expires_at = tx.now.saturating_add(visibility_ms);
    let conn = tx.conn;
    let mut extended = 0;
    for id in ids.iter().filter_map(|id| parse_id(id)) {
        let Some(was): Option<i64> = conn
            .prepare_cached(sql::LEASED_VISIBLE_AT)?
            .query_row(params![id, lease_id, queue], |r| r.get(0))
            .optional()?
        else {
            continue;
        };
        conn.prepare_cached(sql::EXTEND_LEASE)?
            .execute(params![id, lease_id, int(expires_at)])?;
        let was = Due::leased(u64::try_from(was).unwrap_or(0));
        tx.moved(queue, was, Due::leased(expires_at))?;
        extended += 1;
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
        publish,
        replies,
        state,
    } = settlement;
    let conn = tx.conn;
    let now = tx.now;
    let mut out = Settled::default();
    // A send that cannot go fails the whole settlement before anything else is looked at.
    for (target, message) in &send {
        let settings = tx.settings(target)?;
        validate::messages_fit(target, &settings, std::slice::from_ref(message))?;
    }

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
        let gone: Vec<(i64, i64, Option<String>)> = conn
            .prepare_cached(sql::ACK_MANY)?
            .query_map(params![ids, lease_id, queue], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (_, visible_at, group) in &gone {
            tx.removed(queue, Due::leased(u64::try_from(*visible_at).unwrap_or(0)))?;
            release_group(tx, queue, group.as_deref())?;
        }
        acked = gone.len() as u64;
        let gone: HashSet<i64> = gone.into_iter().map(|(id, _, _)| id).collect();
        out.stale.extend(stale_acks(ack, &gone));
        if !replies.is_empty() {
            out.replied = super::replies::insert(tx, queue, replies, |id| {
                message_id(id).is_some_and(|id| gone.contains(&id))
            })?;
        }
    }
    out.acked = acked;
    tx.count(queue).acked += acked;

    // What the lease still holds of the rest decides their fate (rules::dispose).
    let mut held = HashMap::new();
    for id in disposal_ids(&retry, &dead) {
        if let Some((attempt, due)) = held_by(tx, queue, id, lease_id)? {
            held.insert(id, (attempt, due));
        }
    }
    let settings = tx.settings(queue)?;
    let (disposals, stale) = dispose(
        retry,
        dead,
        |id| held.get(&id).map(|(attempt, _)| *attempt),
        &settings,
        now,
    );
    out.stale.extend(stale);
    // State writes need the lease to hold every message named, and a compare-and-swap its key
    // unchanged; a conflict undoes it all, and is found before anything takes a message id.
    crate::store::state::check_lease_held(&out.stale, &state)?;
    super::kv::apply(tx, state)?;
    for disposal in disposals {
        match disposal {
            Disposal::Retry {
                id,
                visible_at,
                error,
            } => {
                conn.prepare_cached(sql::RETRY)?
                    .execute(params![id, int(visible_at), error])?;
                tx.moved(queue, held[&id].1, Due::ready(visible_at))?;
                out.retried += 1;
                tx.count(queue).retried += 1;
                tx.notify(queue);
            }
            Disposal::DeadLetter { id, reason } => {
                if dead_letter(tx, queue, &settings, id, &reason)? {
                    out.dead_lettered += 1;
                } else {
                    out.dropped += 1;
                }
            }
        }
    }

    for (target, message) in send {
        // A missing queue or an oversized message fails the whole settlement.
        out.sent += enqueue(tx, &target, vec![message])?.len() as u64;
    }
    for (topic, messages) in crate::store::rules::by_target(publish) {
        // So does a missing topic, or a copy a subscribed queue refuses.
        out.published += super::topics::publish(tx, &topic, messages)?.len() as u64;
    }
    Ok(out)
}

/// The message's attempt and due time when `lease_id` still holds it.
fn held_by(tx: &Tx<'_>, queue: &str, id: i64, lease_id: i64) -> Result<Option<(u32, Due)>> {
    let row: Option<(i64, i64)> = tx
        .conn
        .prepare_cached(sql::LEASED_ATTEMPT)?
        .query_row(params![id, lease_id, queue], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(attempt, visible_at)| {
        (
            u32::try_from(attempt).unwrap_or(u32::MAX),
            Due::leased(u64::try_from(visible_at).unwrap_or(0)),
        )
    }))
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
    let moving = Moving::read(tx, id)?;
    conn.prepare_cached(sql::DELETE_MESSAGE)?
        .execute(params![id])?;
    tx.removed(queue, moving.due)?;
    release_group(tx, queue, moving.group.as_deref())?;
    let Some(dlq) = &settings.dead_letter_queue else {
        tx.count(queue).dropped += 1;
        return Ok(false);
    };
    let attributes = dead_letter_attributes(
        decode_attributes(moving.attributes.as_deref())?,
        queue,
        id,
        u32::try_from(moving.attempt).unwrap_or(0),
        reason,
    );
    let row = Row {
        body: &moving.body,
        attributes: encode_attributes(&attributes)?,
        visible_at: now,
        source_queue: Some(queue),
        dead_letter_reason: Some(reason),
        priority: moving.priority,
        group: moving.group.as_deref(),
    };
    insert(tx, dlq, row)?;
    tx.added(dlq, Due::ready(now))?;
    tx.count(queue).dead_lettered += 1;
    tx.count(dlq).enqueued += 1;
    tx.notify(dlq);
    Ok(true)
}

/// A message about to move to another queue (dead-lettered, or redriven back).
struct Moving {
    body: Vec<u8>,
    attributes: Option<String>,
    attempt: i64,
    due: Due,
    priority: u8,
    group: Option<String>,
}

impl Moving {
    fn read(tx: &Tx<'_>, id: i64) -> Result<Moving> {
        let moving =
            tx.conn
                .prepare_cached(sql::MESSAGE_FOR_MOVE)?
                .query_row(params![id], |r| {
                    Ok(Moving {
                        body: r.get(0)?,
                        attributes: r.get(1)?,
                        attempt: r.get(2)?,
                        due: Due::from_row(r, 3)?,
                        priority: u8::try_from(r.get::<_, i64>(5)?).unwrap_or(DEFAULT_PRIORITY),
                        group: r.get(6)?,
                    })
                })?;
        Ok(moving)
    }
}

/// Where a chunked redrive stands between its requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedriveProgress {
    /// Messages moved so far.
    pub moved: u64,
    /// The last id looked at.
    pub cursor: i64,
    /// True once nothing is left to look at, or the limit is reached.
    pub done: bool,
}

/// One chunk of a redrive: moves up to `chunk` messages (and at most `limit` in all) from `dlq`
/// back to their source queue or to `to`, looking only at ids after the cursor.
pub fn redrive(
    tx: &mut Tx<'_>,
    dlq: &str,
    to: Option<&str>,
    limit: u64,
    chunk: u64,
    mut progress: RedriveProgress,
) -> Result<RedriveProgress> {
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
    let page = (limit - progress.moved).min(chunk);
    let rows: Vec<(i64, Option<String>)> = conn
        .prepare_cached(sql::REDRIVABLE)?
        .query_map(params![dlq, progress.cursor, int(now), int(page)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if (rows.len() as u64) < page {
        progress.done = true;
    }
    for (id, source) in rows {
        progress.cursor = id;
        if move_back(tx, dlq, id, to, source)? {
            progress.moved += 1;
        }
    }
    if progress.moved >= limit {
        progress.done = true;
    }
    Ok(progress)
}

/// Moves one dead-lettered message to `to` or its source, attempts reset. Messages whose source
/// is unknown or gone stay in the dead-letter queue (false).
fn move_back(
    tx: &mut Tx<'_>,
    dlq: &str,
    id: i64,
    to: Option<&str>,
    source: Option<String>,
) -> Result<bool> {
    let conn = tx.conn;
    let now = tx.now;
    let Some(target) = redrive_target(dlq, to, source) else {
        return Ok(false);
    };
    match tx.settings(&target) {
        Ok(_) => {}
        Err(Error::QueueNotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    let moving = Moving::read(tx, id)?;
    let attributes = redriven_attributes(decode_attributes(moving.attributes.as_deref())?);
    conn.prepare_cached(sql::DELETE_MESSAGE)?
        .execute(params![id])?;
    tx.removed(dlq, moving.due)?;
    release_group(tx, dlq, moving.group.as_deref())?;
    let row = Row {
        body: &moving.body,
        attributes: encode_attributes(&attributes)?,
        visible_at: now,
        source_queue: None,
        dead_letter_reason: None,
        priority: moving.priority,
        group: moving.group.as_deref(),
    };
    insert(tx, &target, row)?;
    tx.added(&target, Due::ready(now))?;
    tx.count(&target).enqueued += 1;
    tx.notify(&target);
    Ok(true)
}

/// Moves the given dead letters back (see [`redrive`]); ids not in `dlq`, or leased right now,
/// are skipped. Returns how many moved.
pub fn redrive_ids(tx: &mut Tx<'_>, dlq: &str, to: Option<&str>, ids: &[u64]) -> Result<u64> {
    tx.settings(dlq)?;
    if let Some(to) = to {
        if to == dlq {
            return Err(Error::InvalidSettings(format!(
                "cannot redrive `{dlq}` into itself"
            )));
        }
        tx.settings(to)?;
    }
    let mut moved = 0;
    for id in ids {
        let source: Option<Option<String>> = tx
            .conn
            .prepare_cached(sql::REDRIVABLE_ONE)?
            .query_row(params![int(*id), dlq, int(tx.now)], |r| r.get(0))
            .optional()?;
        if let Some(source) = source
            && move_back(tx, dlq, int(*id), to, source)?
        {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Deletes the given messages of `queue` (in flight too); ids elsewhere are ignored. Returns
/// how many were deleted.
pub fn delete(tx: &mut Tx<'_>, queue: &str, ids: &[u64]) -> Result<u64> {
    tx.settings(queue)?;
    let mut deleted = 0;
    for id in ids {
        let gone = tx
            .conn
            .prepare_cached(sql::DELETE_QUEUE_MESSAGE)?
            .query_row(params![int(*id), queue], |r| {
                Ok((Due::from_row(r, 0)?, r.get::<_, Option<String>>(2)?))
            })
            .optional()?;
        if let Some((due, group)) = gone {
            tx.removed(queue, due)?;
            release_group(tx, queue, group.as_deref())?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// One chunk of a purge: deletes up to `chunk` of the queue's messages with ids up to `upto`
/// (the newest when the purge began, found by the first chunk), oldest first. Returns how many
/// it deleted, and `upto`.
pub fn purge(tx: &mut Tx<'_>, queue: &str, upto: Option<i64>, chunk: u64) -> Result<(u64, i64)> {
    tx.settings(queue)?;
    let upto = match upto {
        Some(upto) => upto,
        None => tx
            .conn
            .prepare_cached(sql::NEWEST_ID_OF_QUEUE)?
            .query_row(params![queue], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(0),
    };
    let gone: Vec<(Due, Option<String>)> = tx
        .conn
        .prepare_cached(sql::DELETE_QUEUE_MESSAGES_UP_TO)?
        .query_map(params![queue, upto, int(chunk)], |r| {
            Ok((Due::from_row(r, 0)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Messages enqueued while the purge runs are kept; a group whose older messages it deleted
    // must not keep them waiting.
    let groups: HashSet<&str> = gone.iter().filter_map(|(_, g)| g.as_deref()).collect();
    for (due, _) in &gone {
        tx.removed(queue, *due)?;
    }
    for group in groups {
        release_group(tx, queue, Some(group))?;
    }
    Ok((gone.len() as u64, upto))
}

/// One request of the running host's retention sweep, for everything the store keeps for a
/// time: queue messages and dedup ids ([`expire`]), then topic history past its topic's
/// retention, replies past their expiry and invocations older than `log_max_age_ms`, each up
/// to [`BULK_CHUNK`] rows. Returns how many messages expired, and whether a budget ran out
/// (then the writer runs the next request at once).
pub fn sweep(tx: &mut Tx<'_>, log_max_age_ms: u64) -> Result<(u64, bool)> {
    let (expired, more) = expire(tx)?;
    let history = super::topics::expire(tx, BULK_CHUNK)?;
    let replies = super::replies::expire(tx, BULK_CHUNK)?;
    let cutoff = tx.now.saturating_sub(log_max_age_ms);
    let invocations = super::invocations::expire(tx, cutoff, BULK_CHUNK)?;
    let keys = super::kv::expire(tx, BULK_CHUNK)?;
    Ok((
        expired,
        more || [history, replies, invocations, keys].contains(&BULK_CHUNK),
    ))
}

/// One request of the retention sweep: deletes up to [`BULK_CHUNK`] messages older than their
/// queue's retention (counted as expired) and forgets dedup ids whose window has passed; folds
/// the due times now past. Returns how many messages expired, and whether the budget ran out
/// (then the writer runs the next request at once).
///
/// Each queue is walked from its oldest message (ids grow with enqueue time) and the walk stops
/// at the first one young enough to keep, so a sweep costs what it deletes plus one row per
/// queue, however deep the queues are.
pub fn expire(tx: &mut Tx<'_>) -> Result<(u64, bool)> {
    let now = tx.now;
    tx.fold_all_due()?;
    let conn = tx.conn;
    let forgotten = conn
        .prepare_cached(sql::DEDUP_FORGET_EXPIRED_SOME)?
        .execute(params![int(now), int(BULK_CHUNK)])? as u64;
    let mut budget = BULK_CHUNK.saturating_sub(forgotten);
    let mut retention = Vec::new();
    {
        let mut stmt = conn.prepare_cached(sql::QUEUE_RETENTIONS)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (queue, settings): (String, String) = (row.get(0)?, row.get(1)?);
            let settings = crate::store::codec::decode_settings(&queue, &settings)?;
            retention.push((queue, settings.retention_ms));
        }
    }
    let mut total = 0;
    for (queue, keep_ms) in retention {
        let horizon = now.saturating_sub(keep_ms);
        while budget > 0 {
            let page = budget.min(500);
            let rows: Vec<(i64, i64, Due, Option<String>)> = conn
                .prepare_cached(sql::OLDEST_OF_QUEUE)?
                .query_map(params![queue, int(page)], |r| {
                    Ok((r.get(0)?, r.get(1)?, Due::from_row(r, 2)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let full = rows.len() as u64 == page;
            let mut young = false;
            for (id, enqueued_at, due, group) in rows {
                if u64::try_from(enqueued_at).unwrap_or(0) >= horizon {
                    young = true;
                    break;
                }
                conn.prepare_cached(sql::DELETE_MESSAGE)?
                    .execute(params![id])?;
                tx.removed(&queue, due)?;
                release_group(tx, &queue, group.as_deref())?;
                tx.count(&queue).expired += 1;
                total += 1;
                budget -= 1;
            }
            if young || !full {
                break;
            }
        }
    }
    Ok((total, budget == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_while_fast_and_shrink_when_slow() {
        let mut pacer = ChunkPacer::default();
        let start = pacer.size();
        pacer.record(Duration::from_micros(10));
        assert_eq!(pacer.size(), start * 2, "grows at most 2x per chunk");
        for _ in 0..20 {
            pacer.record(Duration::from_micros(10));
        }
        assert_eq!(pacer.size(), BULK_CHUNK, "never past the cap");
        pacer.record(BULK_SLICE * 4);
        assert_eq!(pacer.size(), BULK_CHUNK / 4, "shrinks to what fits at once");
        pacer.record(Duration::from_secs(10));
        assert_eq!(pacer.size(), MIN_CHUNK, "always makes progress");
    }
}
