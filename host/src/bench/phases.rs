//! The benchmark's phases, each against the in-process host (or, for restart and idle memory,
//! a `sluice serve` child process), and the helpers they share.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::BenchArgs;
use super::components::{self, Components, Polyglot};
use super::report::Report;
use crate::config::Config;
use crate::executor::{Compiler, Executor, ExecutorConfig, KEEP_RESIDENT_BYTES};
use crate::functions::FunctionConfig;
use crate::server::Host;
use crate::store::sqlite::floor;
use crate::store::{DEFAULT_PRIORITY, Message, NewMessage, Store};

/// Sequential request-reply round trips of the reply phase.
const REPLY_ROUND_TRIPS: u64 = 1_000;
/// Width of the sequence number that starts every body, in ASCII digits.
const SEQ_DIGITS: usize = 16;

/// Runs the benchmark; prints the table and writes the JSON file.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let args = args.effective();
    let began = Instant::now();
    let components = components::load(args.components.as_deref(), args.wasm_target_dir.as_deref())?;
    let tmp = match &args.data_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("sluice-bench")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("sluice-bench").tempdir()?,
    };
    let mut report = Report::default();
    let scratch = match &args.database {
        Some(url) => Some(crate::store::testdb::TestDatabase::create_on(url).await),
        None => None,
    };
    let bench = Bench::start(
        tmp.path().join("host"),
        &args,
        scratch.as_ref().map(|db| db.url.clone()),
    )
    .await?;

    let mut enqueue_rate = None;
    if args.wants("enqueue") {
        enqueue_rate = Some(bench.enqueue(&mut report).await?);
    }
    if args.wants("topics") {
        bench.topics(&mut report, enqueue_rate).await?;
    }
    let mut drain_rate = None;
    if args.wants("drain") {
        drain_rate = Some(bench.drain(&mut report, &components).await?);
    }
    if args.wants("pull") {
        bench.pull(&mut report, drain_rate).await?;
    }
    if args.wants("order") {
        bench.order(&mut report, &components, drain_rate).await?;
    }
    if args.wants("reply") {
        bench.reply(&mut report, &components).await?;
    }
    if args.wants("sqs") {
        super::sqs::phase(
            &mut report,
            &bench.store,
            &bench.sqs,
            &args,
            args.sqs_clients,
        )
        .await?;
    }
    let mut saturation_rate = None;
    if args.wants("steady") {
        saturation_rate = Some(bench.steady(&mut report, &components).await?);
    }
    if args.wants("chain") {
        bench.chain(&mut report, &components).await?;
    }
    let mut e2e_rate = None;
    if args.wants("e2e") {
        e2e_rate = Some(bench.e2e(&components).await?);
    }
    let mut paced = None;
    if args.wants("latency") {
        paced = Some(bench.latency(&mut report, &components, e2e_rate).await?);
    }
    if args.wants("outbound") {
        bench.outbound(&mut report, &components).await?;
    }
    if args.wants("hostile") {
        bench.hostile(&mut report, &components).await?;
    }
    if args.wants("depth") {
        bench.depth(&mut report).await?;
    }
    bench.stop().await;
    if args.wants("overhead") {
        overhead(
            &mut report,
            &args,
            &components,
            &tmp.path().join("overhead"),
        )
        .await?;
    }
    if args.wants("floor") {
        let floor = on_floor(&args, &tmp.path().join("floor"), floor::measure).await?;
        let rate = floor.messages as f64 / floor.drain.as_secs_f64();
        report.add(
            "floor.insert_msgs_per_s",
            floor.messages as f64 / floor.insert.as_secs_f64(),
            "msg/s",
        );
        report.add("floor.drain_msgs_per_s", rate, "msg/s");
        if let Some(drain) = drain_rate {
            report.target("drain.ratio_to_floor", drain / rate, "x", ">=", 0.5);
        }
        if let Some(saturation) = saturation_rate {
            // Issue 12 asked for 207k enqueued + handled against a 204k floor on its machine:
            // as a ratio, so that it carries to another machine.
            report.target(
                "saturation.enqueued_plus_handled_to_floor",
                saturation / rate,
                "x",
                ">=",
                207.0 / 204.0,
            );
        }
    }
    if let Some(paced) = paced {
        latency_floor(
            &mut report,
            &args,
            &paced,
            &tmp.path().join("latency-floor"),
        )
        .await?;
    }
    if let Some(rate) = e2e_rate {
        e2e_peers(&mut report, &args, rate, &tmp.path().join("e2e-peer")).await?;
    }
    if let Some(url) = &args.database
        && args.wants("hosts")
    {
        super::hosts::run(
            &mut report,
            &args,
            &components,
            url,
            &tmp.path().join("hosts"),
        )
        .await?;
    }
    if args.wants("backlog") {
        backlog(
            &mut report,
            &args,
            &components,
            drain_rate,
            &tmp.path().join("backlog"),
        )
        .await?;
    }
    if args.wants("restart") {
        restart(&mut report, &args, &components, &tmp.path().join("restart")).await?;
    }
    // Opt-in: it builds Python and JavaScript components with their own toolchains and compiles
    // interpreter-sized components, minutes on a small machine.
    if args.only.iter().any(|p| p == "polyglot") {
        let polyglot_components =
            components::load_polyglot(args.components.as_deref(), args.wasm_target_dir.as_deref())?;
        polyglot(
            &mut report,
            &args,
            &components,
            &polyglot_components,
            &tmp.path().join("polyglot"),
        )
        .await?;
    }

    report.print();
    if let Some(path) = &args.json {
        let config = json!({
            "messages": args.messages,
            "body_bytes": args.body_bytes,
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "batch_clients": args.batch_clients,
            "sqs_clients": args.sqs_clients,
            "single_clients": args.single_clients,
            "rate": args.rate,
            "duration_s": args.duration.as_secs_f64(),
            "functions": args.functions,
            "polyglot_functions": args.polyglot_functions,
            "durability": args.durability,
            "quick": args.quick,
        });
        let json = report.json(config, began.elapsed());
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Per-queue record of handler starts: the first, how many messages, and per sequence number
/// when the message was sent, answered (committed) and started.
struct Tracker {
    queue: String,
    base: Instant,
    first_start: AtomicU64,
    started: AtomicU64,
    sent_at: Vec<AtomicU64>,
    acked_at: Vec<AtomicU64>,
    start_at: Vec<AtomicU64>,
}

impl Tracker {
    fn new(queue: &str, capacity: usize) -> Arc<Tracker> {
        let zeros = || (0..capacity).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Tracker {
            queue: queue.to_owned(),
            base: Instant::now(),
            first_start: AtomicU64::new(0),
            started: AtomicU64::new(0),
            sent_at: zeros(),
            acked_at: zeros(),
            start_at: zeros(),
        })
    }

    /// Nanoseconds since `base`, never 0 (0 means "not yet").
    fn now(&self) -> u64 {
        (self.base.elapsed().as_nanos() as u64).max(1)
    }

    fn observe(&self, batch: &[Message]) {
        let now = self.now();
        let _ = self
            .first_start
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.started
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for m in batch {
            if let Some(slot) = seq_of(&m.body).and_then(|s| self.start_at.get(s)) {
                // The first delivery only: a retry's start is not this message's latency.
                let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    fn first_start(&self) -> Option<Instant> {
        match self.first_start.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n)),
        }
    }

    /// Histograms (µs) of start − 2xx and start − send over every message with all three times.
    fn latencies(&self) -> (Histogram<u64>, Histogram<u64>, u64) {
        let mut from_ack = histogram();
        let mut from_send = histogram();
        let mut n = 0;
        for i in 0..self.start_at.len() {
            let (sent, acked, start) = (
                self.sent_at[i].load(Ordering::Relaxed),
                self.acked_at[i].load(Ordering::Relaxed),
                self.start_at[i].load(Ordering::Relaxed),
            );
            if sent == 0 || acked == 0 || start == 0 {
                continue;
            }
            n += 1;
            from_ack.saturating_record(start.saturating_sub(acked) / 1000);
            from_send.saturating_record(start.saturating_sub(sent) / 1000);
        }
        (from_ack, from_send, n)
    }
}

/// Invocations the `outbound` phase's trigger runs at once, and how long its upstream takes.
const OUTBOUND_CONCURRENCY: u32 = 256;
const UPSTREAM_LATENCY: Duration = Duration::from_millis(50);

/// An HTTP server on loopback that answers every request with 200 after `latency`, as a slow
/// API would; it serves until the process ends.
async fn slow_upstream(latency: Duration) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(latency).await;
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Samples this process's thread count and resident memory every 100 ms until stopped; gives
/// the largest of each.
struct ThreadSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    samples: tokio::task::JoinHandle<(u64, u64)>,
}

