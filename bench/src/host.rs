//! The in-process host every on-host phase drives: a `Host` on a temporary data directory
//! serving real HTTP (and the SQS endpoint) on loopback, the benchmark's client for it, and the
//! calls the phases share to set up queues, functions and triggers and to wait for a drain.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice::config::Config;
use sluice::executor::Compiler;
use sluice::server::Host;
use sluice::store::{DEFAULT_PRIORITY, NewMessage, Store};
use sluice_test_support::sigv4::Signer;
use tokio_util::sync::CancellationToken;

use crate::BenchArgs;
use crate::child::{BENCH_TOKEN, authorized_client};
use crate::load::{body, success_text};
use crate::phases::sqs::SqsClient;

/// The in-process host and an HTTP client for it.
pub(crate) struct Bench {
    pub(crate) args: BenchArgs,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) store: Store,
    /// The host's SQS endpoint, with a key pair of an admin token.
    pub(crate) sqs: SqsClient,
    shutdown: CancellationToken,
    /// The host serving until `shutdown`; it settles in-flight batches before it ends.
    server: tokio::task::JoinHandle<Result<(), sluice::server::Error>>,
}

impl Bench {
    pub(crate) async fn start(
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
        let sqs = SqsClient {
            url: format!("http://{sqs_addr}/"),
            host: sqs_addr.to_string(),
            signer: Signer::new(
                &keys.sqs_access_key_id.context("no SQS key id")?,
                &keys.sqs_secret_access_key.context("no SQS secret")?,
                "us-east-1",
            ),
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

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("bench host: {err}"),
            Err(err) => eprintln!("bench host: {err}"),
        }
    }

    pub(crate) async fn call(
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
        let text = success_text(response, format_args!("{method} {path}")).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A GET's body as text (a key's value).
    pub(crate) async fn text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await?;
        success_text(response, format_args!("GET {path}")).await
    }

    /// One unlabelled counter of `/metrics` (for example `sluice_store_commits_total`).
    pub(crate) async fn counter(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.text("/metrics").await?;
        text.lines()
            .find_map(|line| {
                let (metric, value) = line.split_once(' ')?;
                (metric == name).then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| anyhow::anyhow!("/metrics has no counter {name}"))
    }

    /// A PUT of raw bytes (a key's value).
    pub(crate) async fn put_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}{path}", self.url))
            .body(body)
            .send()
            .await?;
        success_text(response, format_args!("PUT {path}")).await?;
        Ok(())
    }

    pub(crate) async fn queue(&self, name: &str, settings: Value) -> anyhow::Result<()> {
        let mut body = settings;
        body["name"] = json!(name);
        self.call(reqwest::Method::POST, "/v1/queues", Some(body))
            .await?;
        Ok(())
    }

    pub(crate) async fn deploy(&self, name: &str, wasm: &[u8], query: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/v1/functions/{name}?{query}", self.url))
            .header("content-type", "application/wasm")
            .body(wasm.to_vec())
            .send()
            .await?;
        success_text(response, format_args!("deploy {name}")).await?;
        Ok(())
    }

    pub(crate) async fn trigger(
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
    pub(crate) async fn backlog(
        &self,
        queue: &str,
        n: u64,
        attributes: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        self.shaped_backlog(queue, n, attributes, |_| (DEFAULT_PRIORITY, None))
            .await
    }

    /// Like [`Bench::backlog`], giving message `seq` the priority and group `shape(seq)`.
    pub(crate) async fn shaped_backlog(
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
    pub(crate) async fn wait_empty(
        &self,
        queues: &[&str],
        deadline: Duration,
    ) -> anyhow::Result<Instant> {
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

    pub(crate) fn drain_deadline(&self) -> Duration {
        Duration::from_secs(60) + Duration::from_millis(self.args.messages / 5)
    }
}
