//! The PostgreSQL phases of `sluice bench --database URL`: the plain `SKIP LOCKED` floor, then
//! one and three hosts (separate `sluice serve` processes) on one scratch database, each
//! draining a backlog and serving one producer and the trigger at once. Every phase runs on a
//! database of its own, created on the given server and dropped after.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use sluice_test_support::testdb::TestDatabase;

use crate::BenchArgs;
use crate::child::{Child, authorized_client};
use crate::components::Components;
use crate::floor::postgres as floor;
use crate::load::body;
use crate::report::Report;

/// Hosts on one database: the requests go to the first, the work is spread over all.
struct Cluster {
    hosts: Vec<Child>,
    http: reqwest::Client,
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
        Ok(Cluster {
            hosts,
            http: authorized_client()?,
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
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "{path}: {status}: {text}");
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

    /// Enqueues `n` messages over HTTP in batches, one request at a time, each waiting for its
    /// durable 2xx (the peer-shaped producer).
    async fn produce(&self, args: &BenchArgs, n: u64) -> anyhow::Result<()> {
        let batch = u64::from(args.batch_size.max(1));
        let mut seq = 0;
        while seq < n {
            let messages: Vec<Value> = (seq..n.min(seq + batch))
                .map(|s| json!({"body": body(s, args.body_bytes)}))
                .collect();
            seq += messages.len() as u64;
            self.call(
                reqwest::Method::POST,
                "/v1/queues/hosts/messages/batch",
                json!({ "messages": messages }),
            )
            .await?;
        }
        Ok(())
    }

    /// Waits until `n` messages have been acknowledged; returns when.
    async fn acked(&self, n: u64, deadline: Duration) -> anyhow::Result<Instant> {
        let end = Instant::now() + deadline;
        loop {
            let acked = self.acked_so_far().await?;
            if acked >= n {
                return Ok(Instant::now());
            }
            ensure!(
                Instant::now() < end,
                "not drained within {deadline:?}: {acked} of {n} acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Messages of the `hosts` queue the hosts have acknowledged, summed from their own
    /// counters (`/metrics`). Cheap enough to read every few milliseconds, unlike the queue's
    /// stats, which count its rows in the database and would load it while it is measured.
    async fn acked_so_far(&self) -> anyhow::Result<u64> {
        let mut total = 0.0;
        for host in &self.hosts {
            let metrics = self
                .http
                .get(format!("{}/metrics", host.url))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            total += metrics
                .lines()
                .filter(|line| line.starts_with("sluice_acked_total{queue=\"hosts\"}"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        Ok(total as u64)
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
    let scratch = TestDatabase::create_on(admin_url).await;
    let floor = floor::measure(
        &scratch.url,
        n,
        args.body_bytes,
        args.batch_size as usize,
        args.concurrency as usize,
        true,
    )
    .await?;
    drop(scratch);
    let floor_drain = n as f64 / floor.drain.as_secs_f64();
    let floor_concurrent = n as f64 / floor.concurrent.as_secs_f64();
    report.add(
        "pg.floor.insert_msgs_per_s",
        n as f64 / floor.insert.as_secs_f64(),
        "msg/s",
    );
    report.add("pg.floor.drain_msgs_per_s", floor_drain, "msg/s");
    report.add("pg.floor.concurrent_msgs_per_s", floor_concurrent, "msg/s");
    // What the delivery contract's own statements reach with nothing else, beside the floor.
    let lease_drain = floor
        .lease_drain
        .context("the floor measured no lease-shaped drain")?;
    let lease_shape = n as f64 / lease_drain.as_secs_f64();
    report.add(
        "pg.floor.lease_shape_drain_msgs_per_s",
        lease_shape,
        "msg/s",
    );
    report.add(
        "pg.floor.lease_shape_to_floor",
        lease_shape / floor_drain,
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
        let done = cluster.acked(n, deadline).await?;
        let drain = n as f64 / done.duration_since(started).as_secs_f64();
        report.add(format!("pg.hosts{hosts}.drain_msgs_per_s"), drain, "msg/s");
        drains.push(drain);
        drop(cluster);

        // Concurrent: one producer waiting for each 2xx while the trigger consumes.
        let cluster = Cluster::start(hosts, admin_url, &dir.join(format!("both-{hosts}"))).await?;
        cluster.prepare(c, args, false).await?;
        let started = Instant::now();
        cluster.produce(args, n).await?;
        let done = cluster.acked(n, deadline).await?;
        let both = n as f64 / done.duration_since(started).as_secs_f64();
        report.add(
            format!("pg.hosts{hosts}.concurrent_msgs_per_s"),
            both,
            "msg/s",
        );
        report.add(
            format!("pg.hosts{hosts}.concurrent_ratio_to_floor"),
            both / floor_concurrent,
            "x",
        );
    }
    report.target(
        "pg.hosts1.drain_ratio_to_floor",
        drains[0] / floor_drain,
        "x",
        ">=",
        0.7,
    );
    report.add(
        "pg.hosts1.drain_ratio_to_lease_shape",
        drains[0] / lease_shape,
        "x",
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