impl ThreadSampler {
    fn start() -> ThreadSampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let samples = tokio::spawn(async move {
            let (mut threads, mut rss) = (0, 0);
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        let (t, r) = threads_and_rss();
                        threads = threads.max(t);
                        rss = rss.max(r);
                    }
                    _ = &mut stopped => return (threads, rss),
                }
            }
        });
        ThreadSampler { stop, samples }
    }

    /// The largest thread count and resident bytes seen.
    async fn stop(self) -> (u64, u64) {
        let _ = self.stop.send(());
        self.samples.await.unwrap_or_default()
    }
}

/// `Threads:` and `VmRSS:` of /proc/self/status (bytes); zeros where it cannot be read.
fn threads_and_rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:") * 1024)
}

/// Up to an hour in nanoseconds, three significant digits; larger values saturate.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

fn seq_of(body: &[u8]) -> Option<usize> {
    std::str::from_utf8(body.get(..SEQ_DIGITS)?)
        .ok()?
        .parse()
        .ok()
}

pub(super) fn body(seq: u64, size: usize) -> String {
    let mut body = format!("{seq:0width$}", width = SEQ_DIGITS);
    body.extend(std::iter::repeat_n('x', size.saturating_sub(SEQ_DIGITS)));
    body
}

/// The trackers the process-wide start observer feeds.
fn trackers() -> &'static RwLock<Vec<Arc<Tracker>>> {
    static TRACKERS: OnceLock<RwLock<Vec<Arc<Tracker>>>> = OnceLock::new();
    TRACKERS.get_or_init(|| {
        crate::dispatch::observe_handler_starts(Arc::new(|queue, batch| {
            let trackers = trackers().read().unwrap_or_else(|e| e.into_inner());
            for t in trackers.iter().filter(|t| t.queue == queue) {
                t.observe(batch);
            }
        }));
        RwLock::new(Vec::new())
    })
}

fn track(queue: &str, capacity: usize) -> Arc<Tracker> {
    let tracker = Tracker::new(queue, capacity);
    let mut all = trackers().write().unwrap_or_else(|e| e.into_inner());
    all.retain(|t| t.queue != queue);
    all.push(tracker.clone());
    tracker
}

/// The admin token of the benchmark's throwaway hosts; they live on temporary data dirs and
/// listen on loopback only.
const BENCH_TOKEN: &str = "sluice-bench-token";

/// An HTTP client that authenticates as the benchmark's admin.
pub(super) fn authorized_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {BENCH_TOKEN}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// The in-process host and an HTTP client for it.
struct Bench {
    args: BenchArgs,
    url: String,
    http: reqwest::Client,
    store: Store,
    /// The host's SQS endpoint, with a key pair of an admin token.
    sqs: super::sqs::SqsClient,
    shutdown: CancellationToken,
    /// The host serving until `shutdown`; it settles in-flight batches before it ends.
    server: tokio::task::JoinHandle<Result<(), crate::server::Error>>,
}

impl Bench {
    async fn start(
        data_dir: std::path::PathBuf,
        args: &BenchArgs,
        database: Option<String>,
    ) -> anyhow::Result<Bench> {
        let listen: SocketAddr = "127.0.0.1:0".parse()?;
        let mut config = Config::new(data_dir, listen);
        config.database = database;
        config.admin_token = Some(BENCH_TOKEN.to_owned());
        // As `sluice serve` does (the benchmark runs in the `sluice` binary).
        config.compiler = Compiler::this_binary();
        let host = Host::open(&config).await?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let sqs_listener = tokio::net::TcpListener::bind(listen).await?;
        let sqs_addr = sqs_listener.local_addr()?;
        let keys = host
            .state
            .auth
            .create("bench sqs", vec!["admin".to_owned()], true)
            .await?;
        let sqs = super::sqs::SqsClient {
            url: format!("http://{sqs_addr}/"),
            host: sqs_addr.to_string(),
            key: keys.sqs_access_key_id.context("no SQS key id")?,
            secret: keys.sqs_secret_access_key.context("no SQS secret")?,
            http: reqwest::Client::new(),
        };
        let host = host.with_sqs(sqs_listener);
        let store = host.state.store.clone();
        let shutdown = host.shutdown.clone();
        let server = tokio::spawn(host.serve(
            listener,
            config.connections.clone(),
            shutdown.clone().cancelled_owned(),
        ));
        // Touch the observer so it is installed before any trigger runs.
        drop(trackers().read());
        Ok(Bench {
            args: args.clone(),
            url: format!("http://{addr}"),
            http: authorized_client()?,
            store,
            sqs,
            shutdown,
            server,
        })
    }

