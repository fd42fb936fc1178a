//! The benchmark's PostgreSQL floor: the plain `SKIP LOCKED` queue any PostgreSQL user would
//! write, on a table of its own in the given database, with no HTTP and no Wasm. Producers
//! insert batches in one transaction each; consumers, each in a transaction, take a batch with
//! `FOR UPDATE SKIP LOCKED` and delete it. What Sluice on PostgreSQL is compared against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use super::super::{Error, Result};

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
}

const SETUP: &str = "
DROP TABLE IF EXISTS floor_jobs;
CREATE TABLE floor_jobs (
    id         BIGSERIAL PRIMARY KEY,
    queue      TEXT NOT NULL,
    body       BYTEA NOT NULL,
    visible_at BIGINT NOT NULL
);
CREATE INDEX floor_jobs_by_visibility ON floor_jobs(queue, visible_at, id);";
const INSERT: &str = "INSERT INTO floor_jobs (queue, body, visible_at)
    SELECT 'floor', b, 0 FROM unnest($1::bytea[]) AS b";
const TAKE: &str = "DELETE FROM floor_jobs WHERE id IN (
    SELECT id FROM floor_jobs WHERE queue = 'floor' AND visible_at <= 1
    ORDER BY visible_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING body";

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn produce(url: &str, messages: u64, body_bytes: usize, batch: usize) -> Result<()> {
    let mut client = connect(url).await?;
    let body = vec![b'x'; body_bytes];
    let mut sent = 0;
    while sent < messages {
        let n = (messages - sent).min(batch as u64) as usize;
        let bodies: Vec<&[u8]> = vec![body.as_slice(); n];
        let tx = client.transaction().await?;
        tx.execute(INSERT, &[&bodies]).await?;
        tx.commit().await?;
        sent += n as u64;
    }
    Ok(())
}

/// Consumers take and delete batches until `total` messages are gone.
async fn consume(url: &str, consumers: usize, batch: usize, total: u64) -> Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..consumers.max(1) {
        let (url, done) = (url.to_owned(), done.clone());
        tasks.spawn(async move {
            let mut client = connect(&url).await?;
            let limit = batch as i64;
            while done.load(Ordering::Relaxed) < total {
                let tx = client.transaction().await?;
                let taken = tx.query(TAKE, &[&limit]).await?.len() as u64;
                tx.commit().await?;
                if taken == 0 {
                    // The producer is behind: yield instead of spinning on an empty queue.
                    tokio::task::yield_now().await;
                }
                done.fetch_add(taken, Ordering::Relaxed);
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| Error::Unavailable(e.to_string()))??;
    }
    Ok(())
}

/// Measures insert, drain and concurrent produce+consume on the database at `url`.
pub async fn measure(
    url: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
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
    producer
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))??;
    let concurrent = started.elapsed();
    connect(url)
        .await?
        .batch_execute("DROP TABLE floor_jobs")
        .await?;
    Ok(Floor {
        messages,
        insert,
        drain,
        concurrent,
    })
}
