//! Replies in PostgreSQL: stored in the settle's transaction for the acknowledged messages they
//! answer (each NOTIFYs `sluice_reply` so a producer waiting on any host wakes), read by
//! message id, and swept once their retention has passed.

use deadpool_postgres::{GenericClient, Transaction};

use super::messages::Work;
use super::{Result, int, sql};
use crate::store::codec::{decode_attributes, encode_attributes};
use crate::store::{NewReply, REPLY_RETENTION_MS, Reply};

/// The PostgreSQL schema of replies (migration 7): one row per answered message, kept until
/// `expires_at`.
pub const SCHEMA_V7: &str = "
CREATE TABLE replies (
    message_id TEXT PRIMARY KEY,
    queue      TEXT NOT NULL,
    body       BYTEA NOT NULL,
    attributes TEXT,
    replied_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replies_by_expiry ON replies(expires_at);
";

/// Stores the replies whose message `acked` says this settle acknowledged; the others (their
/// message was retried, dead-lettered or no longer held) are discarded. One statement for all
/// of them, then one NOTIFY per reply stored, pipelined. Returns how many were stored.
pub async fn insert(
    tx: &Transaction<'_>,
    work: &mut Work,
    queue: &str,
    replies: Vec<NewReply>,
    acked: impl Fn(&str) -> bool,
) -> Result<u64> {
    let replies: Vec<NewReply> = replies
        .into_iter()
        .filter(|r| acked(&r.message_id))
        .collect();
    if replies.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(replies.len());
    let mut bodies = Vec::with_capacity(replies.len());
    let mut attributes = Vec::with_capacity(replies.len());
    for reply in replies {
        attributes.push(encode_attributes(&reply.attributes)?);
        ids.push(reply.message_id);
        bodies.push(reply.body);
    }
    let now = work.now;
    // A message is acknowledged once, so it has at most one reply.
    let stored = tx
        .query(
            "INSERT INTO replies (message_id, queue, body, attributes, replied_at, expires_at)
             SELECT r.id, $4, r.body, r.attributes, $5, $6
             FROM unnest($1::text[], $2::bytea[], $3::text[]) AS r(id, body, attributes)
             ON CONFLICT (message_id) DO NOTHING
             RETURNING message_id",
            &[
                &ids,
                &bodies,
                &attributes,
                &queue,
                &int(now),
                &int(now.saturating_add(REPLY_RETENTION_MS)),
            ],
        )
        .await?;
    let stored: Vec<String> = stored.iter().map(|row| row.get(0)).collect();
    let notify = tx.prepare_cached(sql::NOTIFY_REPLY).await?;
    let notifies = stored.iter().map(|id| {
        let notify = &notify;
        async move { tx.execute(notify, &[id]).await }
    });
    futures::future::try_join_all(notifies).await?;
    let count = stored.len() as u64;
    work.replied.extend(stored);
    Ok(count)
}

/// The reply to `message_id`, unless it has expired by `now`.
pub async fn get(client: &impl GenericClient, now: u64, message_id: &str) -> Result<Option<Reply>> {
    let row = client
        .query_opt(
            "SELECT queue, body, attributes, replied_at FROM replies
             WHERE message_id = $1 AND expires_at > $2",
            &[&message_id, &int(now)],
        )
        .await?;
    row.map(|row| {
        Ok(Reply {
            message_id: message_id.to_owned(),
            queue: row.get(0),
            body: row.get(1),
            attributes: decode_attributes(row.get::<_, Option<&str>>(2))?,
            replied_at_ms: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
        })
    })
    .transpose()
}

/// Deletes the replies expired by `now`; returns how many.
pub async fn expire(tx: &Transaction<'_>, now: u64) -> Result<u64> {
    Ok(tx
        .execute("DELETE FROM replies WHERE expires_at <= $1", &[&int(now)])
        .await?)
}