    async fn stop(self) {
        self.shutdown.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("bench host: {err}"),
            Err(err) => eprintln!("bench host: {err}"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "{method} {path}: {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn queue(&self, name: &str, settings: Value) -> anyhow::Result<()> {
        let mut body = settings;
        body["name"] = json!(name);
        self.call(reqwest::Method::POST, "/v1/queues", Some(body))
            .await?;
        Ok(())
    }

    async fn deploy(&self, name: &str, wasm: &[u8], query: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/v1/functions/{name}?{query}", self.url))
            .header("content-type", "application/wasm")
            .body(wasm.to_vec())
            .send()
            .await?;
        let status = response.status();
        ensure!(
            status.is_success(),
            "deploy {name}: {status}: {}",
            response.text().await?
        );
        Ok(())
    }

    async fn trigger(
        &self,
        function: &str,
        queue: &str,
        batch: u32,
        concurrency: u32,
        paused: bool,
    ) -> anyhow::Result<()> {
        let body = json!({
            "queue": queue, "batch_size": batch, "max_wait_ms": 0,
            "max_concurrency": concurrency, "paused": paused,
        });
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/functions/{function}/trigger"),
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// Puts `n` messages on `queue` straight through the store (the backlog is not measured).
    async fn backlog(
        &self,
        queue: &str,
        n: u64,
        attributes: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        self.shaped_backlog(queue, n, attributes, |_| (DEFAULT_PRIORITY, None))
            .await
    }

    /// Like [`Bench::backlog`], giving message `seq` the priority and group `shape(seq)`.
    async fn shaped_backlog(
        &self,
        queue: &str,
        n: u64,
        attributes: &[(&str, &str)],
        shape: impl Fn(u64) -> (u8, Option<String>),
    ) -> anyhow::Result<()> {
        let attributes: Vec<(String, String)> = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut seq = 0;
        while seq < n {
            let chunk: Vec<NewMessage> = (seq..n.min(seq + 1000))
                .map(|s| {
                    let (priority, group) = shape(s);
                    NewMessage {
                        body: body(s, self.args.body_bytes).into_bytes(),
                        attributes: attributes.clone(),
                        priority,
                        group,
                        ..NewMessage::default()
                    }
                })
                .collect();
            seq += chunk.len() as u64;
            self.store.enqueue(queue, chunk).await?;
        }
        Ok(())
    }

    /// Waits until `queues` hold no message at all (visible, delayed or in flight); returns when.
    async fn wait_empty(&self, queues: &[&str], deadline: Duration) -> anyhow::Result<Instant> {
        let end = Instant::now() + deadline;
        for queue in queues {
            // An index probe while the backlog is large, then the full count. Every 10 ms, not
            // faster: on PostgreSQL the probe walks the index entries of every message acked
            // since the last vacuum, and probing as fast as the drain would load the database
            // it measures (the end time is late by at most the 10 ms in a drain of seconds).
            while self.store.visible_count(queue, 1).await? > 0 {
                ensure!(
                    Instant::now() < end,
                    "queue {queue} did not drain within {deadline:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            loop {
                let s = self.store.get_queue(queue).await?.stats;
                if s.visible + s.delayed + s.in_flight == 0 {
                    break;
                }
                ensure!(
                    Instant::now() < end,
                    "queue {queue} did not drain within {deadline:?}"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(Instant::now())
    }

    fn drain_deadline(&self) -> Duration {
        Duration::from_secs(60) + Duration::from_millis(self.args.messages / 5)
    }

    /// HTTP batch enqueue (4 × 100) and single-message enqueue (64 clients).
    async fn enqueue(&self, report: &mut Report) -> anyhow::Result<f64> {
        let a = &self.args;
        self.queue("bench-enqueue", json!({})).await?;
        let rate = self
            .post_batches("/v1/queues/bench-enqueue/messages/batch")
            .await?;
        report.target("enqueue.batch_msgs_per_s", rate, "msg/s", ">=", 150_000.0);
        self.store.purge("bench-enqueue").await?;

        let url = format!("{}/v1/queues/bench-enqueue/messages", self.url);
        let payload = Bytes::from(body(0, a.body_bytes));
        let done = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + a.duration;
        let start = Instant::now();
        let mut clients = JoinSet::new();
        for _ in 0..a.single_clients.max(1) {
            let (http, url, payload, done) = (
                self.http.clone(),
                url.clone(),
                payload.clone(),
                done.clone(),
            );
            clients.spawn(async move {
                while Instant::now() < end {
                    let r = http.post(&url).body(payload.clone()).send().await?;
                    ensure!(r.status().is_success(), "enqueue: {}", r.status());
                    r.bytes().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = clients.join_next().await {
            r??;
        }
        report.target(
            "enqueue.single_msgs_per_s",
            done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
            "msg/s",
            ">=",
            15_000.0,
        );
        self.store.purge("bench-enqueue").await?;
        Ok(rate)
    }

    /// Fan-out: publishing to a topic with [`FANOUT_QUEUES`] subscribed queues, the same
    /// batches and clients as the batch enqueue; the ratio to that enqueue in the same run is
    /// the cost of the copies.
    async fn topics(&self, report: &mut Report, enqueue_rate: Option<f64>) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/v1/topics",
            Some(json!({"name": "bench-topic"})),
        )
        .await?;
        let queues: Vec<String> = (0..FANOUT_QUEUES)
            .map(|i| format!("bench-fanout-{i}"))
            .collect();
        for queue in &queues {
            self.queue(queue, json!({})).await?;
            self.call(
                reqwest::Method::PUT,
                &format!("/v1/topics/bench-topic/subscriptions/{queue}"),
                Some(json!({})),
            )
            .await?;
        }
        let rate = self
            .post_batches("/v1/topics/bench-topic/messages/batch")
            .await?;
        report.add("topics.fanout_10.publish_msgs_per_s", rate, "msg/s");
        report.add(
            "topics.fanout_10.copies_per_s",
            rate * FANOUT_QUEUES as f64,
            "msg/s",
        );
        if let Some(enqueue) = enqueue_rate {
            report.add("topics.fanout_10.publish_to_enqueue", rate / enqueue, "x");
        }
        for queue in &queues {
            self.store.unsubscribe("bench-topic", queue).await?;
            self.store.purge(queue).await?;
        }
        Ok(())
    }

    /// Request-reply: [`REPLY_ROUND_TRIPS`] requests one after another, each a single enqueue
    /// with `Sluice-Reply-Timeout-Ms` answered by `examples/reply` (batch 1) through its
    /// outbox; the time from sending the request to holding the reply, which spans the enqueue's
    /// commit, the wake-up, a lease, a fresh instance, the settle's commit with the reply, and
    /// the waiter's wake-up.
    async fn reply(&self, report: &mut Report, c: &Components) -> anyhow::Result<()> {
        self.queue("bench-reply", json!({})).await?;
        self.deploy("bench-quote", &c.reply, "").await?;
        self.trigger("bench-quote", "bench-reply", 1, 1, false)
            .await?;
        let url = format!("{}/v1/queues/bench-reply/messages", self.url);
        let mut round_trips = Histogram::<u64>::new(3)?;
        let rounds = if self.args.quick {
            100
        } else {
            REPLY_ROUND_TRIPS
        };
        for qty in 0..rounds {
            let body = format!(r#"{{"sku": "C-3", "qty": {}}}"#, qty % 1000 + 1);
            let started = Instant::now();
            let answer = self
                .http
                .post(&url)
                .header("sluice-reply-timeout-ms", "10000")
                .body(body)
                .send()
                .await?;
            let status = answer.status();
            let reply: Value = answer.json().await?;
            ensure!(status.is_success(), "request-reply: {status}: {reply}");
            round_trips.record(started.elapsed().as_micros() as u64)?;
        }
        report.latency("reply.round_trip", &round_trips, None);
        Ok(())
    }

    /// Posts the bench's `messages` as JSON batches of `batch_size` to `path` from
    /// `batch_clients` clients at once; returns messages per second.
    async fn post_batches(&self, path: &str) -> anyhow::Result<f64> {
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
    async fn drain_once(&self, function: &str, queue: &str, n: u64) -> anyhow::Result<f64> {
        self.backlog(queue, n, &[]).await?;
        self.drain_backlog(function, queue, n).await
    }

    /// Drains the `n` messages already on `queue` through a paused trigger of `function`.
    async fn drain_backlog(&self, function: &str, queue: &str, n: u64) -> anyhow::Result<f64> {
        let a = &self.args;
        let tracker = track(queue, 0);
        self.trigger(function, queue, a.batch_size, a.concurrency, false)
            .await?;
        let end = self.wait_empty(&[queue], self.drain_deadline()).await?;
        self.trigger(function, queue, a.batch_size, a.concurrency, true)
            .await?;
        let first = tracker.first_start().context("no handler started")?;
        Ok(n as f64 / end.duration_since(first).as_secs_f64())
    }

    async fn drain(&self, report: &mut Report, c: &Components) -> anyhow::Result<f64> {
        let a = &self.args;
        self.queue("bench-drain", json!({})).await?;
        self.deploy("bench-sum", &c.sum, "").await?;
        self.trigger(
            "bench-sum",
            "bench-drain",
            a.batch_size,
            a.concurrency,
            true,
        )
        .await?;
        let rate = self
            .drain_once("bench-sum", "bench-drain", a.messages)
            .await?;
        report.target("drain.msgs_per_s", rate, "msg/s", ">=", 100_000.0);
        Ok(rate)
    }

    /// The cost of priorities and ordered groups: the drain's backlog with priorities spread
    /// over 0–9, and spread over [`ORDER_GROUPS`] groups, each drained by the same trigger as
    /// the plain drain.
    async fn order(
        &self,
        report: &mut Report,
        c: &Components,
        drain_rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let a = &self.args;
        self.deploy("bench-sum-order", &c.sum, "").await?;
        for queue in ["bench-priorities", "bench-groups"] {
            self.queue(queue, json!({})).await?;
        }
        self.shaped_backlog("bench-priorities", a.messages, &[], |s| {
            ((s % 10) as u8, None)
        })
        .await?;
        let priorities = self
            .drain_backlog("bench-sum-order", "bench-priorities", a.messages)
            .await?;
        report.add("order.priorities.drain_msgs_per_s", priorities, "msg/s");
        self.shaped_backlog("bench-groups", a.messages, &[], |s| {
            (DEFAULT_PRIORITY, Some(format!("g{}", s % ORDER_GROUPS)))
        })
        .await?;
        let groups = self
            .drain_backlog("bench-sum-order", "bench-groups", a.messages)
            .await?;
        report.add("order.groups.drain_msgs_per_s", groups, "msg/s");
        if let Some(drain) = drain_rate {
            report.add("order.priorities.to_drain", priorities / drain, "x");
            report.add("order.groups.to_drain", groups / drain, "x");
        }
        Ok(())
    }

    /// Pull consumers over HTTP: the same backlog as the drain, received in batches and acked by
    /// receipt by `concurrency` clients; then long polls woken by single enqueues.
    async fn pull(&self, report: &mut Report, drain_rate: Option<f64>) -> anyhow::Result<()> {
        let a = &self.args;
        let queue = "bench-pull";
        self.queue(queue, json!({})).await?;
        self.backlog(queue, a.messages, &[]).await?;
        let received = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut consumers = JoinSet::new();
        for _ in 0..a.concurrency {
            let (http, received) = (self.http.clone(), received.clone());
            let (receive, ack) = (
                format!("{}/v1/queues/{queue}/messages/receive", self.url),
                format!("{}/v1/queues/{queue}/messages/ack", self.url),
            );
            let batch = a.batch_size;
            consumers.spawn(async move {
                loop {
                    let r = http
                        .post(&receive)
                        .json(&json!({"max_messages": batch}))
                        .send()
                        .await?;
                    ensure!(r.status().is_success(), "receive: {}", r.status());
                    let answer: Value = r.json().await?;
                    let receipts: Vec<&Value> = answer["messages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|m| &m["receipt"])
                        .collect();
                    if receipts.is_empty() {
                        return anyhow::Ok(());
                    }
                    let r = http
                        .post(&ack)
                        .json(&json!({ "receipts": receipts }))
                        .send()
                        .await?;
                    ensure!(r.status().is_success(), "ack: {}", r.status());
                    received.fetch_add(receipts.len() as u64, Ordering::Relaxed);
                }
            });
        }
        while let Some(done) = consumers.join_next().await {
            done??;
        }
        let rate = received.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        ensure!(
            received.load(Ordering::Relaxed) == a.messages,
            "pulled {} of {}",
            received.load(Ordering::Relaxed),
            a.messages
        );
        report.add("pull.http_msgs_per_s", rate, "msg/s");
        if let Some(drain) = drain_rate {
            report.target("pull.ratio_to_drain", rate / drain, "x", ">=", 0.8);
        }

        // Long polling: one consumer waits, one producer enqueues; from the enqueue's request
        // (so its commit is included) to the long poll's answer.
        let mut wake = histogram();
        let receive = format!("{}/v1/queues/{queue}/messages/receive", self.url);
        let enqueue = format!("{}/v1/queues/{queue}/messages", self.url);
        for _ in 0..200 {
            let http = self.http.clone();
            let receive = receive.clone();
            let waiting = tokio::spawn(async move {
                let r = http
                    .post(&receive)
                    .json(&json!({"wait_ms": 10_000, "max_messages": 1}))
                    .send()
                    .await?;
                let answer: Value = r.json().await?;
                anyhow::Ok((Instant::now(), answer))
            });
            let sent = Instant::now();
            let r = self.http.post(&enqueue).body("wake").send().await?;
            ensure!(r.status().is_success(), "enqueue: {}", r.status());
            let (answered, answer) = waiting.await??;
            let receipt = answer["messages"][0]["receipt"].clone();
            ensure!(
                !receipt.is_null(),
                "the long poll returned nothing: {answer}"
            );
            self.call(
                reqwest::Method::POST,
                &format!("/v1/queues/{queue}/messages/ack"),
                Some(json!({ "receipts": [receipt] })),
            )
            .await?;
            wake.saturating_record(answered.saturating_duration_since(sent).as_micros() as u64);
        }
        report.latency("pull.enqueue_to_long_poll_answer", &wake, Some(5.0));
        Ok(())
    }

    /// Producers and the trigger together: paced single enqueues at `rate`, then saturating
    /// batch producers; returns the saturation's enqueued + handled msg/s.
    async fn steady(&self, report: &mut Report, c: &Components) -> anyhow::Result<f64> {
        let a = &self.args;
        self.queue("bench-steady", json!({})).await?;
        self.deploy("bench-steady", &c.sum, "").await?;
        self.trigger(
            "bench-steady",
            "bench-steady",
            a.batch_size,
            a.concurrency,
            false,
        )
        .await?;

        let paced = self
            .paced("bench-steady", a.rate as f64, 1, a.duration)
            .await?;
        let (from_ack, from_send, n, elapsed) = paced;
        let mut requests = JoinSet::new();
        report.add("steady.offered_msgs_per_s", a.rate as f64, "msg/s");
        report.add("steady.handled_msgs_per_s", n as f64 / elapsed, "msg/s");
        report.latency("steady.commit_to_start_lower", &from_ack, Some(10.0));
        report.latency("steady.send_to_start_upper", &from_send, None);

        // Saturation: batch producers as fast as they go for `duration`, the trigger draining.
        let capacity = (a.messages as usize * 4).clamp(100_000, 4_000_000);
        let tracker = track("bench-steady", capacity);
        let url = format!("{}/v1/queues/bench-steady/messages/batch", self.url);
        let next = Arc::new(AtomicU64::new(0));
        let batch = a.batch_size.max(1) as u64;
        let end = Instant::now() + a.duration;
        let started = Instant::now();
        for _ in 0..a.batch_clients.max(1) {
            let (http, url, next, t, size) = (
                self.http.clone(),
                url.clone(),
                next.clone(),
                tracker.clone(),
                a.body_bytes,
            );
            requests.spawn(async move {
                while Instant::now() < end {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first + batch > capacity as u64 {
                        break;
                    }
                    let messages: Vec<Value> = (first..first + batch)
                        .map(|s| json!({"body": body(s, size)}))
                        .collect();
                    let sent = t.now();
                    let r = http
                        .post(&url)
                        .json(&json!({"messages": messages}))
                        .send()
                        .await?;
                    ensure!(r.status().is_success(), "batch enqueue: {}", r.status());
                    let acked = t.now();
                    for s in first..first + batch {
                        t.sent_at[s as usize].store(sent, Ordering::Relaxed);
                        t.acked_at[s as usize].store(acked, Ordering::Relaxed);
                    }
                    r.bytes().await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = requests.join_next().await {
            r??;
        }
        let window = started.elapsed().as_secs_f64();
        let handled = tracker.started.load(Ordering::Relaxed);
        let produced = next.load(Ordering::Relaxed).min(capacity as u64);
        self.wait_empty(&["bench-steady"], self.drain_deadline())
            .await?;
        let (from_ack, _, _) = tracker.latencies();
        report.add(
            "saturation.enqueued_msgs_per_s",
            produced as f64 / window,
            "msg/s",
        );
        report.add(
            "saturation.handled_msgs_per_s",
            handled as f64 / window,
            "msg/s",
        );
        report.target(
            "saturation.handled_to_enqueued",
            handled as f64 / produced.max(1) as f64,
            "x",
            ">=",
            0.9,
        );
        report.latency("saturation.commit_to_start_lower", &from_ack, None);
        self.trigger(
            "bench-steady",
            "bench-steady",
            a.batch_size,
            a.concurrency,
            true,
        )
        .await?;
        Ok((produced + handled) as f64 / window)
    }

    /// Offered load on `queue`: `rate` messages a second for `duration`, sent `per_request` at
    /// a time (single enqueues when 1), each request on its own task (open loop, so a slow
    /// answer never delays the next send and hides latency); then waits until the queue is
    /// empty. Returns the histograms (µs) of handler start − 2xx and start − send, how many
    /// messages they cover, and the seconds from the first send to the empty queue.
    async fn paced(
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
        let tracker = track(queue, (requests_total * per_request) as usize);
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
                for s in seqs {
                    t.sent_at[s as usize].store(sent, Ordering::Relaxed);
                    t.acked_at[s as usize].store(acked, Ordering::Relaxed);
                }
                r.bytes().await?;
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

    /// Latency under load (issue 12, target 4): single enqueues paced at 5,000 msg/s, then
    /// batches of 10 paced at half of this run's end-to-end maximum (the `e2e` phase's figure;
    /// without that phase, half of 5,000 × 10). Send → handler start, HTTP included. Returns
    /// the two loads with their p99s, for [`latency_floor`] to run once the host has stopped.
    async fn latency(
        &self,
        report: &mut Report,
        c: &Components,
        e2e_rate: Option<f64>,
    ) -> anyhow::Result<[PacedRun; 2]> {
        let a = &self.args;
        self.queue("bench-latency", json!({})).await?;
        self.deploy("bench-latency", &c.sum, "").await?;
        self.trigger(
            "bench-latency",
            "bench-latency",
            a.batch_size,
            a.concurrency,
            false,
        )
        .await?;
        let single = 5_000.0;
        let (from_ack, from_send, _, _) =
            self.paced("bench-latency", single, 1, a.duration).await?;
        report.add("latency.single.offered_msgs_per_s", single, "msg/s");
        report.latency("latency.single.commit_to_start", &from_ack, None);
        report.latency("latency.single.send_to_start", &from_send, Some(1.0));
        let single_run = PacedRun::new("single", single, 1, &from_send);

        let half = e2e_rate.unwrap_or(single * 10.0) / 2.0;
        let (from_ack, from_send, _, _) = self.paced("bench-latency", half, 10, a.duration).await?;
        report.add(
            "latency.batch_10.offered_msgs_per_s (half of e2e)",
            half,
            "msg/s",
        );
        report.latency("latency.batch_10.commit_to_start", &from_ack, None);
        report.latency("latency.batch_10.send_to_start", &from_send, Some(5.0));
        let batch_10 = PacedRun::new("batch_10", half, 10, &from_send);
        Ok([single_run, batch_10])
    }

    /// End to end, shaped as the peers measure it: one producer that sends batches over HTTP
    /// and waits for each one's 2xx (its durable commit) while a trigger consumes with `sum`;
    /// messages ÷ the time until the last one is acknowledged.
    async fn e2e(&self, c: &Components) -> anyhow::Result<f64> {
        let a = &self.args;
        self.queue("bench-e2e", json!({})).await?;
        self.deploy("bench-e2e", &c.sum, "").await?;
        self.trigger("bench-e2e", "bench-e2e", a.batch_size, a.concurrency, false)
            .await?;
        let url = format!("{}/v1/queues/bench-e2e/messages/batch", self.url);
        let batch = u64::from(a.batch_size.max(1));
        // The requests are encoded before the clock starts, as the peers' producers allocate
        // their bodies once: what is timed is Sluice taking them, not the client building them.
        let payload = |n: u64| -> anyhow::Result<Bytes> {
            let messages: Vec<Value> = (0..n)
                .map(|s| json!({"body": body(s, a.body_bytes)}))
                .collect();
            Ok(Bytes::from(serde_json::to_vec(
                &json!({ "messages": messages }),
            )?))
        };
        let (full, last) = (payload(batch)?, payload(a.messages % batch)?);
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < a.messages {
            let n = batch.min(a.messages - sent);
            let r = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(if n == batch {
                    full.clone()
                } else {
                    last.clone()
                })
                .send()
                .await?;
            ensure!(r.status().is_success(), "batch enqueue: {}", r.status());
            r.bytes().await?;
            sent += n;
        }
        let done = self
            .wait_empty(&["bench-e2e"], self.drain_deadline())
            .await?;
        self.trigger("bench-e2e", "bench-e2e", a.batch_size, a.concurrency, true)
            .await?;
        Ok(a.messages as f64 / done.duration_since(started).as_secs_f64())
    }

    /// A backlog through two steps: `ok` forwards each message to the second queue, `sum` acks.
    async fn chain(&self, report: &mut Report, c: &Components) -> anyhow::Result<()> {
        let a = &self.args;
        self.queue("bench-chain-a", json!({})).await?;
        self.queue("bench-chain-b", json!({})).await?;
        self.deploy("bench-hop", &c.ok, "").await?;
        self.deploy("bench-chain-sum", &c.sum, "").await?;
        self.trigger(
            "bench-hop",
            "bench-chain-a",
            a.batch_size,
            a.concurrency,
            true,
        )
        .await?;
        self.trigger(
            "bench-chain-sum",
            "bench-chain-b",
            a.batch_size,
            a.concurrency,
            true,
        )
        .await?;
        self.backlog("bench-chain-a", a.messages, &[("to", "bench-chain-b")])
            .await?;
        let tracker = track("bench-chain-a", 0);
        self.trigger(
            "bench-chain-sum",
            "bench-chain-b",
            a.batch_size,
            a.concurrency,
            false,
        )
        .await?;
        self.trigger(
            "bench-hop",
            "bench-chain-a",
            a.batch_size,
            a.concurrency,
            false,
        )
        .await?;
        let end = self
            .wait_empty(&["bench-chain-a", "bench-chain-b"], self.drain_deadline())
            .await?;
        let first = tracker.first_start().context("no handler started")?;
        report.add(
            "chain.msgs_per_s",
            a.messages as f64 / end.duration_since(first).as_secs_f64(),
            "msg/s",
        );
        let b = self.store.get_queue("bench-chain-b").await?.stats;
        ensure!(
            b.acked_total == a.messages,
            "chain delivered {} of {}",
            b.acked_total,
            a.messages
        );
        Ok(())
    }

    /// A well-behaved trigger alone, then beside functions that fail every batch.
    /// Costs that must not grow with a queue's depth, on a queue of `--depth-messages`: peek
    /// near its tail, its stats, and the enqueue latency of another queue while it is purged.
    async fn depth(&self, report: &mut Report) -> anyhow::Result<()> {
        let n = self.args.depth_messages;
        let (deep, other) = ("bench-deep", "bench-other");
        self.queue(deep, json!({})).await?;
        self.queue(other, json!({})).await?;
        let start = Instant::now();
        let mut ids = Vec::with_capacity(2);
        let mut seq = 0;
        while seq < n {
            let chunk: Vec<NewMessage> = (seq..n.min(seq + 5_000))
                .map(|s| NewMessage {
                    body: body(s, SEQ_DIGITS).into_bytes(),
                    ..NewMessage::default()
                })
                .collect();
            seq += chunk.len() as u64;
            let enqueued = self.store.enqueue(deep, chunk).await?;
            if seq >= n * 95 / 100 && ids.is_empty() {
                ids.extend(enqueued.first().map(|e| e.id.clone()));
            }
        }
        report.add(
            "depth.fill_msgs_per_s",
            n as f64 / start.elapsed().as_secs_f64(),
            "msg/s",
        );
        let after = ids.pop().context("no message enqueued")?;

        // Each read once to warm the caches, then timed.
        const READS: usize = 50;
        let timed = |path: String| async move {
            let mut hist = histogram();
            for i in 0..=READS {
                let t = Instant::now();
                self.call(reqwest::Method::GET, &path, None).await?;
                if i > 0 {
                    hist.saturating_record(t.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok(hist)
        };
        let peek = timed(format!("/v1/queues/{deep}/messages?limit=1&after={after}")).await?;
        report.latency("depth.peek_tail", &peek, Some(50.0));
        let stats = timed(format!("/v1/queues/{deep}")).await?;
        report.latency("depth.stats", &stats, Some(50.0));

        // Another queue's enqueues, timed one by one from a few clients, while the deep queue is
        // purged over HTTP.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = JoinSet::new();
        for _ in 0..4 {
            let (http, stop) = (self.http.clone(), stop.clone());
            let url = format!("{}/v1/queues/{other}/messages", self.url);
            clients.spawn(async move {
                let mut hist = histogram();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = http.post(&url).body("x").send().await?;
                    ensure!(r.status().is_success(), "enqueue: {}", r.status());
                    r.bytes().await?;
                    hist.saturating_record(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok(hist)
            });
        }
        let start = Instant::now();
        let purged = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/queues/{deep}/purge"),
                Some(json!({})),
            )
            .await?;
        let purge_time = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut during = histogram();
        while let Some(hist) = clients.join_next().await {
            during.add(hist??)?;
        }
        ensure!(
            purged["purged"] == json!(n),
            "purge removed {} of {n} messages",
            purged["purged"]
        );
        report.add("depth.purge_s", purge_time.as_secs_f64(), "s");
        report.add("depth.other_enqueues_during_purge", during.len() as f64, "");
        report.latency("depth.other_enqueue_during_purge", &during, Some(50.0));
        self.store.purge(other).await?;
        Ok(())
    }

    /// Handlers that wait on the network: the webhook example at batch 1 and concurrency
    /// [`OUTBOUND_CONCURRENCY`] against a local upstream that answers every POST after
    /// [`UPSTREAM_LATENCY`]. The ceiling is the lower of what the upstream allows (concurrency
    /// ÷ latency) and what the host does at batch 1 with a no-op handler (the same trigger
    /// shape, no network), both measured here; the host's threads and resident memory are
    /// read at the end of the outbound drain.
    async fn outbound(&self, report: &mut Report, c: &Components) -> anyhow::Result<()> {
        let a = &self.args;
        let n = if a.quick { 2_000 } else { 20_000 };
        let upstream = slow_upstream(UPSTREAM_LATENCY).await?;
        let url = format!("http://{upstream}/hook");
        let allow = format!("http://{upstream}");
        let query = serde_urlencoded::to_string([
            ("env", "WEBHOOK_SECRET=bench"),
            ("allowed_outbound_host", allow.as_str()),
        ])?;
        self.queue("bench-outbound", json!({})).await?;
        self.deploy("bench-webhook", &c.webhook, &query).await?;
        self.backlog("bench-outbound", n, &[("webhook-url", &url)])
            .await?;
        let tracker = track("bench-outbound", 0);
        let threads = ThreadSampler::start();
        self.trigger(
            "bench-webhook",
            "bench-outbound",
            1,
            OUTBOUND_CONCURRENCY,
            false,
        )
        .await?;
        let end = self
            .wait_empty(&["bench-outbound"], self.drain_deadline())
            .await?;
        let (max_threads, max_rss) = threads.stop().await;
        let first = tracker.first_start().context("no handler started")?;
        let rate = n as f64 / end.duration_since(first).as_secs_f64();

        self.queue("bench-outbound-noop", json!({})).await?;
        self.deploy("bench-noop", &c.ok, "").await?;
        self.trigger(
            "bench-noop",
            "bench-outbound-noop",
            1,
            OUTBOUND_CONCURRENCY,
            true,
        )
        .await?;
        self.backlog("bench-outbound-noop", n, &[]).await?;
        let tracker = track("bench-outbound-noop", 0);
        self.trigger(
            "bench-noop",
            "bench-outbound-noop",
            1,
            OUTBOUND_CONCURRENCY,
            false,
        )
        .await?;
        let end = self
            .wait_empty(&["bench-outbound-noop"], self.drain_deadline())
            .await?;
        let first = tracker.first_start().context("no handler started")?;
        let noop = n as f64 / end.duration_since(first).as_secs_f64();

        let ideal = OUTBOUND_CONCURRENCY as f64 / UPSTREAM_LATENCY.as_secs_f64();
        report.add("outbound.invocations_per_s", rate, "inv/s");
        report.add("outbound.upstream_bound_per_s", ideal, "inv/s");
        report.add("outbound.noop_batch_1_drain_per_s", noop, "inv/s");
        report.target(
            "outbound.to_ceiling",
            rate / ideal.min(noop),
            "x",
            ">=",
            0.7,
        );
        report.target("outbound.max_threads", max_threads as f64, "", "<=", 64.0);
        report.add("outbound.max_rss_mib", max_rss as f64 / 1048576.0, "MiB");
        Ok(())
    }

    async fn hostile(&self, report: &mut Report, c: &Components) -> anyhow::Result<()> {
        let a = &self.args;
        let n = (a.messages / 2).max(1000);
        self.queue("bench-good", json!({})).await?;
        self.deploy("bench-good", &c.sum, "").await?;
        self.trigger(
            "bench-good",
            "bench-good",
            a.batch_size,
            a.concurrency,
            true,
        )
        .await?;
        let alone = self.drain_once("bench-good", "bench-good", n).await?;

        let failing = json!({
            "max_attempts": 1000,
            "backoff": {"initial_ms": 1, "multiplier": 1.0, "max_ms": 1, "jitter": false},
        });
        let hostile: [(&str, &[u8], &str); 4] = [
            ("bench-trap", &c.trap, ""),
            ("bench-loop", &c.looping, "timeout_ms=1000"),
            ("bench-oom", &c.oom, "memory_mb=16"),
            ("bench-recurse", &c.recurse, ""),
        ];
        for (name, wasm, query) in hostile {
            self.queue(name, failing.clone()).await?;
            self.deploy(name, wasm, query).await?;
            self.backlog(name, 1000, &[]).await?;
            self.trigger(name, name, 10, 1, false).await?;
        }
        // Measure only once every hostile function is failing batches.
        let end = Instant::now() + Duration::from_secs(30);
        for (name, _, _) in hostile {
            loop {
                let stats = self.store.get_queue(name).await?.stats;
                if stats.retried_total + stats.dead_lettered_total > 0 {
                    break;
                }
                ensure!(
                    Instant::now() < end,
                    "hostile function {name} never failed a batch"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let with = self.drain_once("bench-good", "bench-good", n).await?;
        for (name, _, _) in hostile {
            self.trigger(name, name, 10, 1, true).await?;
        }
        report.add("hostile.alone_msgs_per_s", alone, "msg/s");
        report.add("hostile.with_hostile_msgs_per_s", with, "msg/s");
        report.target("hostile.ratio", with / alone, "x", ">=", 0.8);
        Ok(())
    }
}

/// Fresh instance + call through the executor, batches of 1, 100 and 1000.
async fn overhead(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    dir: &Path,
) -> anyhow::Result<()> {
    let executor = Executor::new(ExecutorConfig {
        cache_dir: dir.to_owned(),
        max_memory_bytes: 256 * 1024 * 1024,
        max_instances: 8,
        keep_resident_bytes: KEEP_RESIDENT_BYTES,
        compiler: Compiler::this_binary(),
    })?;
    let handler = executor.prepare(&c.sum)?;
    let limits = FunctionConfig::default().limits("bench");
    let check = crate::executor::OutboxCheck::accept_all();
    let budget = if args.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    for size in [1usize, 100, 1000] {
        let hist = time_calls(
            &executor,
            &handler,
            &limits,
            &check,
            batch(size, args),
            budget,
        )
        .await?;
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        let key = format!("overhead.batch_{size}");
        if size == 1 {
            report.target(format!("{key}.p50_us"), us(0.5), "µs", "<=", 30.0);
        } else {
            report.add(format!("{key}.p50_us"), us(0.5), "µs");
        }
        report.add(format!("{key}.mean_us"), hist.mean() / 1000.0, "µs");
        if size == 1 {
            let bare = time_bare_calls(&executor, &handler, batch(size, args), budget).await?;
            let bare_us = bare.value_at_quantile(0.5) as f64 / 1000.0;
            report.add("overhead.bare_wasmtime.batch_1.p50_us", bare_us, "µs");
            report.target(
                "overhead.batch_1.to_bare",
                us(0.5) / bare_us.max(f64::MIN_POSITIVE),
                "x",
                "<=",
                1.5,
            );
        }
    }
    Ok(())
}

/// Runs one of the SQLite floor's measurements on a blocking thread, in `dir`, with the
/// benchmark's message count, body size and batch size.
async fn on_floor<T: Send + 'static>(
    args: &BenchArgs,
    dir: &Path,
    measure: fn(&Path, u64, usize, usize) -> crate::store::Result<T>,
) -> anyhow::Result<T> {
    let (dir, n, body, batch) = (
        dir.to_owned(),
        args.messages,
        args.body_bytes,
        args.batch_size as usize,
    );
    Ok(tokio::task::spawn_blocking(move || measure(&dir, n, body, batch)).await??)
}

/// One paced load of the `latency` phase: its name, rate, messages per request and the host's
/// send → start p99.
struct PacedRun {
    name: &'static str,
    rate: f64,
    per_request: usize,
    p99_ms: f64,
}

impl PacedRun {
    fn new(
        name: &'static str,
        rate: f64,
        per_request: usize,
        send_to_start: &Histogram<u64>,
    ) -> Self {
        PacedRun {
            name,
            rate,
            per_request,
            p99_ms: send_to_start.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// The `latency` phase's loads against the SQLite floor ([`floor::measure_latency`]: a group
/// commit with its fsync, then a lease, nothing else), after the host has stopped: how much of
/// the host's send → start p99 the disk alone already costs.
async fn latency_floor(
    report: &mut Report,
    args: &BenchArgs,
    runs: &[PacedRun],
    dir: &Path,
) -> anyhow::Result<()> {
    for (i, run) in runs.iter().enumerate() {
        let (dir, rate, per_request, duration, body) = (
            dir.join(i.to_string()),
            run.rate,
            run.per_request,
            args.duration,
            args.body_bytes,
        );
        let latencies = tokio::task::spawn_blocking(move || {
            floor::measure_latency(&dir, rate, per_request, duration, body)
        })
        .await??;
        let mut hist = histogram();
        for latency in &latencies {
            hist.saturating_record(latency.as_micros() as u64);
        }
        let key = format!("latency.{}.floor_send_to_start", run.name);
        report.latency(&key, &hist, None);
        let floor_p99 = hist.value_at_quantile(0.99) as f64 / 1000.0;
        report.add(
            format!("latency.{}.send_to_start_p99_to_floor", run.name),
            run.p99_ms / floor_p99.max(f64::MIN_POSITIVE),
            "x",
        );
    }
    Ok(())
}

/// The `e2e` phase's peers, after the host has stopped, and Sluice's ratio to each: SQLite
/// in-process (a producer and a consumer thread, one transaction per batch each, WAL and full
/// fsync as the host) and, with `--peer-database`, a plain PostgreSQL `SKIP LOCKED` producer and
/// consumers.
async fn e2e_peers(
    report: &mut Report,
    args: &BenchArgs,
    sluice: f64,
    dir: &Path,
) -> anyhow::Result<()> {
    report.add("e2e.sluice_msgs_per_s", sluice, "msg/s");
    let took = on_floor(args, dir, floor::measure_concurrent).await?;
    let sqlite = args.messages as f64 / took.as_secs_f64();
    report.add("e2e.sqlite_in_process_msgs_per_s", sqlite, "msg/s");
    report.target(
        "e2e.sluice_to_sqlite_in_process",
        sluice / sqlite,
        "x",
        ">=",
        1.0,
    );
    if let Some(url) = &args.peer_database {
        let scratch = crate::store::testdb::TestDatabase::create_on(url).await;
        let floor = crate::store::postgres::floor::measure(
            &scratch.url,
            args.messages,
            args.body_bytes,
            args.batch_size as usize,
            args.concurrency as usize,
            false,
        )
        .await?;
        let pg = floor.messages as f64 / floor.concurrent.as_secs_f64();
        report.add("e2e.postgres_skip_locked_msgs_per_s", pg, "msg/s");
        report.target("e2e.sluice_to_postgres", sluice / pg, "x", ">=", 1.5);
    }
    Ok(())
}

/// Bare wasmtime instantiate + call of `handler` on `batch` ([`Executor::time_bare_call`]),
/// repeated one after another for `budget` (at least 10 calls), asynchronously as the host
/// runs them: the histogram of each call's nanoseconds.
async fn time_bare_calls(
    executor: &Executor,
    handler: &crate::executor::Handler,
    batch: Vec<Message>,
    budget: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = histogram();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget || calls < 10 {
        let took = executor.time_bare_call(handler, &batch).await?;
        hist.saturating_record(took.as_nanos() as u64);
        calls += 1;
    }
    Ok(hist)
}

/// Queues subscribed to the `topics` phase's topic.
const FANOUT_QUEUES: usize = 10;

/// Groups of the `order` phase's grouped backlog: enough that every batch of the drain's
/// trigger fills (a batch takes one message per group) with `concurrency` batches in flight.
const ORDER_GROUPS: u64 = 1_000;

/// A batch of `size` messages as the dispatcher hands them to the executor.
fn batch(size: usize, args: &BenchArgs) -> Vec<Message> {
    (0..size)
        .map(|i| Message {
            id: i.to_string(),
            queue: "bench".into(),
            body: body(i as u64, args.body_bytes).into_bytes(),
            attributes: Vec::new(),
            attempt: 1,
            enqueued_at_ms: 0,
            priority: crate::store::DEFAULT_PRIORITY,
            group: None,
            first_leased_at_ms: None,
        })
        .collect()
}

/// Fresh instance + call of `handler` on `batch`, repeated for `budget` (at least 10 calls):
/// the histogram of each call's nanoseconds.
async fn time_calls(
    executor: &Executor,
    handler: &crate::executor::Handler,
    limits: &crate::executor::Limits,
    check: &crate::executor::OutboxCheck,
    batch: Vec<Message>,
    budget: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = histogram();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget || calls < 10 {
        // The clone is part of the cost: the dispatcher hands the executor its own copy.
        let t = Instant::now();
        let invocation = executor
            .invoke(handler, limits, batch.clone(), check.clone())
            .await;
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        if !matches!(invocation.outcome, crate::executor::Outcome::Ok(_)) {
            bail!("the handler failed: {:?}", invocation.outcome);
        }
        calls += 1;
    }
    Ok(hist)
}

/// Python and JavaScript no-ops beside Rust's `sum`: compile time, the cost of a fresh instance
/// (batches of 1 and 100, through the executor), the drain rate through a trigger, and the
/// resident memory of a `sluice serve` with `--polyglot-functions` distinct ones deployed and
/// exercised, anonymous and file-backed apart.
async fn polyglot(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    poly: &Polyglot,
    dir: &Path,
) -> anyhow::Result<()> {
    let limits = FunctionConfig::default().limits("bench");
    let check = crate::executor::OutboxCheck::accept_all();
    let budget = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    let languages = [("sum", &c.sum), ("python", &poly.python), ("js", &poly.js)];
    // The same components with the pool's slots released after every instance (what the host
    // did before it kept them resident) and kept resident (what it does now), in the same run.
    for keep_resident_bytes in [0, KEEP_RESIDENT_BYTES] {
        let executor = Executor::new(ExecutorConfig {
            cache_dir: dir.join("cache"),
            max_memory_bytes: 256 * 1024 * 1024,
            max_instances: 8,
            keep_resident_bytes,
            compiler: Compiler::this_binary(),
        })?;
        let variant = if keep_resident_bytes == 0 {
            " (slots released, as before)"
        } else {
            ""
        };
        for (name, wasm) in languages {
            let (prepare, handler) = {
                let (executor, wasm) = (executor.clone(), wasm.clone());
                let t = Instant::now();
                let handler =
                    tokio::task::spawn_blocking(move || executor.prepare(&wasm)).await??;
                (t.elapsed(), handler)
            };
            if keep_resident_bytes == 0 {
                report.add(
                    format!("polyglot.compile.{name}_s ({} KiB)", wasm.len() / 1024),
                    prepare.as_secs_f64(),
                    "s",
                );
            }
            for size in [1usize, 100] {
                let hist = time_calls(
                    &executor,
                    &handler,
                    &limits,
                    &check,
                    batch(size, args),
                    budget,
                )
                .await?;
                let key = format!("polyglot.overhead.{name}.batch_{size}.p50_us{variant}");
                let p50 = hist.value_at_quantile(0.5) as f64 / 1000.0;
                if size == 1 && name != "sum" && keep_resident_bytes > 0 {
                    report.target(key, p50, "µs", "<=", 300.0);
                } else {
                    report.add(key, p50, "µs");
                }
                if size == 1 && keep_resident_bytes > 0 {
                    // The same component's bare wasmtime instantiate + call: what the runtime
                    // alone costs per batch, below which no host can go.
                    let bare = time_bare_calls(&executor, &handler, batch(1, args), budget).await?;
                    let bare_us = bare.value_at_quantile(0.5) as f64 / 1000.0;
                    report.add(
                        format!("polyglot.overhead.{name}.bare_wasmtime.batch_1.p50_us"),
                        bare_us,
                        "µs",
                    );
                    report.add(
                        format!("polyglot.overhead.{name}.batch_1.to_bare"),
                        p50 / bare_us.max(f64::MIN_POSITIVE),
                        "x",
                    );
                }
            }
        }
    }

    // Drain through a real trigger, at the configured batch size and concurrency.
    let bench = Bench::start(dir.join("host"), args, None).await?;
    let n = args.messages.min(50_000);
    let mut rates = Vec::new();
    for (name, wasm) in languages {
        let (function, queue) = (format!("poly-{name}"), format!("poly-{name}"));
        bench.queue(&queue, json!({})).await?;
        bench.deploy(&function, wasm, "").await?;
        bench
            .trigger(&function, &queue, args.batch_size, args.concurrency, true)
            .await?;
        let rate = bench.drain_once(&function, &queue, n).await?;
        report.add(
            format!("polyglot.drain.{name}.batch_{}.msgs_per_s", args.batch_size),
            rate,
            "msg/s",
        );
        rates.push(rate);
    }

    // A Rust trigger drains while a Python component (new bytes, so not in the cache) compiles.
    let upload = {
        let mut wasm = poly.python.clone();
        wasm.extend_from_slice(&custom_section("sluice-bench", &rand::random::<[u8; 8]>()));
        let (http, url) = (bench.http.clone(), bench.url.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = http
                .put(format!("{url}/v1/functions/poly-compiling"))
                .header("content-type", "application/wasm")
                .body(wasm)
                .send()
                .await?;
            ensure!(
                response.status().is_success(),
                "upload: {}",
                response.status()
            );
            anyhow::Ok(started.elapsed())
        })
    };
    let during = bench.drain_once("poly-sum", "poly-sum", n).await?;
    let compile = upload.await??;
    report.add(
        "polyglot.compile_while_draining.python_s",
        compile.as_secs_f64(),
        "s",
    );
    report.add(
        format!(
            "polyglot.drain.sum_while_compiling.batch_{}.msgs_per_s",
            args.batch_size
        ),
        during,
        "msg/s",
    );
    report.target(
        "polyglot.drain.sum_while_compiling_to_alone",
        during / rates[0],
        "x",
        ">=",
        0.8,
    );
    bench.stop().await;
    for (i, name) in [(1, "python"), (2, "js")] {
        report.target(
            format!("polyglot.drain.{name}_to_sum"),
            rates[i] / rates[0],
            "x",
            ">=",
            0.5,
        );
    }

    polyglot_memory(report, args, poly, &dir.join("memory")).await
}

/// Resident memory of a `sluice serve` with `--polyglot-functions` distinct Python and
/// JavaScript functions (half each) deployed and each run on a few batches.
async fn polyglot_memory(
    report: &mut Report,
    args: &BenchArgs,
    poly: &Polyglot,
    dir: &Path,
) -> anyhow::Result<()> {
    let http = authorized_client()?;
    let child = Child::spawn(dir)?;
    let url = child.url.clone();
    let count = args.polyglot_functions.max(2);
    let names: Vec<String> = (0..count)
        .map(|i| format!("{}-{i:02}", if i % 2 == 0 { "py" } else { "js" }))
        .collect();
    let deploying = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let wasm = if i % 2 == 0 { &poly.python } else { &poly.js };
        let r = http
            .post(format!("{url}/v1/queues"))
            .json(&json!({"name": name}))
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "create queue {name}: {}",
            r.status()
        );
        let r = http
            .put(format!("{url}/v1/functions/{name}"))
            .header("content-type", "application/wasm")
            .body(distinct(wasm, name))
            .send()
            .await?;
        ensure!(r.status().is_success(), "deploy {name}: {}", r.status());
        let r = http
            .put(format!("{url}/v1/functions/{name}/trigger"))
            .json(&json!({"queue": name, "batch_size": 10, "max_wait_ms": 0, "max_concurrency": 2}))
            .send()
            .await?;
        ensure!(r.status().is_success(), "trigger {name}: {}", r.status());
        let messages: Vec<Value> = (0..100).map(|i| json!({"body": format!("m{i}")})).collect();
        let r = http
            .post(format!("{url}/v1/queues/{name}/messages/batch"))
            .json(&json!({ "messages": messages }))
            .send()
            .await?;
        ensure!(r.status().is_success(), "enqueue on {name}: {}", r.status());
    }
    report.add(
        format!("polyglot.deploy_s ({count} distinct components)"),
        deploying.elapsed().as_secs_f64(),
        "s",
    );
    for name in &names {
        wait_acked(&http, &url, name, 100, Duration::from_secs(120)).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory = child.memory()?;
    let key = format!("polyglot.rss ({count} functions)");
    report.target(format!("{key}.total_mib"), memory.rss, "MiB", "<=", 400.0);
    report.add(format!("{key}.anon_mib"), memory.anon, "MiB");
    report.add(format!("{key}.file_mib"), memory.file, "MiB");
    report.add(format!("{key}.shmem_mib"), memory.shmem, "MiB");
    // What the file-backed part is mapped from: the compiled components in the host's cache.
    let mut images = 0u64;
    for entry in std::fs::read_dir(dir.join("data").join("compiled"))? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            images += entry.metadata()?.len();
        }
    }
    let images = images as f64 / (1024.0 * 1024.0);
    report.add(format!("{key}.compiled_images_on_disk_mib"), images, "MiB");
    report.add(
        format!("{key}.file_to_compiled_images"),
        memory.file / images.max(f64::MIN_POSITIVE),
        "x",
    );
    Ok(())
}

/// A `sluice serve` takes `--backlog-messages` (5M) over HTTP from four batch producers while
/// nothing consumes, then a `sum` trigger drains them; its resident memory is sampled every
/// 100 ms throughout, and the peak is held to issue 12's 300 MiB. The drain rate is held
/// against the drain phase's (a 200k backlog), which a backlog 25 times deeper should keep.
async fn backlog(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    drain_rate: Option<f64>,
    dir: &Path,
) -> anyhow::Result<()> {
    let http = authorized_client()?;
    let child = Child::spawn(dir)?;
    let url = child.url.clone();
    let n = args.backlog_messages.max(1);
    let queue = "bench-backlog";
    let r = http
        .post(format!("{url}/v1/queues"))
        .json(&json!({ "name": queue }))
        .send()
        .await?;
    ensure!(r.status().is_success(), "create queue: {}", r.status());
    let r = http
        .put(format!("{url}/v1/functions/{queue}"))
        .header("content-type", "application/wasm")
        .body(c.sum.clone())
        .send()
        .await?;
    ensure!(r.status().is_success(), "deploy: {}", r.status());

    // The sampler: the peak of VmRSS (KiB) until told to stop.
    let pid = child.process.id();
    let peak_kib = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak_kib, sampling) = (peak_kib.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            while sampling.load(Ordering::Relaxed) {
                every.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    peak_kib.fetch_max(kib, Ordering::Relaxed);
                }
            }
        })
    };

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let per_request = 1_000u64;
    let mut producers = JoinSet::new();
    for _ in 0..4 {
        let (http, url, next, size) = (
            http.clone(),
            format!("{url}/v1/queues/{queue}/messages/batch"),
            next.clone(),
            args.body_bytes,
        );
        producers.spawn(async move {
            loop {
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                if first >= n {
                    return anyhow::Ok(());
                }
                let messages: Vec<Value> = (first..(first + per_request).min(n))
                    .map(|s| json!({"body": body(s, size)}))
                    .collect();
                let r = http
                    .post(&url)
                    .json(&json!({ "messages": messages }))
                    .send()
                    .await?;
                ensure!(r.status().is_success(), "batch enqueue: {}", r.status());
                r.bytes().await?;
            }
        });
    }
    while let Some(r) = producers.join_next().await {
        r??;
    }
    let filled = started.elapsed();
    let fill_peak = peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;

    let draining = Instant::now();
    let r = http
        .put(format!("{url}/v1/functions/{queue}/trigger"))
        .json(&json!({
            "queue": queue,
            "batch_size": args.batch_size,
            "max_wait_ms": 0,
            "max_concurrency": args.concurrency,
        }))
        .send()
        .await?;
    ensure!(r.status().is_success(), "trigger: {}", r.status());
    let within = Duration::from_secs(60) + Duration::from_millis(n / 10);
    wait_acked(&http, &url, queue, n, within).await?;
    let drained = draining.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let peak = peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;

    report.add(
        format!("backlog.fill_msgs_per_s ({n} messages)"),
        n as f64 / filled.as_secs_f64(),
        "msg/s",
    );
    let rate = n as f64 / drained.as_secs_f64();
    report.add(
        format!("backlog.drain_msgs_per_s ({n} messages)"),
        rate,
        "msg/s",
    );
    if let Some(drain) = drain_rate {
        report.target("backlog.drain_to_drain_phase", rate / drain, "x", ">=", 0.9);
    }
    report.add("backlog.rss_peak_while_filling_mib", fill_peak, "MiB");
    report.target("backlog.rss_peak_mib", peak, "MiB", "<=", 300.0);
    Ok(())
}

/// VmRSS of process `pid` in KiB, if it is still there.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS:")
}

/// The KiB figure of field `name` (with its colon) in a `/proc/PID/status` text.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `queue` of the host at `url` has acknowledged `n` messages in all, for at most
/// `within`. The host is another process and its API has no event for this, so the benchmark
/// (a client) reads the queue's stats every 20 ms.
async fn wait_acked(
    http: &reqwest::Client,
    url: &str,
    queue: &str,
    n: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let stats: Value = http
            .get(format!("{url}/v1/queues/{queue}"))
            .send()
            .await?
            .json()
            .await?;
        if stats["stats"]["acked_total"].as_u64() == Some(n) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{queue} did not acknowledge {n} messages within {within:?}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `wasm` with a custom section naming `name` appended: a distinct upload (its own digest, so
/// its own compilation), as every real function is, that behaves the same.
fn distinct(wasm: &[u8], name: &str) -> Vec<u8> {
    let section_name = b"sluice-bench";
    let mut payload = vec![section_name.len() as u8];
    payload.extend_from_slice(section_name);
    payload.extend_from_slice(name.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

/// A `sluice serve` child with `functions` functions deployed: restarted, how long until the
/// first invocation, and its resident memory once idle.
async fn restart(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    dir: &Path,
) -> anyhow::Result<()> {
    let http = authorized_client()?;
    let mut child = Child::spawn(dir)?;
    let url = child.url.clone();
    let call = |method: reqwest::Method, path: String, body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .request(method, format!("{url}{path}"))
                .json(&body)
                .send()
                .await?;
            ensure!(r.status().is_success(), "{path}: {}", r.status());
            anyhow::Ok(())
        }
    };
    for i in 0..args.functions {
        let name = format!("fn-{i:03}");
        call(
            reqwest::Method::POST,
            "/v1/queues".into(),
            json!({"name": name}),
        )
        .await?;
        let r = http
            .put(format!("{url}/v1/functions/{name}"))
            .header("content-type", "application/wasm")
            .body(c.sum.clone())
            .send()
            .await?;
        ensure!(r.status().is_success(), "deploy {name}: {}", r.status());
        call(
            reqwest::Method::PUT,
            format!("/v1/functions/{name}/trigger"),
            json!({"queue": name, "batch_size": 100, "max_wait_ms": 0}),
        )
        .await?;
    }
    child.stop();
    // While the host is down, one message waits on the last function's queue.
    {
        let store = Store::open(&dir.join("data"), crate::store::StoreOptions::default())?;
        let last = format!("fn-{:03}", args.functions.saturating_sub(1));
        store
            .enqueue(
                &last,
                vec![NewMessage {
                    body: b"wake".to_vec(),
                    ..NewMessage::default()
                }],
            )
            .await?;
    }
    let started = Instant::now();
    let child = Child::spawn(dir)?;
    let last = format!("fn-{:03}", args.functions.saturating_sub(1));
    let first = loop {
        let r = http
            .get(format!("{}/v1/functions/{last}/invocations", child.url))
            .send()
            .await;
        if let Ok(r) = r
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
            && v["invocations"].as_array().is_some_and(|a| !a.is_empty())
        {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no invocation within 60 s of restart"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    report.target(
        format!("restart.first_invocation_ms ({} functions)", args.functions),
        first.as_secs_f64() * 1000.0,
        "ms",
        "<=",
        100.0,
    );
    tokio::time::sleep(Duration::from_secs(if args.quick { 1 } else { 3 })).await;
    report.target(
        format!("idle.rss_mib ({} functions)", args.functions),
        child.rss_mib()?,
        "MiB",
        "<=",
        150.0,
    );
    Ok(())
}

/// Resident memory of a process, in MiB.
struct Memory {
    rss: f64,
    anon: f64,
    file: f64,
    shmem: f64,
}

/// `sluice serve` (this very binary) on port 0; killed when dropped.
/// A `sluice serve` process of this binary.
pub(super) struct Child {
    process: std::process::Child,
    pub(super) url: String,
}

impl Child {
    fn spawn(dir: &Path) -> anyhow::Result<Child> {
        Child::spawn_with(dir, &[])
    }

    /// Starts `sluice serve` on `dir`/data with `extra` arguments.
    pub(super) fn spawn_with(dir: &Path, extra: &[&str]) -> anyhow::Result<Child> {
        let mut process = std::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("SLUICE_ADMIN_TOKEN", BENCH_TOKEN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let stderr = process.stderr.take().context("stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("addr=").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .context("sluice serve did not report its address")?;
        Ok(Child {
            process,
            url: format!("http://{addr}"),
        })
    }

    /// Resident memory by kind, from /proc: anonymous (heap, instance memories, compiled code
    /// held in memory), file-backed (mapped files: the binary, compiled components loaded from
    /// the cache) and shared memory (memfd images), in MiB.
    fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let kib = status_kib(&status, name)
                .with_context(|| format!("{name} missing from /proc/PID/status"))?;
            Ok(kib as f64 / 1024.0)
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            shmem: field("RssShmem:")?,
        })
    }

    fn rss_mib(&self) -> anyhow::Result<f64> {
        let kib = rss_kib(self.process.id()).context("VmRSS missing")?;
        Ok(kib as f64 / 1024.0)
    }

    fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let _ = self.process.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A WebAssembly custom section (id 0) named `name`: appended to a component it changes the
/// bytes (so the digest) and nothing else.
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut section = vec![0u8];
    leb(body.len(), &mut section);
    section.extend(body);
    section
}
