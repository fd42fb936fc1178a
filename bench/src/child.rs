//! `sluice serve` as a separate process of this very binary, for the phases that measure a
//! whole server (restart, idle and backlog memory, several hosts), and the admin client the
//! benchmark talks to every host with.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::Value;

use crate::memory::{Memory, rss_kib, status_kib};

/// The admin token of the benchmark's throwaway hosts; they live on temporary data dirs and
/// listen on loopback only.
pub(crate) const BENCH_TOKEN: &str = "sluice-bench-token";

/// An HTTP client that authenticates as the benchmark's admin.
pub(crate) fn authorized_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {BENCH_TOKEN}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// Waits until `queue` of the host at `url` has acknowledged `n` messages in all, for at most
/// `within`. The host is another process and its API has no event for this, so the benchmark
/// (a client) reads the queue's stats every 20 ms.
pub(crate) async fn wait_acked(
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

/// `sluice serve` (this very binary) on port 0; killed when dropped.
pub(crate) struct Child {
    pub(crate) process: std::process::Child,
    pub(crate) url: String,
}

impl Child {
    pub(crate) fn spawn(dir: &Path) -> anyhow::Result<Child> {
        Child::spawn_with(dir, &[])
    }

    /// Starts `sluice serve` on `dir`/data with `extra` arguments.
    pub(crate) fn spawn_with(dir: &Path, extra: &[&str]) -> anyhow::Result<Child> {
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
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
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

    pub(crate) fn rss_mib(&self) -> anyhow::Result<f64> {
        let kib = rss_kib(self.process.id()).context("VmRSS missing")?;
        Ok(kib as f64 / 1024.0)
    }

    pub(crate) fn stop(&mut self) {
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
