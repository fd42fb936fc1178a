//! The delivery contract's own statements on PostgreSQL, in plain SQL with nothing else (no
//! HTTP, no Wasm, no invocation log, no concurrency cap): consumers lease a batch (one `UPDATE`
//! that marks each message taken and counts its attempt) and delete it in the transaction that
//! leases their next batch, as a busy trigger does. Beside the strong plain queue
//! ([`super::plain`]), which deletes what it takes, it shows what the contract itself costs on
//! this database; beside one host's drain, what Sluice adds to it.
//!
//! Two table shapes, both measured:
//! - [`Shape::Indexed`], today's schema: a queue column and a `(queue, visible_at, id)` index
//!   the lease scans, so every lease writes index entries and every ack leaves dead ones the
//!   next scan steps over until a vacuum;
//! - [`Shape::Hot`]: one table per queue, only the primary key indexed, `fillfactor` room on
//!   each page: a lease writes no indexed column, so its update is heap-only (HOT) and pruned
//!   without a vacuum, and the scan walks the key in `id` order filtering on `visible_at`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::plain::{self, Producing};

/// A table layout for the lease-shaped drain.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Indexed,
    Hot,
}

impl Shape {
    fn setup(self) -> &'static str {
        match self {
            Shape::Indexed => {
                "DROP TABLE IF EXISTS floor_jobs;
                CREATE TABLE floor_jobs (
                    id         BIGSERIAL PRIMARY KEY,
                    queue      TEXT NOT NULL,
                    body       BYTEA NOT NULL,
                    visible_at BIGINT NOT NULL,
                    lease_id   BIGINT,
                    attempt    INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX floor_jobs_by_visibility ON floor_jobs(queue, visible_at, id);"
            }
            Shape::Hot => {
                "DROP TABLE IF EXISTS floor_jobs;
                CREATE TABLE floor_jobs (
                    id         BIGSERIAL PRIMARY KEY,
                    body       BYTEA NOT NULL,
                    visible_at BIGINT NOT NULL,
                    lease_id   BIGINT,
                    attempt    INTEGER NOT NULL DEFAULT 0
                ) WITH (fillfactor = 70);"
            }
        }
    }

    fn insert(self) -> &'static str {
        match self {
            Shape::Indexed => {
                "INSERT INTO floor_jobs (queue, body, visible_at)
                SELECT 'floor', b, 0 FROM unnest($1::bytea[]) AS b"
            }
            Shape::Hot => {
                "INSERT INTO floor_jobs (body, visible_at) SELECT b, 0 FROM unnest($1::bytea[]) AS b"
            }
        }
    }

    /// Leases up to `$3` visible messages for lease `$1` until `$2`, counting the attempt, the
    /// scan starting at the consumer's mark `$4` (see [`consume_leased`]; every message is
    /// inserted visible at 0, so the mark of the by-visibility index is `(0, $4)`). The
    /// taken ids are an array, not a subquery to join: prepared once, the statement runs on a
    /// generic plan, and a join's generic plan reads the whole table (its row estimate for
    /// `LIMIT $1` is a tenth of it), where `id = ANY(…)` stays a primary-key lookup.
    fn lease(self) -> &'static str {
        match self {
            Shape::Indexed => {
                "UPDATE floor_jobs SET lease_id = $1, visible_at = $2, attempt = attempt + 1
                WHERE id = ANY(ARRAY(SELECT id FROM floor_jobs
                    WHERE queue = 'floor' AND visible_at <= 1 AND (visible_at, id) >= (0, $4)
                    ORDER BY visible_at, id LIMIT $3 FOR UPDATE SKIP LOCKED))
                RETURNING id, body"
            }
            Shape::Hot => {
                "UPDATE floor_jobs SET lease_id = $1, visible_at = $2, attempt = attempt + 1
                WHERE id = ANY(ARRAY(SELECT id FROM floor_jobs WHERE visible_at <= 1
                    AND id >= $4 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED))
                RETURNING id, body"
            }
        }
    }
}

