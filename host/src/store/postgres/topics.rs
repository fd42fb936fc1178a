//! Topics in PostgreSQL: create, read, delete, subscribe, and the fan-out (publishing into
//! every caught-up subscription, and a chunk of catch-up for one still replaying). Publishing
//! and catching up lock the topic's row, so on every host a topic's messages are numbered
//! without gaps and each subscription moves through them one transaction at a time.

use deadpool_postgres::{GenericClient, Transaction};

use super::messages::{self, Work};
use super::{Error, NewMessage, Result, count, int};
use crate::store::codec::{decode_attributes, encode_attributes};
use crate::store::topics::{
    CATCH_UP_CHUNK, FanOut, Filter, Published, ReplayFrom, SubscriptionRecord, TopicRecord,
    copy_attributes,
};

/// The PostgreSQL schema of topics (migration 6); see the SQLite schema for what each holds.
pub const SCHEMA_V6: &str = "
CREATE TABLE topics (
    name         TEXT PRIMARY KEY,
    retention_ms BIGINT NOT NULL,
    head         BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);
CREATE TABLE topic_messages (
    topic        TEXT NOT NULL REFERENCES topics(name) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    body         BYTEA NOT NULL,
    attributes   TEXT,
    priority     SMALLINT NOT NULL,
    group_key    TEXT,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (topic, seq)
);
CREATE INDEX topic_messages_by_time ON topic_messages(topic, published_at);
CREATE TABLE subscriptions (
    topic      TEXT NOT NULL REFERENCES topics(name) ON DELETE CASCADE,
    queue      TEXT NOT NULL REFERENCES queues(name),
    filter     TEXT NOT NULL,
    cursor     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic, queue)
);
CREATE INDEX subscriptions_by_queue ON subscriptions(queue);
";

/// Locks the topic's row until commit; its newest sequence number.
async fn lock_topic(tx: &Transaction<'_>, name: &str) -> Result<u64> {
    let row = tx
        .query_opt(
            &tx.prepare_cached("SELECT head FROM topics WHERE name = $1 FOR UPDATE")
                .await?,
            &[&name],
        )
        .await?
        .ok_or_else(|| Error::TopicNotFound(name.to_owned()))?;
    Ok(count(row.get(0)))
}

pub async fn create(tx: &Transaction<'_>, now: u64, name: &str, retention_ms: u64) -> Result<()> {
    let inserted = tx
        .execute(
            "INSERT INTO topics (name, retention_ms, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &int(retention_ms), &int(now)],
        )
        .await?;
    if inserted == 0 {
        return Err(Error::TopicExists(name.to_owned()));
    }
    Ok(())
}

async fn subscriptions(
    client: &impl GenericClient,
    topic: Option<&str>,
) -> Result<Vec<SubscriptionRecord>> {
    client
        .query(
            "SELECT topic, queue, filter, cursor, created_at FROM subscriptions
             WHERE $1::text IS NULL OR topic = $1 ORDER BY topic, queue",
            &[&topic],
        )
        .await?
        .into_iter()
        .map(|r| {
            let (topic, queue, filter): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            Ok(SubscriptionRecord {
                filter: serde_json::from_str(&filter).map_err(|e| {
                    Error::Unavailable(format!("filter of {topic} → {queue} is unreadable: {e}"))
                })?,
                topic,
                queue,
                cursor: count(r.get(3)),
                created_at_ms: count(r.get(4)),
            })
        })
        .collect()
}

pub async fn list(client: &impl GenericClient, name: Option<&str>) -> Result<Vec<TopicRecord>> {
    let mut topics: Vec<TopicRecord> = client
        .query(
            "SELECT name, retention_ms, created_at, head FROM topics
             WHERE $1::text IS NULL OR name = $1 ORDER BY name",
            &[&name],
        )
        .await?
        .into_iter()
        .map(|r| TopicRecord {
            name: r.get(0),
            retention_ms: count(r.get(1)),
            created_at_ms: count(r.get(2)),
            head: count(r.get(3)),
            subscriptions: Vec::new(),
        })
        .collect();
    for s in subscriptions(client, name).await? {
        if let Some(t) = topics.iter_mut().find(|t| t.name == s.topic) {
            t.subscriptions.push(s);
        }
    }
    Ok(topics)
}

