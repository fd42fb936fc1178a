//! Topics in SQLite: create, read, delete, subscribe, and the fan-out (publishing into every
//! caught-up subscription, and a chunk of catch-up for one still replaying), each in the
//! writer's transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::messages;
use super::writer::{Tx, int};
use super::{Error, NewMessage, Result};
use crate::store::codec::{decode_attributes, encode_attributes};
use crate::store::topics::{
    CATCH_UP_CHUNK, FanOut, Filter, Published, ReplayFrom, SubscriptionRecord, TopicRecord,
    copy_attributes,
};

/// The SQLite schema of topics (migration 8). `topics.head` numbers published messages;
/// `topic_messages` keeps them for the topic's retention (walked by sequence, and by time for
/// the sweep and for a subscription starting at a time); each subscription's `cursor` is the
/// last sequence it has dealt with.
pub const SCHEMA_V8: &str = "
CREATE TABLE topics (
    name         TEXT PRIMARY KEY,
    retention_ms INTEGER NOT NULL,
    head         INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);
CREATE TABLE topic_messages (
    topic        TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    body         BLOB NOT NULL,
    attributes   TEXT,
    priority     INTEGER NOT NULL,
    group_key    TEXT,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (topic, seq)
);
CREATE INDEX topic_messages_by_time ON topic_messages(topic, published_at);
CREATE TABLE subscriptions (
    topic      TEXT NOT NULL,
    queue      TEXT NOT NULL,
    filter     TEXT NOT NULL,
    cursor     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic, queue)
);
CREATE INDEX subscriptions_by_queue ON subscriptions(queue);
";

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn topic_exists(conn: &Connection, name: &str) -> Result<(u64, u64)> {
    conn.prepare_cached("SELECT head, retention_ms FROM topics WHERE name = ?1")?
        .query_row(params![name], |r| Ok((u(r.get(0)?), u(r.get(1)?))))
        .optional()?
        .ok_or_else(|| Error::TopicNotFound(name.to_owned()))
}

pub fn create(tx: &mut Tx<'_>, name: &str, retention_ms: u64) -> Result<TopicRecord> {
    let inserted = tx
        .conn
        .prepare_cached(
            "INSERT INTO topics (name, retention_ms, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![name, int(retention_ms), int(tx.now)])?;
    if inserted == 0 {
        return Err(Error::TopicExists(name.to_owned()));
    }
    get(tx.conn, name)
}

fn subscriptions(conn: &Connection, topic: Option<&str>) -> Result<Vec<SubscriptionRecord>> {
    conn.prepare_cached(
        "SELECT topic, queue, filter, cursor, created_at FROM subscriptions
         WHERE ?1 IS NULL OR topic = ?1 ORDER BY topic, queue",
    )?
    .query_map(params![topic], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            u(r.get(3)?),
            u(r.get(4)?),
        ))
    })?
    .map(|row| {
        let (topic, queue, filter, cursor, created_at_ms) = row?;
        Ok(SubscriptionRecord {
            filter: serde_json::from_str(&filter).map_err(|e| {
                Error::Unavailable(format!("filter of {topic} → {queue} is unreadable: {e}"))
            })?,
            topic,
            queue,
            cursor,
            created_at_ms,
        })
    })
    .collect()
}

pub fn get(conn: &Connection, name: &str) -> Result<TopicRecord> {
    list_where(conn, Some(name))?
        .pop()
        .ok_or_else(|| Error::TopicNotFound(name.to_owned()))
}

pub fn list(conn: &Connection) -> Result<Vec<TopicRecord>> {
    list_where(conn, None)
}

