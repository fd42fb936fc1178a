//! The benchmark's PostgreSQL floor: the plain `SKIP LOCKED` queue any PostgreSQL user would
//! write, on a table of its own in the given database, with no HTTP and no Wasm, each statement
//! prepared once per connection. Producers insert batches in one transaction each; consumers,
//! each in a transaction, take a batch with `FOR UPDATE SKIP LOCKED` and delete it. What Sluice
//! on PostgreSQL is compared against.
//!
//! Beside it, the same queue consumed the way Sluice's delivery contract needs, in plain SQL
//! with nothing else: a consumer leases a batch (one `UPDATE` per message, which marks it taken
//! and counts the attempt) and deletes it in the transaction that leases its next batch. The
//! ratio of the two is what the contract itself costs on this database, before HTTP, Wasm,
//! the invocation log and the concurrency cap add theirs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use anyhow::Result;

/// What the floor measured.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub messages: u64,
    /// Inserting every message, batch by batch, nothing consuming.
    pub insert: Duration,
    /// Draining the backlog with `consumers` clients.
    pub drain: Duration,
    /// One producer and the consumers at once, from the first insert to the last delete.
    pub concurrent: Duration,
    /// Draining the same backlog with lease-shaped consumers (see the module's doc), when
    /// asked for.
    pub lease_drain: Option<Duration>,
}

const SETUP: &str = "
DROP TABLE IF EXISTS floor_jobs;
CREATE TABLE floor_jobs (
    id         BIGSERIAL PRIMARY KEY,
    queue      TEXT NOT NULL,
    body       BYTEA NOT NULL,
    visible_at BIGINT NOT NULL,
    lease_id   BIGINT,
    attempt    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX floor_jobs_by_visibility ON floor_jobs(queue, visible_at, id);";
const INSERT: &str = "INSERT INTO floor_jobs (queue, body, visible_at)
    SELECT 'floor', b, 0 FROM unnest($1::bytea[]) AS b";
/// The taken ids as an array, not a subquery to join: prepared once, the statement runs on a
/// generic plan, and a join's generic plan reads the whole table (its row estimate for
/// `LIMIT $1` is a tenth of the table), where `id = ANY(…)` stays a primary-key lookup.
const TAKE: &str = "DELETE FROM floor_jobs WHERE id = ANY(ARRAY(
    SELECT id FROM floor_jobs WHERE queue = 'floor' AND visible_at <= 1
    ORDER BY visible_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING body";

/// Leases up to `$3` visible messages for lease `$1` until `$2`, counting the attempt (ids as
/// an array, as in [`TAKE`]).
const LEASE: &str = "UPDATE floor_jobs SET lease_id = $1, visible_at = $2, attempt = attempt + 1
    WHERE id = ANY(ARRAY(SELECT id FROM floor_jobs WHERE queue = 'floor' AND visible_at <= 1
        ORDER BY visible_at, id LIMIT $3 FOR UPDATE SKIP LOCKED))
    RETURNING id, body";
/// Acknowledges the messages lease `$2` still holds.
const ACK: &str = "DELETE FROM floor_jobs WHERE id = ANY($1) AND lease_id = $2";
/// Far past the bench: a leased message does not come back during it.
const LEASED_UNTIL: i64 = i64::MAX / 2;

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn produce(url: &str, messages: u64, body_bytes: usize, batch: usize) -> Result<()> {
    let mut client = connect(url).await?;
    let insert = client.prepare(INSERT).await?;
    let body = vec![b'x'; body_bytes];
    let mut sent = 0;
    while sent < messages {
        let n = (messages - sent).min(batch as u64) as usize;
        let bodies: Vec<&[u8]> = vec![body.as_slice(); n];
        let tx = client.transaction().await?;
        tx.execute(&insert, &[&bodies]).await?;
        tx.commit().await?;
        sent += n as u64;
    }
    Ok(())
}

/// Runs `consumers` tasks at once, each on a connection of its own and sharing the count of
/// messages done so far; returns when all have finished.
async fn run_consumers<F, Fut>(url: &str, consumers: usize, consumer: F) -> Result<()>
where
    F: Fn(tokio_postgres::Client, Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..consumers.max(1) {
        tasks.spawn(consumer(connect(url).await?, done.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Consumers take and delete batches until `total` messages are gone.
async fn consume(url: &str, consumers: usize, batch: usize, total: u64) -> Result<()> {
    run_consumers(url, consumers, |mut client, done| async move {
        let take = client.prepare(TAKE).await?;
        let limit = batch as i64;
        while done.load(Ordering::Relaxed) < total {
            let tx = client.transaction().await?;
            let taken = tx.query(&take, &[&limit]).await?.len() as u64;
            tx.commit().await?;
            if taken == 0 {
                // The producer is behind: yield instead of spinning on an empty queue.
                tokio::task::yield_now().await;
            }
            done.fetch_add(taken, Ordering::Relaxed);
        }
        Ok(())
    })
    .await
}

/// Lease-shaped consumers: each transaction acknowledges the batch the previous one leased
/// and leases the next, as a busy trigger does, until `total` messages are acknowledged.
async fn consume_leased(url: &str, consumers: usize, batch: usize, total: u64) -> Result<()> {
    run_consumers(url, consumers, |mut client, done| async move {
        let (lease, ack) = (client.prepare(LEASE).await?, client.prepare(ACK).await?);
        let limit = batch as i64;
        let (mut held, mut lease_id): (Vec<i64>, i64) = (Vec::new(), 0);
        while !held.is_empty() || done.load(Ordering::Relaxed) < total {
            let tx = client.transaction().await?;
            let acked = if held.is_empty() {
                0
            } else {
                tx.execute(&ack, &[&held, &lease_id]).await?
            };
            lease_id = rand::random();
            let rows = tx
                .query(&lease, &[&lease_id, &LEASED_UNTIL, &limit])
                .await?;
            tx.commit().await?;
            held = rows.iter().map(|row| row.get(0)).collect();
            done.fetch_add(acked, Ordering::Relaxed);
            if held.is_empty() && acked == 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    })
    .await
}

/// Measures insert, drain and concurrent produce+consume on the database at `url`, then, with
/// `lease_shape`, the lease-shaped drain.
pub async fn measure(
    url: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
    lease_shape: bool,
) -> Result<Floor> {
    connect(url).await?.batch_execute(SETUP).await?;
    let started = Instant::now();
    produce(url, messages, body_bytes, batch).await?;
    let insert = started.elapsed();
    let started = Instant::now();
    consume(url, consumers, batch, messages).await?;
    let drain = started.elapsed();

    let started = Instant::now();
    let producer = {
        let url = url.to_owned();
        tokio::spawn(async move { produce(&url, messages, body_bytes, batch).await })
    };
    consume(url, consumers, batch, messages).await?;
    producer.await??;
    let concurrent = started.elapsed();

    let mut lease_drain = None;
    if lease_shape {
        // On a fresh table, as the floor's drain was: the phases before left the dead index
        // entries of every message they deleted.
        connect(url).await?.batch_execute(SETUP).await?;
        produce(url, messages, body_bytes, batch).await?;
        let started = Instant::now();
        consume_leased(url, consumers, batch, messages).await?;
        lease_drain = Some(started.elapsed());
    }
    connect(url)
        .await?
        .batch_execute("DROP TABLE floor_jobs")
        .await?;
    Ok(Floor {
        messages,
        insert,
        drain,
        concurrent,
        lease_drain,
    })
}