pub async fn get(client: &impl GenericClient, name: &str) -> Result<TopicRecord> {
    list(client, Some(name))
        .await?
        .pop()
        .ok_or_else(|| Error::TopicNotFound(name.to_owned()))
}

pub async fn delete(tx: &Transaction<'_>, name: &str) -> Result<()> {
    if tx
        .execute("DELETE FROM topics WHERE name = $1", &[&name])
        .await?
        == 0
    {
        return Err(Error::TopicNotFound(name.to_owned()));
    }
    Ok(())
}

pub async fn subscribe(
    tx: &Transaction<'_>,
    work: &mut Work,
    topic: &str,
    queue: &str,
    filter: &serde_json::Value,
    from: ReplayFrom,
) -> Result<SubscriptionRecord> {
    Filter::parse(filter)?;
    work.settings(tx, queue).await?;
    let head = lock_topic(tx, topic).await?;
    let cursor = match from {
        ReplayFrom::Latest => head,
        ReplayFrom::Earliest => 0,
        ReplayFrom::Time(at) => tx
            .query_one(
                "SELECT max(seq) FROM topic_messages WHERE topic = $1 AND published_at < $2",
                &[&topic, &int(at)],
            )
            .await?
            .get::<_, Option<i64>>(0)
            .map_or(0, count),
    };
    tx.execute(
        "INSERT INTO subscriptions (topic, queue, filter, cursor, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (topic, queue) DO UPDATE SET filter = excluded.filter",
        &[
            &topic,
            &queue,
            &filter.to_string(),
            &int(cursor),
            &int(work.now),
        ],
    )
    .await?;
    subscriptions(tx, Some(topic))
        .await?
        .into_iter()
        .find(|s| s.queue == queue)
        .ok_or_else(|| Error::Unavailable("a subscription vanished in its transaction".into()))
}

pub async fn unsubscribe(tx: &Transaction<'_>, topic: &str, queue: &str) -> Result<()> {
    let deleted = tx
        .execute(
            "DELETE FROM subscriptions WHERE topic = $1 AND queue = $2",
            &[&topic, &queue],
        )
        .await?;
    if deleted == 0 {
        lock_topic(tx, topic).await?;
        return Err(Error::SubscriptionNotFound {
            topic: topic.to_owned(),
            queue: queue.to_owned(),
        });
    }
    Ok(())
}