fn list_where(conn: &Connection, name: Option<&str>) -> Result<Vec<TopicRecord>> {
    let mut topics: Vec<TopicRecord> = conn
        .prepare_cached(
            "SELECT name, retention_ms, created_at, head FROM topics
             WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        )?
        .query_map(params![name], |r| {
            Ok(TopicRecord {
                name: r.get(0)?,
                retention_ms: u(r.get(1)?),
                created_at_ms: u(r.get(2)?),
                head: u(r.get(3)?),
                subscriptions: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for s in subscriptions(conn, name)? {
        if let Some(t) = topics.iter_mut().find(|t| t.name == s.topic) {
            t.subscriptions.push(s);
        }
    }
    Ok(topics)
}

pub fn delete(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let conn = tx.conn;
    topic_exists(conn, name)?;
    conn.prepare_cached("DELETE FROM subscriptions WHERE topic = ?1")?
        .execute(params![name])?;
    conn.prepare_cached("DELETE FROM topic_messages WHERE topic = ?1")?
        .execute(params![name])?;
    conn.prepare_cached("DELETE FROM topics WHERE name = ?1")?
        .execute(params![name])?;
    Ok(())
}

/// Creates a subscription starting at `from`, or changes an existing one's filter (keeping
/// its place). Returns it, and whether it has history to catch up on.
pub fn subscribe(
    tx: &mut Tx<'_>,
    topic: &str,
    queue: &str,
    filter: &serde_json::Value,
    from: ReplayFrom,
) -> Result<SubscriptionRecord> {
    Filter::parse(filter)?;
    tx.settings(queue)?;
    let conn = tx.conn;
    let (head, _) = topic_exists(conn, topic)?;
    let cursor = match from {
        ReplayFrom::Latest => head,
        ReplayFrom::Earliest => 0,
        ReplayFrom::Time(at) => conn
            .prepare_cached(
                "SELECT max(seq) FROM topic_messages WHERE topic = ?1 AND published_at < ?2",
            )?
            .query_row(params![topic, int(at)], |r| r.get::<_, Option<i64>>(0))?
            .map_or(0, u),
    };
    let filter_text = filter.to_string();
    conn.prepare_cached(
        "INSERT INTO subscriptions (topic, queue, filter, cursor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (topic, queue) DO UPDATE SET filter = excluded.filter",
    )?
    .execute(params![topic, queue, filter_text, int(cursor), int(tx.now)])?;
    subscriptions(conn, Some(topic))?
        .into_iter()
        .find(|s| s.queue == queue)
        .ok_or_else(|| Error::Unavailable("a subscription vanished in its transaction".into()))
}

pub fn unsubscribe(tx: &mut Tx<'_>, topic: &str, queue: &str) -> Result<()> {
    let deleted = tx
        .conn
        .prepare_cached("DELETE FROM subscriptions WHERE topic = ?1 AND queue = ?2")?
        .execute(params![topic, queue])?;
    if deleted == 0 {
        topic_exists(tx.conn, topic)?;
        return Err(Error::SubscriptionNotFound {
            topic: topic.to_owned(),
            queue: queue.to_owned(),
        });
    }
    Ok(())
}

/// The topic a queue subscribes to, if any (such a queue cannot be deleted).
pub fn subscription_of(conn: &Connection, queue: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT topic FROM subscriptions WHERE queue = ?1 ORDER BY topic LIMIT 1")?
        .query_row(params![queue], |r| r.get(0))
        .optional()?)
}

/// Publishes `messages` to `topic`: numbers and keeps them, and copies each into every
/// subscription that has caught up and whose filter it passes ([`FanOut`]). All or nothing.
pub fn publish(tx: &mut Tx<'_>, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<Published>> {
    let conn = tx.conn;
    let (head, _) = topic_exists(conn, topic)?;
    let mut fan = FanOut::new(topic, head, subscriptions(conn, Some(topic))?)?;
    let now = tx.now;
    for m in messages {
        let seq = fan.add(&m);
        conn.prepare_cached(
            "INSERT INTO topic_messages (topic, seq, body, attributes, priority, group_key,
                published_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            topic,
            int(seq),
            m.body,
            encode_attributes(&m.attributes)?,
            m.priority,
            m.group,
            int(now)
        ])?;
    }
    let done = fan.finish();
    for (queue, messages) in done.copies {
        messages::enqueue(tx, &queue, messages)?;
    }
    let conn = tx.conn;
    conn.prepare_cached("UPDATE topics SET head = ?2 WHERE name = ?1")?
        .execute(params![topic, int(done.head)])?;
    for queue in &done.caught_up {
        conn.prepare_cached(
            "UPDATE subscriptions SET cursor = ?3 WHERE topic = ?1 AND queue = ?2",
        )?
        .execute(params![topic, queue, int(done.head)])?;
    }
    Ok(done.published)
}

/// Subscriptions behind their topic's head: (topic, queue).
pub fn lagging(conn: &Connection) -> Result<Vec<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.topic, s.queue FROM subscriptions s JOIN topics t ON t.name = s.topic
             WHERE s.cursor < t.head ORDER BY s.topic, s.queue",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Copies the next chunk of history into a subscription that is behind; true once it has
/// caught up (publishing then copies into it directly).
pub fn catch_up(tx: &mut Tx<'_>, topic: &str, queue: &str) -> Result<bool> {
    let conn = tx.conn;
    let (head, _) = topic_exists(conn, topic)?;
    let Some((filter, cursor)) = conn
        .prepare_cached("SELECT filter, cursor FROM subscriptions WHERE topic = ?1 AND queue = ?2")?
        .query_row(params![topic, queue], |r| {
            Ok((r.get::<_, String>(0)?, u(r.get(1)?)))
        })
        .optional()?
    else {
        return Ok(true);
    };
    if cursor >= head {
        return Ok(true);
    }
    let filter = Filter::parse(&serde_json::from_str(&filter).map_err(|e| {
        Error::Unavailable(format!("filter of {topic} → {queue} is unreadable: {e}"))
    })?)?;
    // Each kept message, with its attributes still encoded.
    let rows: Vec<(u64, NewMessage, Option<String>)> = conn
        .prepare_cached(
            "SELECT seq, body, attributes, priority, group_key FROM topic_messages
             WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT (?3 + 0)",
        )?
        .query_map(params![topic, int(cursor), int(CATCH_UP_CHUNK)], |r| {
            let message = NewMessage {
                body: r.get(1)?,
                priority: u8::try_from(r.get::<_, i64>(3)?)
                    .unwrap_or(crate::store::DEFAULT_PRIORITY),
                group: r.get(4)?,
                ..NewMessage::default()
            };
            Ok((u(r.get(0)?), message, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // What retention removed is passed over.
    let mut cursor = if rows.is_empty() { head } else { cursor };
    let mut copies = Vec::new();
    for (seq, message, attributes) in rows {
        let attributes = decode_attributes(attributes.as_deref())?;
        cursor = seq;
        if filter.matches(&attributes) {
            copies.push(NewMessage {
                attributes: copy_attributes(topic, seq, &attributes),
                ..message
            });
        }
    }
    if !copies.is_empty() {
        messages::enqueue(tx, queue, copies)?;
    }
    tx.conn
        .prepare_cached("UPDATE subscriptions SET cursor = ?3 WHERE topic = ?1 AND queue = ?2")?
        .execute(params![topic, queue, int(cursor)])?;
    Ok(cursor >= head)
}

/// Forgets every topic's messages older than its retention, up to `budget` of them; returns
/// how many.
pub fn expire(tx: &mut Tx<'_>, budget: u64) -> Result<u64> {
    let now = tx.now;
    Ok(tx
        .conn
        .prepare_cached(
            "DELETE FROM topic_messages WHERE rowid IN (
                SELECT m.rowid FROM topics t JOIN topic_messages m ON m.topic = t.name
                WHERE m.published_at < ?1 - t.retention_ms LIMIT (?2 + 0))",
        )?
        .execute(params![int(now), int(budget)])? as u64)
}
