//! The load generators the phases share: message bodies that carry a sequence number, batch
//! producers, paced open-loop producers, and drains of a backlog through a trigger.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::host::Bench;
use crate::starts::track;

/// Width of the sequence number that starts every body, in ASCII digits.
pub(crate) const SEQ_DIGITS: usize = 16;

/// The peer-shaped producer's requests: a batch of `--batch-size` messages and the shorter last
/// one, encoded once before any clock starts, as the peers' producers allocate their bodies
/// once, so that what is timed is the host taking them, not the client building them.
pub(crate) struct BatchRequests {
    batch: u64,
    full: Bytes,
    last: Bytes,
}

impl BatchRequests {
    pub(crate) fn new(batch: u64, messages: u64, body_bytes: usize) -> anyhow::Result<Self> {
        let batch = batch.max(1);
        let encode = |n: u64| -> anyhow::Result<Bytes> {
            let messages: Vec<Value> = (0..n)
                .map(|s| json!({"body": body(s, body_bytes)}))
                .collect();
            Ok(serde_json::to_vec(&json!({ "messages": messages }))?.into())
        };
        Ok(BatchRequests {
            batch,
            full: encode(batch)?,
            last: encode(messages % batch)?,
        })
    }

    /// A full batch's request body.
    pub(crate) fn full(&self) -> Bytes {
        self.full.clone()
    }

    /// Sends `messages` messages to the batch route `url`, one request at a time, each waiting
    /// for its 2xx (its durable commit).
    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        url: &str,
        messages: u64,
    ) -> anyhow::Result<()> {
        let mut sent = 0;
        while sent < messages {
            let n = self.batch.min(messages - sent);
            let request = if n == self.batch {
                &self.full
            } else {
                &self.last
            };
            let response = http
                .post(url)
                .header("content-type", "application/json")
                .body(request.clone())
                .send()
                .await?;
            success_text(response, "batch enqueue").await?;
            sent += n;
        }
        Ok(())
    }
}

/// A response's body as text once its status is a success; otherwise an error naming `what`,
/// the status and the body.
pub(crate) async fn success_text(
    response: reqwest::Response,
    what: impl std::fmt::Display,
) -> anyhow::Result<String> {
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "{what}: {status}: {text}");
    Ok(text)
}

/// Up to an hour in nanoseconds, three significant digits; larger values saturate.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// The ids an enqueue answered: `{"id"}` for one message, `{"ids"}` for a batch.
pub(crate) fn answered_ids(answer: &Value) -> Vec<String> {
    let one = answer["id"].as_str().map(str::to_owned);
    let many = answer["ids"].as_array().into_iter().flatten();
    one.into_iter()
        .chain(many.filter_map(|id| id.as_str().map(str::to_owned)))
        .collect()
}

pub(crate) fn body(seq: u64, size: usize) -> String {
    let mut body = format!("{seq:0width$}", width = SEQ_DIGITS);
    body.extend(std::iter::repeat_n('x', size.saturating_sub(SEQ_DIGITS)));
    body
}

