//! Replies in SQLite: stored in the settle's transaction for the acknowledged messages they
//! answer, read by message id, and swept once their retention has passed.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use super::writer::{Tx, int};
use crate::store::codec::{decode_attributes, encode_attributes};
use crate::store::{NewReply, REPLY_RETENTION_MS, Reply};

/// The SQLite schema of replies (migration 9): one row per answered message, kept until
/// `expires_at`.
pub const SCHEMA_V9: &str = "
CREATE TABLE replies (
    message_id TEXT PRIMARY KEY,
    queue      TEXT NOT NULL,
    body       BLOB NOT NULL,
    attributes TEXT,
    replied_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX replies_by_expiry ON replies(expires_at);
";

/// Stores the replies whose message `acked` says this settle acknowledged; the others (their
/// message was retried, dead-lettered or no longer held) are discarded. Returns how many were
/// stored; each wakes its waiters after the commit.
pub fn insert(
    tx: &mut Tx<'_>,
    queue: &str,
    replies: Vec<NewReply>,
    acked: impl Fn(&str) -> bool,
) -> Result<u64> {
    let now = tx.now;
    let mut stored = 0;
    for reply in replies {
        if !acked(&reply.message_id) {
            continue;
        }
        // A message is acknowledged once, so it has at most one reply; a redelivery's
        // earlier settle never committed.
        let added = tx
            .conn
            .prepare_cached(
                "INSERT INTO replies (message_id, queue, body, attributes, replied_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (message_id) DO NOTHING",
            )?
            .execute(params![
                reply.message_id,
                queue,
                reply.body,
                encode_attributes(&reply.attributes)?,
                int(now),
                int(now.saturating_add(REPLY_RETENTION_MS)),
            ])?;
        if added > 0 {
            tx.replied(&reply.message_id);
            stored += 1;
        }
    }
    Ok(stored)
}

/// The reply to `message_id`, unless it has expired by `now`.
pub fn get(conn: &Connection, now: u64, message_id: &str) -> Result<Option<Reply>> {
    let row: Option<(String, Vec<u8>, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT queue, body, attributes, replied_at FROM replies
             WHERE message_id = ?1 AND expires_at > ?2",
        )?
        .query_row(params![message_id, int(now)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    row.map(|(queue, body, attributes, replied_at)| {
        Ok(Reply {
            message_id: message_id.to_owned(),
            queue,
            body,
            attributes: decode_attributes(attributes.as_deref())?,
            replied_at_ms: u64::try_from(replied_at).unwrap_or(0),
        })
    })
    .transpose()
}

/// Deletes up to `budget` expired replies; returns how many.
pub fn expire(tx: &mut Tx<'_>, budget: u64) -> Result<u64> {
    Ok(tx
        .conn
        .prepare_cached(
            "DELETE FROM replies WHERE message_id IN (
                SELECT message_id FROM replies WHERE expires_at <= ?1 LIMIT (?2 + 0))",
        )?
        .execute(params![int(tx.now), int(budget)])? as u64)
}