/// The topic a queue subscribes to, if any (such a queue cannot be deleted).
pub async fn subscription_of(tx: &Transaction<'_>, queue: &str) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT topic FROM subscriptions WHERE queue = $1 ORDER BY topic LIMIT 1",
            &[&queue],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Publishes `messages` to `topic`: numbers and keeps them, and copies each into every
/// subscription that has caught up and whose filter it passes ([`FanOut`]). All or nothing.
pub async fn publish(
    tx: &Transaction<'_>,
    work: &mut Work,
    topic: &str,
    messages: Vec<NewMessage>,
) -> Result<Vec<Published>> {
    let head = lock_topic(tx, topic).await?;
    let mut fan = FanOut::new(topic, head, subscriptions(tx, Some(topic)).await?)?;
    // Every message kept in one statement (the columns as arrays), not one round trip each.
    let count = messages.len();
    let (mut seqs, mut bodies, mut attributes, mut priorities, mut groups) = (
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
    );
    for m in messages {
        seqs.push(int(fan.add(&m)));
        attributes.push(encode_attributes(&m.attributes)?);
        priorities.push(i16::from(m.priority));
        bodies.push(m.body);
        groups.push(m.group);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO topic_messages (topic, seq, body, attributes, priority, group_key,
                published_at)
             SELECT $1, m.seq, m.body, m.attributes, m.priority, m.group_key, $7
             FROM unnest($2::bigint[], $3::bytea[], $4::text[], $5::smallint[], $6::text[])
                AS m(seq, body, attributes, priority, group_key)",
        )
        .await?;
    tx.execute(
        &insert,
        &[
            &topic,
            &seqs,
            &bodies,
            &attributes,
            &priorities,
            &groups,
            &int(work.now),
        ],
    )
    .await?;
    let done = fan.finish();
    messages::enqueue_each(tx, work, done.copies).await?;
    tx.execute(
        "UPDATE topics SET head = $2 WHERE name = $1",
        &[&topic, &int(done.head)],
    )
    .await?;
    if !done.caught_up.is_empty() {
        tx.execute(
            "UPDATE subscriptions SET cursor = $2 WHERE topic = $1 AND queue = ANY($3)",
            &[&topic, &int(done.head), &done.caught_up],
        )
        .await?;
    }
    Ok(done.published)
}

pub async fn lagging(client: &impl GenericClient) -> Result<Vec<(String, String)>> {
    Ok(client
        .query(
            "SELECT s.topic, s.queue FROM subscriptions s JOIN topics t ON t.name = s.topic
             WHERE s.cursor < t.head ORDER BY s.topic, s.queue",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Copies the next chunk of history into a lagging subscription; true once caught up.
pub async fn catch_up(
    tx: &Transaction<'_>,
    work: &mut Work,
    topic: &str,
    queue: &str,
) -> Result<bool> {
    let head = lock_topic(tx, topic).await?;
    let Some(row) = tx
        .query_opt(
            "SELECT filter, cursor FROM subscriptions WHERE topic = $1 AND queue = $2",
            &[&topic, &queue],
        )
        .await?
    else {
        return Ok(true);
    };
    let cursor = count(row.get(1));
    if cursor >= head {
        return Ok(true);
    }
    let filter: String = row.get(0);
    let filter = Filter::parse(&serde_json::from_str(&filter).map_err(|e| {
        Error::Unavailable(format!("filter of {topic} → {queue} is unreadable: {e}"))
    })?)?;
    let rows = tx
        .query(
            "SELECT seq, body, attributes, priority, group_key FROM topic_messages
             WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&topic, &int(cursor), &int(CATCH_UP_CHUNK)],
        )
        .await?;
    // What retention removed is passed over.
    let mut cursor = if rows.is_empty() { head } else { cursor };
    let mut copies = Vec::new();
    for r in rows {
        let seq = count(r.get(0));
        let attributes: Option<String> = r.get(2);
        let attributes = decode_attributes(attributes.as_deref())?;
        cursor = seq;
        if filter.matches(&attributes) {
            copies.push(NewMessage {
                body: r.get(1),
                attributes: copy_attributes(topic, seq, &attributes),
                priority: u8::try_from(r.get::<_, i16>(3))
                    .unwrap_or(crate::store::DEFAULT_PRIORITY),
                group: r.get(4),
                ..NewMessage::default()
            });
        }
    }
    if !copies.is_empty() {
        messages::enqueue(tx, work, queue, copies).await?;
    }
    tx.execute(
        "UPDATE subscriptions SET cursor = $3 WHERE topic = $1 AND queue = $2",
        &[&topic, &queue, &int(cursor)],
    )
    .await?;
    Ok(cursor >= head)
}

/// Forgets every topic's messages older than its retention.
pub async fn expire(tx: &Transaction<'_>, now: u64) -> Result<u64> {
    Ok(tx
        .execute(
            "DELETE FROM topic_messages m USING topics t
             WHERE m.topic = t.name AND m.published_at < $1 - t.retention_ms",
            &[&int(now)],
        )
        .await?)
}