impl Bench {
    /// Posts the bench's `messages` as JSON batches of `batch_size` to `path` from
    /// `batch_clients` clients at once; returns messages per second.
    pub(crate) async fn post_batches(&self, path: &str) -> anyhow::Result<f64> {
        let a = &self.args;
        let batch = a.batch_size.max(1) as u64;
        let messages: Vec<Value> = (0..batch)
            .map(|i| json!({"body": body(i, a.body_bytes)}))
            .collect();
        let payload = Bytes::from(serde_json::to_vec(&json!({ "messages": messages }))?);
        let url = format!("{}{path}", self.url);
        let next = Arc::new(AtomicU64::new(0));
        let total = a.messages;
        let start = Instant::now();
        let mut clients = JoinSet::new();
        for _ in 0..a.batch_clients.max(1) {
            let (http, url, payload, next) = (
                self.http.clone(),
                url.clone(),
                payload.clone(),
                next.clone(),
            );
            clients.spawn(async move {
                while next.fetch_add(batch, Ordering::Relaxed) < total {
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(payload.clone())
                        .send()
                        .await?;
                    ensure!(
                        r.status().is_success(),
                        "batch post to {url}: {}",
                        r.status()
                    );
                    r.bytes().await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = clients.join_next().await {
            r??;
        }
        let sent = total.div_ceil(batch) * batch;
        Ok(sent as f64 / start.elapsed().as_secs_f64())
    }

    /// Drains a paused backlog through one trigger; returns msgs/s from first start to empty.
    pub(crate) async fn drain_once(
        &self,
        function: &str,
        queue: &str,
        n: u64,
    ) -> anyhow::Result<f64> {
        self.backlog(queue, n, &[]).await?;
        self.drain_backlog(function, queue, n).await
    }

    /// Drains the `n` messages already on `queue` through a paused trigger of `function`.
    pub(crate) async fn drain_backlog(
        &self,
        function: &str,
        queue: &str,
        n: u64,
    ) -> anyhow::Result<f64> {
        let a = &self.args;
        let tracker = track(queue, false);
        self.trigger(function, queue, a.batch_size, a.concurrency, false)
            .await?;
        let end = self.wait_empty(&[queue], self.drain_deadline()).await?;
        self.trigger(function, queue, a.batch_size, a.concurrency, true)
            .await?;
        let first = tracker.first_start().context("no handler started")?;
        Ok(n as f64 / end.duration_since(first).as_secs_f64())
    }

    /// Offered load on `queue`: `rate` messages a second for `duration`, sent `per_request` at
    /// a time (single enqueues when 1), each request on its own task (open loop, so a slow
    /// answer never delays the next send and hides latency); then waits until the queue is
    /// empty. Returns the histograms (µs) of handler start − 2xx and start − send, how many
    /// messages they cover, and the seconds from the first send to the empty queue.
    pub(crate) async fn paced(
        &self,
        queue: &str,
        rate: f64,
        per_request: u64,
        duration: Duration,
    ) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, u64, f64)> {
        let a = &self.args;
        let per_request = per_request.max(1);
        let requests_total = (rate * duration.as_secs_f64() / per_request as f64).max(1.0) as u64;
        let interval = per_request as f64 / rate;
        let tracker = track(queue, true);
        let url = match per_request {
            1 => format!("{}/v1/queues/{queue}/messages", self.url),
            _ => format!("{}/v1/queues/{queue}/messages/batch", self.url),
        };
        // At most this many requests in flight, so a host that falls behind sees a queue of
        // requests rather than ever more connections (past its connection limit it would close
        // some). A request's send time is when it was due, so waiting here counts as latency.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
        let start = tokio::time::Instant::now();
        let mut requests = JoinSet::new();
        for request in 0..requests_total {
            tokio::time::sleep_until(start + Duration::from_secs_f64(request as f64 * interval))
                .await;
            let sent = tracker.now();
            let permit = in_flight.clone().acquire_owned().await?;
            let (http, url, t) = (self.http.clone(), url.clone(), tracker.clone());
            let first = request * per_request;
            let seqs = first..first + per_request;
            let send = match per_request {
                1 => http.post(&url).body(body(first, a.body_bytes)),
                _ => {
                    let messages: Vec<Value> = seqs
                        .clone()
                        .map(|s| json!({"body": body(s, a.body_bytes)}))
                        .collect();
                    http.post(&url).json(&json!({ "messages": messages }))
                }
            };
            requests.spawn(async move {
                let _permit = permit;
                let r = send.send().await?;
                ensure!(r.status().is_success(), "enqueue: {}", r.status());
                let acked = t.now();
                t.sent(answered_ids(&r.json().await?), sent, acked);
                anyhow::Ok(())
            });
            while let Some(r) = requests.try_join_next() {
                r??;
            }
        }
        while let Some(r) = requests.join_next().await {
            r??;
        }
        self.wait_empty(&[queue], Duration::from_secs(60)).await?;
        let elapsed = start.elapsed().as_secs_f64();
        let (from_ack, from_send, n) = tracker.latencies();
        ensure!(n > 0, "no latency samples on {queue}");
        Ok((from_ack, from_send, n, elapsed))
    }
}
