//! The strong plain queue behind HTTP: [`super::plain`]'s tables, consumers and durability,
//! with the producer's batches arriving the way Sluice's do: the same JSON requests over a
//! loopback HTTP/1.1 connection, from the same client, each answered with its ids once it is
//! committed. The front is axum on the benchmark's runtime, as the in-process host is. Beside
//! the plain queue in-process it measures what taking producers over HTTP costs by itself, the
//! transport every Sluice producer uses; beside Sluice, what Sluice adds to a plain queue that
//! takes the same requests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use rusqlite::Connection;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::plain::{self, Producing, Run, Take, Turns};
use super::sqlite::{self, Due};
use crate::load::{BatchRequests, success_text};

/// Where a front puts a batch: one transaction, answered with the new ids once committed.
/// `sent` is when the client sent it, where the request says (the latency floor's requests do).
trait Insert: Send + Sync + 'static {
    fn insert(
        &self,
        bodies: Vec<String>,
        sent: Option<Instant>,
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;
}

/// The header a latency request carries: when it was sent, in microseconds since [`epoch`].
const SENT_US: &str = "x-sent-us";

/// The instant the benchmark's client and the front both measure `SENT_US` from (they share
/// one process and one clock).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A batch request, as Sluice's batch route takes it (the front reads only the bodies).
#[derive(Deserialize)]
struct Batch {
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    body: String,
}

/// A running front: its batch route's address, serving until dropped.
struct Front {
    url: String,
    stop: CancellationToken,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(insert: Arc<impl Insert>) -> Result<Front> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/messages/batch", post(enqueue))
        .with_state(insert);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned());
        if let Err(e) = serving.await {
            tracing::warn!(error = %e, "the plain queue's HTTP front stopped");
        }
    });
    Ok(Front {
        url: format!("http://{addr}/messages/batch"),
        stop,
    })
}

