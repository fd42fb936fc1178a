//! The PostgreSQL phases of `sluice bench --database URL`: the floor (the strong plain queue,
//! [`plain`]), the delivery contract's own statements on two table shapes, then one and three
//! hosts (separate `sluice serve` processes) on one scratch database, each draining a backlog
//! and serving one producer and the trigger at once. Every phase runs on a database of its own,
//! created on the given server and dropped after.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};

use sluice_test_support::testdb::TestDatabase;

use crate::BenchArgs;
use crate::child::{Child, authorized_client};
use crate::components::Components;
use crate::floor::postgres::{Shape, lease_concurrent, lease_drain};
use crate::floor::{self, plain};
use crate::load::{BatchRequests, success_text};
use crate::report::Report;

/// Hosts on one database: the requests go to the first, the work is spread over all.
struct Cluster {
    hosts: Vec<Child>,
    http: reqwest::Client,
    /// A connection of the bench's own to the hosts' database, for their counters.
    db: tokio_postgres::Client,
    _db: TestDatabase,
}

impl Cluster {
    async fn start(n: usize, admin_url: &str, dir: &Path) -> anyhow::Result<Cluster> {
        let db = TestDatabase::create_on(admin_url).await;
        let mut hosts = Vec::new();
        for i in 0..n {
            hosts.push(Child::spawn_with(
                &dir.join(format!("host-{i}")),
                &["--database", &db.url],
            )?);
        }
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(Cluster {
            hosts,
            http: authorized_client()?,
            db: client,
            _db: db,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.hosts[0].url);
        let response = self.http.request(method, url).json(&body).send().await?;
        let text = success_text(response, path).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn prepare(&self, c: &Components, args: &BenchArgs, paused: bool) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/v1/queues",
            json!({"name": "hosts"}),
        )
        .await?;
        let response = self
            .http
            .put(format!("{}/v1/functions/sum", self.hosts[0].url))
            .header("content-type", "application/wasm")
            .body(c.sum.clone())
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "deploy: {}",
            response.status()
        );
        self.trigger(args, paused).await
    }

    async fn trigger(&self, args: &BenchArgs, paused: bool) -> anyhow::Result<()> {
        let trigger = json!({
            "queue": "hosts", "batch_size": args.batch_size, "max_wait_ms": 0,
            "max_concurrency": args.concurrency, "paused": paused,
        });
        self.call(reqwest::Method::PUT, "/v1/functions/sum/trigger", trigger)
            .await?;
        Ok(())
    }

    /// Enqueues `n` messages over HTTP in batches to the first host, one request at a time,
    /// each waiting for its durable 2xx (the peer-shaped producer).
    async fn produce(&self, args: &BenchArgs, n: u64) -> anyhow::Result<()> {
        let requests = BatchRequests::new(u64::from(args.batch_size), n, args.body_bytes)?;
        let url = format!("{}/v1/queues/hosts/messages/batch", self.hosts[0].url);
        requests.send(&self.http, &url, n).await
    }

    /// Waits until `n` messages have been acknowledged; returns when.
    async fn acked(&self, n: u64, deadline: Duration) -> anyhow::Result<Instant> {
        let tenths = self.acked_by_tenths(n, deadline).await?;
        Ok(tenths[9])
    }

    /// Waits until `n` messages have been acknowledged; returns when each tenth of them was.
    async fn acked_by_tenths(&self, n: u64, deadline: Duration) -> anyhow::Result<Vec<Instant>> {
        let end = Instant::now() + deadline;
        let mut tenths = Vec::with_capacity(10);
        loop {
            let acked = self.acked_so_far().await?;
            let now = Instant::now();
            while tenths.len() < 10 && acked * 10 >= n * (tenths.len() as u64 + 1) {
                tenths.push(now);
            }
            if tenths.len() == 10 {
                return Ok(tenths);
            }
            ensure!(
                now < end,
                "not drained within {deadline:?}: {acked} of {n} acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Messages of the `hosts` queue the hosts have acknowledged, read from the store's own
    /// counters: the folded total plus the deltas not folded yet, one snapshot, a few rows. Not
    /// from `/metrics`, whose queue gauges count the queue's rows in the database at every
    /// scrape (57 ms each at 200,000 messages): read every few milliseconds on every host, they
    /// loaded the database the phase measures.
    async fn acked_so_far(&self) -> anyhow::Result<u64> {
        let row = self
            .db
            .query_one(
                "SELECT (SELECT acked_total FROM queues WHERE name = 'hosts')
                    + coalesce((SELECT sum(acked) FROM queue_counts WHERE queue = 'hosts'), 0)::bigint",
                &[],
            )
            .await?;
        let acked: Option<i64> = row.get(0);
        Ok(acked.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }
}

/// Runs the floor and the 1- and 3-host phases against the server of `admin_url`.
pub async fn run(
    report: &mut Report,
    args: &BenchArgs,
    c: &Components,
    admin_url: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let n = args.messages;
    let deadline = Duration::from_secs(60) + Duration::from_millis(n / 2);
    let (body_bytes, batch, consumers) = (
        args.body_bytes,
        args.batch_size as usize,
        args.concurrency as usize,
    );
    let scratch = TestDatabase::create_on(admin_url).await;
    // The floor: the strong plain queue, with one consumer and with the trigger's concurrency,
    // the faster counting.
    let (mut floor_drain, mut floor_concurrent) = (0f64, 0f64);
    for consumers in [1, consumers.max(1)] {
        let (drain, tenths) =
            plain::postgres_drain(&scratch.url, n, body_bytes, batch, consumers).await?;
        let both = plain::postgres(&scratch.url, n, body_bytes, batch, consumers).await?;
        report.add(
            format!("pg.floor.drain_{consumers}_consumers_msgs_per_s"),
            drain.rate(),
            "msg/s",
        );
        // The floor's own pace as its table empties: what the hosts' flatness is set against
        // (with autovacuum off nothing removes the dead entries a drain leaves at the front
        // of the key).
        report.add(
            format!("pg.floor.drain_{consumers}_consumers_last_tenth_to_first"),
            plain::last_tenth_to_first(&tenths),
            "x",
        );
        floor_drain = floor_drain.max(drain.rate());
        floor_concurrent = floor_concurrent.max(both.rate());
    }
    report.add("pg.floor.drain_msgs_per_s", floor_drain, "msg/s");
    report.add("pg.floor.concurrent_msgs_per_s", floor_concurrent, "msg/s");
    // The same concurrent floor with its producer's batches arriving over HTTP, as every
    // host's do: what the transport alone costs the floor.
    let http = reqwest::Client::new();
    let floor_http =
        floor::http::postgres_best(&http, &scratch.url, n, body_bytes, batch, consumers).await?;
    report.add("pg.floor.concurrent_http_msgs_per_s", floor_http, "msg/s");
    report.add(
        "pg.floor.concurrent_http_to_in_process",
        floor_http / floor_concurrent,
        "x",
    );
    // What the delivery contract's own statements reach with nothing else, beside the floor:
    // on today's indexed schema, and on a table a lease updates heap-only.
    let mut shapes = Vec::new();
    for (name, shape) in [("indexed", Shape::Indexed), ("hot", Shape::Hot)] {
        let took = lease_drain(&scratch.url, shape, n, body_bytes, batch, consumers).await?;
        let rate = n as f64 / took.as_secs_f64();
        report.add(
            format!("pg.contract_shape.{name}_drain_msgs_per_s"),
            rate,
            "msg/s",
        );
        shapes.push(rate);
    }
    // The contract's statements with a producer at once, as the hosts' concurrent runs are
    // shaped: the least any host that keeps the contract reaches beside the concurrent floor.
    let took = lease_concurrent(
        &scratch.url,
        Shape::Indexed,
        n,
        body_bytes,
        batch,
        consumers,
    )
    .await?;
    let shape_concurrent = n as f64 / took.as_secs_f64();
    report.add(
        "pg.contract_shape.indexed_concurrent_msgs_per_s",
        shape_concurrent,
        "msg/s",
    );
    report.add(
        "pg.contract_shape.indexed_concurrent_to_floor",
        shape_concurrent / floor_concurrent,
        "x",
    );
    drop(scratch);
    let lease_shape = shapes[0];
    report.target(
        "pg.contract_shape.indexed_to_floor",
        lease_shape / floor_drain,
        "x",
        ">=",
        0.8,
    );
    report.add(
        "pg.contract_shape.hot_to_floor",
        shapes[1] / floor_drain,
        "x",
    );

    let mut drains = Vec::new();
    for hosts in [1usize, 3] {
        // Drain: a backlog enqueued with the trigger paused, then drained by every host.
        let cluster = Cluster::start(hosts, admin_url, &dir.join(format!("drain-{hosts}"))).await?;
        cluster.prepare(c, args, true).await?;
        cluster.produce(args, n).await?;
        let started = Instant::now();
        cluster.trigger(args, false).await?;
        let tenths = cluster.acked_by_tenths(n, deadline).await?;
        let drain = n as f64 / tenths[9].duration_since(started).as_secs_f64();
        report.add(format!("pg.hosts{hosts}.drain_msgs_per_s"), drain, "msg/s");
        // Whether the lease stays flat as the queue churns: the last tenth's pace against the
        // first's.
        let since: Vec<Duration> = tenths.iter().map(|t| *t - started).collect();
        report.target(
            format!("pg.hosts{hosts}.drain_last_tenth_to_first"),
            plain::last_tenth_to_first(&since),
            "x",
            ">=",
            0.8,
        );
        drains.push(drain);
        drop(cluster);

        // Concurrent: one producer waiting for each 2xx while the trigger consumes.
        let cluster = Cluster::start(hosts, admin_url, &dir.join(format!("both-{hosts}"))).await?;
        cluster.prepare(c, args, false).await?;
        let started = Instant::now();
        cluster.produce(args, n).await?;
        let produced = started.elapsed();
        let done = cluster.acked(n, deadline).await?;
        let both = n as f64 / done.duration_since(started).as_secs_f64();
        report.add(
            format!("pg.hosts{hosts}.concurrent_msgs_per_s"),
            both,
            "msg/s",
        );
        // The producer alone: when it is the bound, each batch's round trip is what to cut.
        report.add(
            format!("pg.hosts{hosts}.concurrent_producer_msgs_per_s"),
            n as f64 / produced.as_secs_f64(),
            "msg/s",
        );
        report.target(
            format!("pg.hosts{hosts}.concurrent_ratio_to_floor"),
            both / floor_concurrent,
            "x",
            ">=",
            0.5,
        );
        report.add(
            format!("pg.hosts{hosts}.concurrent_ratio_to_http_floor"),
            both / floor_http,
            "x",
        );
        report.add(
            format!("pg.hosts{hosts}.concurrent_ratio_to_contract_shape"),
            both / shape_concurrent,
            "x",
        );
    }
    report.add(
        "pg.hosts1.drain_ratio_to_floor",
        drains[0] / floor_drain,
        "x",
    );
    report.target(
        "pg.hosts1.drain_ratio_to_contract_shape",
        drains[0] / lease_shape,
        "x",
        ">=",
        0.7,
    );
    report.target(
        "pg.hosts3_to_hosts1.drain_ratio",
        drains[1] / drains[0],
        "x",
        ">=",
        1.0,
    );
    Ok(())
}