/// Acknowledges the messages lease `$2` still holds.
const ACK: &str = "DELETE FROM floor_jobs WHERE id = ANY($1) AND lease_id = $2";
/// Far past the bench: a leased message does not come back during it.
const LEASED_UNTIL: i64 = i64::MAX / 2;

async fn produce(
    url: &str,
    shape: Shape,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    signal: Option<Producing>,
) -> Result<()> {
    let client = plain::pg_connect(url).await?;
    plain::pg_produce_with(client, shape.insert(), messages, body_bytes, batch, signal).await
}

/// Lease-shaped consumers, each on a connection of its own: each transaction acknowledges the
/// batch the previous one leased and leases the next, until `total` messages are acknowledged.
/// Each scan starts at the first id the consumer's last full lease took, as the host's leases
/// start at their marks (`store::postgres::marks`); a short lease starts the next from the
/// front.
/// With a producer at once (`signal`), a consumer whose last lease came back short waits for
/// its next insert, so the batch it holds is acknowledged with the next lease rather than in a
/// commit of its own, and it never polls an empty table.
async fn consume_leased(
    url: &str,
    shape: Shape,
    consumers: usize,
    batch: usize,
    total: u64,
    signal: Option<Producing>,
) -> Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..consumers.max(1) {
        let (client, done, signal) = (plain::pg_connect(url).await?, done.clone(), signal.clone());
        tasks.spawn(async move {
            let mut client = client;
            let (lease, ack) = (
                client.prepare(shape.lease()).await?,
                client.prepare(ACK).await?,
            );
            let limit = batch.max(1) as i64;
            let (mut held, mut lease_id): (Vec<i64>, i64) = (Vec::new(), 0);
            let mut from = 0i64;
            let (mut seen, mut short) = (0, false);
            while !held.is_empty() || done.load(Ordering::Relaxed) < total {
                if let Some(signal) = &signal {
                    if short {
                        plain::more_than(signal, seen).await;
                    }
                    seen = plain::inserts(signal);
                }
                let tx = client.transaction().await?;
                let acked = if held.is_empty() {
                    0
                } else {
                    tx.execute(&ack, &[&held, &lease_id]).await?
                };
                lease_id = rand::random();
                let rows = tx
                    .query(&lease, &[&lease_id, &LEASED_UNTIL, &limit, &from])
                    .await?;
                tx.commit().await?;
                held = rows.iter().map(|row| row.get(0)).collect();
                short = held.len() < batch.max(1);
                from = plain::mark_after(held.iter().copied(), batch);
                done.fetch_add(acked, Ordering::Relaxed);
                if held.is_empty() && acked == 0 {
                    tokio::task::yield_now().await;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Drains a backlog of `messages` with `consumers` lease-shaped consumers on a fresh table of
/// `shape` in the database at `url`: the time of the drain alone.
pub async fn lease_drain(
    url: &str,
    shape: Shape,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
) -> Result<Duration> {
    plain::pg_connect(url)
        .await?
        .batch_execute(shape.setup())
        .await?;
    produce(url, shape, messages, body_bytes, batch, None).await?;
    let started = Instant::now();
    consume_leased(url, shape, consumers, batch, messages, None).await?;
    let took = started.elapsed();
    drop_table(url).await?;
    Ok(took)
}

/// The same consumers while one producer sends `messages` at once, as the strong plain
/// queue's concurrent run does: the time from the first insert to the last acknowledgement.
pub async fn lease_concurrent(
    url: &str,
    shape: Shape,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
) -> Result<Duration> {
    plain::pg_connect(url)
        .await?
        .batch_execute(shape.setup())
        .await?;
    let signal = plain::producing();
    let started = Instant::now();
    tokio::try_join!(
        produce(
            url,
            shape,
            messages,
            body_bytes,
            batch,
            Some(signal.clone())
        ),
        consume_leased(url, shape, consumers, batch, messages, Some(signal))
    )?;
    let took = started.elapsed();
    drop_table(url).await?;
    Ok(took)
}

async fn drop_table(url: &str) -> Result<()> {
    plain::pg_connect(url)
        .await?
        .batch_execute("DROP TABLE floor_jobs")
        .await?;
    Ok(())
}