async fn enqueue<I: Insert>(
    State(queue): State<Arc<I>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let batch: Batch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let sent = headers
        .get(SENT_US)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .map(|us| epoch() + Duration::from_micros(us));
    let bodies = batch.messages.into_iter().map(|m| m.body).collect();
    match queue.insert(bodies, sent).await {
        Ok(ids) => axum::Json(serde_json::json!({ "ids": ids })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
    }
}

/// The SQLite peer's producer connection, taking turns with the consumer.
struct SqliteInsert {
    producer: Arc<Mutex<Connection>>,
    turns: Arc<Turns>,
}

impl Insert for SqliteInsert {
    async fn insert(&self, bodies: Vec<String>, _: Option<Instant>) -> Result<Vec<i64>> {
        let (producer, turns) = (self.producer.clone(), self.turns.clone());
        tokio::task::spawn_blocking(move || {
            let producer = producer.lock().unwrap_or_else(PoisonError::into_inner);
            plain::sqlite_insert(&producer, &turns, &bodies)
        })
        .await?
    }
}

/// The PostgreSQL peer's producer connection: one statement per batch, each announced to the
/// consumers.
struct PostgresInsert {
    client: tokio_postgres::Client,
    statement: tokio_postgres::Statement,
    signal: Producing,
}

impl Insert for PostgresInsert {
    async fn insert(&self, bodies: Vec<String>, _: Option<Instant>) -> Result<Vec<i64>> {
        let bodies: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
        let rows = self.client.query(&self.statement, &[&bodies]).await?;
        self.signal.send_modify(|p| p.inserts += 1);
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// The SQLite peer (see [`plain::sqlite`]) behind the front: `http` sends `messages` in
/// batches of `batch`, one request at a time, while the consumer takes them as `take` says.
pub async fn sqlite(
    http: &reqwest::Client,
    dir: &Path,
    take: Take,
    messages: u64,
    body_bytes: usize,
    batch: usize,
) -> Result<Run> {
    let path = plain::sqlite_table(dir, take)?;
    let turns = Arc::new(Turns::default());
    let front = serve(Arc::new(SqliteInsert {
        producer: Arc::new(Mutex::new(plain::sqlite_connection(&path)?)),
        turns: turns.clone(),
    }))
    .await?;
    let consumer = plain::sqlite_connection(&path)?;
    let requests = BatchRequests::new(batch as u64, messages, body_bytes)?;
    let started = Instant::now();
    let consumed = tokio::task::spawn_blocking({
        let turns = turns.clone();
        move || plain::sqlite_consume(&consumer, &turns, take, messages, batch)
    });
    let produced = requests.send(http, &front.url, messages).await;
    turns.finish();
    consumed.await??;
    produced?;
    Ok(Run {
        messages,
        took: started.elapsed(),
    })
}

/// The PostgreSQL peer (see [`plain::postgres`]) behind the front, on a fresh table of the
/// database at `url`, with `consumers` consumers.
pub async fn postgres(
    http: &reqwest::Client,
    url: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
) -> Result<Run> {
    let client = plain::pg_connect(url).await?;
    client.batch_execute(plain::PG_TABLE).await?;
    let statement = client.prepare(plain::PG_INSERT_RETURNING).await?;
    let signal = plain::producing();
    let front = serve(Arc::new(PostgresInsert {
        client,
        statement,
        signal: signal.clone(),
    }))
    .await?;
    let consumers = plain::pg_consumers(url, consumers).await?;
    let requests = BatchRequests::new(batch as u64, messages, body_bytes)?;
    let started = Instant::now();
    let produce = async {
        requests.send(http, &front.url, messages).await?;
        signal.send_modify(|p| p.finished = true);
        anyhow::Ok(())
    };
    // A producer that fails ends the run (the consumers would otherwise wait for it forever).
    tokio::try_join!(
        produce,
        plain::pg_consume(consumers, messages, batch, Some(signal.clone()))
    )?;
    let took = started.elapsed();
    drop(front);
    plain::pg_drop(url).await?;
    Ok(Run { messages, took })
}

/// [`postgres`] with one consumer and with `consumers`: the faster rate, as the in-process
/// peer counts its own.
pub async fn postgres_best(
    http: &reqwest::Client,
    url: &str,
    messages: u64,
    body_bytes: usize,
    batch: usize,
    consumers: usize,
) -> Result<f64> {
    let mut best = 0f64;
    for consumers in [1, consumers.max(1)] {
        let run = postgres(http, url, messages, body_bytes, batch, consumers).await?;
        best = best.max(run.rate());
    }
    Ok(best)
}

/// The latency floor's writer ([`sqlite::lease_on_commit`]) fed by the front: each request
/// goes to it with the time its client sent it and is answered once durable.
struct LatencyInsert {
    dues: Mutex<Option<mpsc::Sender<Due>>>,
}

impl LatencyInsert {
    /// No more requests: the writer ends once it has leased what it has.
    fn close(&self) {
        self.dues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl Insert for LatencyInsert {
    async fn insert(&self, bodies: Vec<String>, sent: Option<Instant>) -> Result<Vec<i64>> {
        let (committed, ids) = tokio::sync::oneshot::channel();
        let due = Due {
            at: sent.unwrap_or_else(Instant::now),
            messages: bodies.len(),
            committed: Some(committed),
        };
        self.dues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .context("the latency floor has closed")?
            .send(due)
            .map_err(|_| anyhow::anyhow!("the latency floor's writer stopped"))?;
        Ok(ids.await?)
    }
}

/// Send → start latencies of the SQLite floor ([`sqlite::measure_latency`]) with its requests
/// sent over HTTP by `http`, paced as the `latency` phase paces the host's: `per_request`
/// messages a request, `rate` messages a second for `duration`, at most 256 in flight, each
/// request's send time when it was due.
pub async fn latency(
    http: &reqwest::Client,
    dir: &Path,
    rate: f64,
    per_request: usize,
    duration: Duration,
    body_bytes: usize,
) -> Result<Vec<Duration>> {
    let per_request = per_request.max(1);
    let (dues, received) = mpsc::channel();
    let writer = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || sqlite::lease_on_commit(&dir, body_bytes, received)
    });
    let queue = Arc::new(LatencyInsert {
        dues: Mutex::new(Some(dues)),
    });
    let front = serve(queue.clone()).await?;
    let request = BatchRequests::new(per_request as u64, per_request as u64, body_bytes)?;
    let requests = ((rate * duration.as_secs_f64()) as u64 / per_request as u64).max(1);
    let interval = Duration::from_secs_f64(per_request as f64 / rate);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let start = tokio::time::Instant::now();
    let mut sending = tokio::task::JoinSet::new();
    for n in 0..requests {
        tokio::time::sleep_until(start + interval * n as u32).await;
        let sent = Instant::now();
        let permit = in_flight.clone().acquire_owned().await?;
        let send = http
            .post(&front.url)
            .header("content-type", "application/json")
            .header(
                SENT_US,
                sent.duration_since(epoch()).as_micros().to_string(),
            )
            .body(request.full());
        sending.spawn(async move {
            let _permit = permit;
            success_text(send.send().await?, "latency floor enqueue").await
        });
        while let Some(done) = sending.try_join_next() {
            done??;
        }
    }
    while let Some(done) = sending.join_next().await {
        done??;
    }
    queue.close();
    writer.await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sqlite_front_delivers_every_message_either_way_and_refuses_bad_json() {
        let http = reqwest::Client::new();
        for take in [Take::Delete, Take::Lease] {
            let dir = tempfile::TempDir::new().expect("temp dir");
            let run = sqlite(&http, dir.path(), take, 1_050, 64, 100)
                .await
                .expect("run");
            assert_eq!(run.messages, 1_050);
            let conn = Connection::open(dir.path().join("plain.db")).expect("open");
            let left: i64 = conn
                .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
                .expect("count");
            assert_eq!(left, 0, "{take:?}");
        }

        let dir = tempfile::TempDir::new().expect("temp dir");
        let path = plain::sqlite_table(dir.path(), Take::Delete).expect("table");
        let front = serve(Arc::new(SqliteInsert {
            producer: Arc::new(Mutex::new(
                plain::sqlite_connection(&path).expect("connection"),
            )),
            turns: Arc::new(Turns::default()),
        }))
        .await
        .expect("front");
        let answer = http
            .post(&front.url)
            .body(r#"{"messages":[{"body":"a"},{"body":"b"}]}"#)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), StatusCode::OK);
        let ids: serde_json::Value = answer.json().await.expect("json");
        assert_eq!(ids, serde_json::json!({ "ids": [1, 2] }));
        let refused = http
            .post(&front.url)
            .body(r#"{"messages":[{"bod"#)
            .send()
            .await
            .expect("send");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_latency_floor_behind_http_starts_every_message_it_was_sent() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let latencies = latency(
            &reqwest::Client::new(),
            dir.path(),
            2_000.0,
            10,
            Duration::from_millis(100),
            64,
        )
        .await
        .expect("measure");
        // 2,000 msg/s for 0.1 s in requests of 10: 20 requests, 200 messages, each started
        // after it was sent.
        assert_eq!(latencies.len(), 200);
        assert!(latencies.iter().all(|l| *l > Duration::ZERO));
    }
}
