//! Test support: a real `sluice serve` process on a temp data dir and port 0, with helpers to
//! talk to it, kill it, restart it, and build the guest components the tests upload.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A running `sluice serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    _logs: std::thread::JoinHandle<()>,
}

/// Owns the data directory across restarts.
pub struct DataDir(pub TempDir);

impl DataDir {
    pub fn new() -> DataDir {
        DataDir(tempfile::tempdir().expect("temp dir"))
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Server {
    /// Starts a server on a fresh data dir that lives as long as the returned `DataDir`.
    pub async fn start() -> (Server, DataDir) {
        let dir = DataDir::new();
        let server = Server::start_in(dir.path()).await;
        (server, dir)
    }

    /// Starts a server on `data_dir` and waits until it is ready.
    pub async fn start_in(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info,sluice=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("addr=").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                    }
                }
                if std::env::var_os("SLUICE_TEST_LOGS").is_some() {
                    eprintln!("[sluice] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("sluice did not report its address within 60 s");
        let server = Server {
            child,
            url: format!("http://{addr}"),
            data_dir: data_dir.to_owned(),
            http: reqwest::Client::new(),
            _logs: logs,
        };
        let ready = wait_for(Duration::from_secs(30), || async {
            matches!(server.http.get(server.url("/readyz")).send().await, Ok(r) if r.status().is_success())
        })
        .await;
        assert!(ready, "sluice not ready within 30 s");
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait for sluice")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        into_json(self.http.get(self.url(path)).send().await).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        into_json(self.http.post(self.url(path)).json(&body).send().await).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        into_json(self.http.post(self.url(path)).body(body).send().await).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        into_json(self.http.patch(self.url(path)).json(&body).send().await).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        into_json(self.http.delete(self.url(path)).send().await).await
    }

    pub async fn put_wasm(&self, path: &str, wasm: Vec<u8>) -> (u16, Value) {
        let request = self
            .http
            .put(self.url(path))
            .header("content-type", "application/wasm")
            .body(wasm);
        into_json(request.send().await).await
    }

    /// Creates a queue, asserting success.
    pub async fn create_queue(&self, body: Value) -> Value {
        let (status, answer) = self.post("/v1/queues", body).await;
        assert_eq!(status, 201, "create queue: {answer}");
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn into_json(response: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let response = response.expect("request failed");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// Asserts the API's error shape and code.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "unexpected status; body: {body}");
    assert_eq!(body["error"]["code"], code, "unexpected error code; body: {body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
}

/// Polls `condition` until it holds or `deadline` passes; returns whether it held.
pub async fn wait_for<F, Fut>(deadline: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
