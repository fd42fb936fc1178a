//! Runs handler components: the wasmtime engine, the compiled-component cache, per-invocation
//! limits (time, memory), a WASI context that grants nothing, and the outbox import.

// SKELETON: the public API the rest of the host codes against; filled in by the executor's
// implementation. Signatures change only by agreement.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Message;

/// Why a component could not be prepared, or the executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upload is not usable as a handler; the message says what is wrong and how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("compiled-component cache at {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
    #[error("wasmtime: {0}")]
    Engine(String),
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where compiled components are cached, keyed by content hash.
    pub cache_dir: PathBuf,
    /// The largest memory any instance may have; per-function limits are at most this.
    pub max_memory_bytes: u64,
    /// How many instances may run at once (the pooling allocator's size).
    pub max_instances: u32,
}

/// Per-function limits and grants.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Environment variables the function may read; nothing else of the host's is visible.
    pub env: Vec<(String, String)>,
    pub max_sends: usize,
    pub max_send_bytes: usize,
    pub max_log_bytes: usize,
}

/// Decides whether an outbox `send` to a queue is accepted (the queue must exist).
pub type SendCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A message the handler sent through the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub queue: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    pub delay_ms: u32,
}

/// What the handler asked for one failed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Retry(Option<u32>),
    DeadLetter(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemFailure {
    pub id: String,
    pub disposition: Disposition,
}

/// Why an invocation failed without returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Panic,
    Timeout,
    OutOfMemory,
    StackOverflow,
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `ok(failures)`: the listed messages failed, the rest are acknowledged.
    Ok(Vec<ItemFailure>),
    /// `err(reason)` returned by the handler.
    Error(String),
    /// The instance trapped, panicked, ran out of time or memory.
    Failed { kind: FailureKind, message: String },
}

/// The full record of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub outcome: Outcome,
    /// Captured stdout and stderr, interleaved, bounded by `Limits::max_log_bytes`.
    pub logs: String,
    /// Outbox sends, in order; to be committed only when `outcome` is `Ok`.
    pub sends: Vec<Outgoing>,
    pub duration: Duration,
}

/// A validated, compiled component ready to be instantiated.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<()>,
}

/// The wasmtime engine and everything shared between invocations; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<()>,
}

#[allow(unused_variables, clippy::todo)]
impl Executor {
    pub fn new(config: ExecutorConfig) -> Result<Executor, Error> {
        todo!()
    }
    /// Validates `wasm` as a handler component and compiles it (or loads it from the cache).
    pub fn prepare(&self, wasm: &[u8]) -> Result<Handler, Error> {
        todo!()
    }
    /// Runs `batch` in a fresh instance of `handler`.
    pub async fn invoke(&self, handler: &Handler, limits: &Limits, batch: Vec<Message>, check: SendCheck) -> Invocation {
        todo!()
    }
}
