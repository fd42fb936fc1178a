//! Test support: a real `sluice serve` process on a temp data dir and port 0, with helpers to
//! talk to it, kill it, restart it, and build the guest components the tests upload.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The admin token every test server accepts (through `SLUICE_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// An HTTP client that sends `token` with every request.
pub fn client_with(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// A running `sluice serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// The SQS endpoint's URL, when started with `--sqs-listen`.
    pub sqs_url: Option<String>,
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
        Server::start_in_wrapped(data_dir, &[]).await
    }

    /// Starts a server on a fresh data dir with extra `sluice serve` arguments.
    pub async fn start_with(args: &[&str]) -> (Server, DataDir) {
        let dir = DataDir::new();
        let server = Server::start_in_with(dir.path(), &[], args).await;
        (server, dir)
    }

    /// Like [`Server::start_in`], running the binary through `wrapper` (a program and its
    /// arguments, e.g. a shell that sets resource limits and `exec`s the rest of its arguments).
    pub async fn start_in_wrapped(data_dir: &Path, wrapper: &[&str]) -> Server {
        Server::start_in_with(data_dir, wrapper, &[]).await
    }

    /// Starts a server on `data_dir` whose store is the PostgreSQL database at `url`.
    pub async fn start_on_postgres(data_dir: &Path, url: &str) -> Server {
        Server::start_in_with(data_dir, &[], &["--database", url]).await
    }

    /// Like [`Server::start_in_wrapped`], with extra `sluice serve` arguments.
    pub async fn start_in_with(data_dir: &Path, wrapper: &[&str], args: &[&str]) -> Server {
        let sluice = env!("CARGO_BIN_EXE_sluice");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(sluice);
                command
            }
            None => Command::new(sluice),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info,sluice=debug")
            .env("NO_COLOR", "1")
            .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let (sqs_tx, sqs_rx) = mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut sqs_tx = Some(sqs_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("sqs_endpoint=").nth(1)
                    && let Some(sqs_tx) = sqs_tx.take()
                {
                    let _ = sqs_tx.send(url.split_whitespace().next().unwrap_or("").to_owned());
                }
                if let Some(addr) = line.split("addr=").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
                if std::env::var_os("SLUICE_TEST_LOGS").is_some() {
                    eprintln!("[sluice] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("sluice did not report its address within 60 s");
        let sqs_url = args.contains(&"--sqs-listen").then(|| {
            sqs_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("sluice did not report its SQS endpoint within 60 s")
        });
        let server = Server {
            child,
            url: format!("http://{addr}"),
            sqs_url,
            http: client_with(Some(ADMIN_TOKEN)),
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

    /// `HOST:PORT`, for raw TCP.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    pub async fn put_json(&self, path: &str, body: Value) -> (u16, Value) {
        into_json(self.http.put(self.url(path)).json(&body).send().await).await
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

    /// A new admin token's SQS key pair: (access key id, secret access key).
    pub async fn sqs_key_pair(&self) -> (String, String) {
        let (status, made) = self
            .post(
                "/v1/tokens",
                serde_json::json!({"name": "sqs tests", "scopes": ["admin"], "sqs": true}),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let field = |name: &str| made[name].as_str().expect(name).to_owned();
        (field("sqs_access_key_id"), field("sqs_secret_access_key"))
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
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// Asserts the API's error shape and code.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "unexpected status; body: {body}");
    assert_eq!(
        body["error"]["code"], code,
        "unexpected error code; body: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
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

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

/// Builds a guest workspace (`examples` or `tests/guests`) for wasm32-wasip2 once per test
/// process (see `sluice_test_support::guests`) and returns its output directory.
fn build_workspace(workspace: &str) -> PathBuf {
    sluice_test_support::guests::build(workspace, None).unwrap_or_else(|e| panic!("{e}"))
}

/// The directory the examples' components are built into.
pub fn examples_dir() -> PathBuf {
    build_workspace("examples")
}

/// Runs the `sluice` CLI against `server` and returns its standard output; panics on failure.
pub fn cli(server: &Server, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_SERVER", &server.url)
        .env("SLUICE_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("run the sluice CLI");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sluice {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs the `sluice` CLI against `server` and returns what it did, succeeded or not.
pub fn cli_output(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_SERVER", &server.url)
        .env("SLUICE_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("run the sluice CLI")
}

/// A component from `examples/`, by crate name (`-` or `_`).
pub fn example(name: &str) -> Vec<u8> {
    let path = build_workspace("examples").join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A component from `tests/guests/`, by its name without the `guest-` prefix.
pub fn guest(name: &str) -> Vec<u8> {
    let path =
        build_workspace("tests/guests").join(format!("guest_{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Server {
    /// Uploads a component as function `name` (query: extra config), asserting success.
    pub async fn deploy(&self, name: &str, wasm: Vec<u8>, query: &str) -> Value {
        let (status, body) = self
            .put_wasm(&format!("/v1/functions/{name}?{query}"), wasm)
            .await;
        assert_eq!(status, 201, "deploy {name}: {body}");
        body
    }

    /// Binds function `name` to a queue, asserting success.
    pub async fn trigger(&self, name: &str, trigger: Value) -> Value {
        let response = self
            .http
            .put(self.url(&format!("/v1/functions/{name}/trigger")))
            .json(&trigger)
            .send()
            .await;
        let (status, body) = into_json(response).await;
        assert_eq!(status, 200, "trigger {name}: {body}");
        body
    }

    /// A queue's live stats.
    pub async fn stats(&self, queue: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/queues/{queue}")).await;
        assert_eq!(status, 200, "{body}");
        body["stats"].clone()
    }

    /// Enqueues `bodies` in batches of up to 1000, returning the ids.
    pub async fn enqueue_all(
        &self,
        queue: &str,
        bodies: impl IntoIterator<Item = Value>,
    ) -> Vec<String> {
        let bodies: Vec<Value> = bodies.into_iter().collect();
        let mut ids = Vec::new();
        for chunk in bodies.chunks(1000) {
            let (status, answer) = self
                .post(
                    &format!("/v1/queues/{queue}/messages/batch"),
                    serde_json::json!({ "messages": chunk }),
                )
                .await;
            assert_eq!(status, 201, "{answer}");
            ids.extend(
                answer["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_owned()),
            );
        }
        ids
    }
}

/// A Python or JavaScript example (`examples/python/…` or `examples/js/…`) built into a
/// component by `scripts/build-python` / `scripts/build-js`, once per content: the output is
/// cached under the target directory, keyed by a hash of every file the build reads (the
/// example, the SDK, the WIT, the build script), since one build takes 10–30 s.
pub fn polyglot_example(language: Language, name: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};

    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let repo = repo();
    let (dir, module, script, inputs): (_, _, _, &[&str]) = match language {
        Language::Python => (
            format!("examples/python/{name}"),
            format!("{}.py", if name == "log" { "log_handler" } else { name }),
            "scripts/build-python",
            &["sdk/python/sluice_sdk"],
        ),
        Language::JavaScript => (
            format!("examples/js/{name}"),
            "handler.js".to_owned(),
            "scripts/build-js",
            &["sdk/js/src", "sdk/js/build.mjs", "sdk/js/package-lock.json"],
        ),
    };
    let mut hash = Sha256::new();
    let mut files = Vec::new();
    for input in inputs.iter().copied().chain([dir.as_str(), "wit", script]) {
        sluice_test_support::guests::collect_sources(&repo.join(input), &mut files);
    }
    files.sort();
    for file in &files {
        hash.update(
            file.strip_prefix(&repo)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update(std::fs::read(file).unwrap());
    }
    let key = hex::encode(&hash.finalize()[..8]);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot");
    let out = out_dir.join(format!("{}-{name}-{key}.wasm", language.name()));
    // One build at a time: two at once on a small machine only make both slower.
    let _building = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        std::fs::create_dir_all(&out_dir).unwrap();
        let partial = out.with_extension("partial.wasm");
        let output = Command::new(repo.join(script))
            .arg(repo.join(&dir).join(&module))
            .arg("-o")
            .arg(&partial)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {script}: {e}"));
        assert!(
            output.status.success(),
            "{script} {dir}/{module} failed (scripts/test installs the toolchains):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&partial, &out).unwrap();
    }
    std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
}

/// The languages with an SDK beside Rust's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    JavaScript,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "js",
        }
    }
}

/// One answer read off a raw socket.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Value,
}

/// Reads one HTTP/1.1 answer (with a `content-length`) from `stream`.
pub async fn read_answer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<Raw> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    let body = &bytes[head_end..(head_end + length).min(bytes.len())];
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    Some(Raw { status, head, body })
}

/// Sends `request` on a new connection and reads the answer.
pub async fn raw(server: &Server, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(request).await.expect("send");
    tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream))
        .await
        .expect("an answer within 10 s")
        .expect("an answer before the connection closed")
}
