//! The function registry: upload (validate, compile, store the component by content hash),
//! versions, activation and rollback, and the per-function config (env, limits) that the
//! executor runs each invocation with. Its [`log`] keeps every invocation.

mod log;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::executor::{
    self, Executor, FailureKind, Handler, Invocation, Limits, OutboxCheck, Outcome,
};
use crate::store::{self, FunctionRecord, Message, Store};

pub use log::{InvocationLog, LogRetention};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Executor(#[from] executor::Error),
    #[error("invalid function config: {0}")]
    InvalidConfig(String),
    #[error("invalid function name `{0}`: use 1 to 80 characters of A-Z, a-z, 0-9, `-` and `_`")]
    InvalidName(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A function's settings, given with each upload and kept with that version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionConfig {
    /// Environment variables the handler may read; it sees nothing else of the host's.
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit of one invocation.
    pub timeout_ms: u64,
    /// Memory limit of one instance.
    pub memory_mb: u64,
    /// Most messages one invocation may send, publish and reply through the outbox, together.
    pub max_sends: usize,
    /// Where the handler may send HTTP requests, as Spin writes them (`https://api.example.com`,
    /// `https://*.example.com:443`, `http://127.0.0.1:8080`); nowhere when empty.
    pub allowed_outbound_hosts: Vec<String>,
    /// Outbound HTTP requests one invocation may have in flight at once; more wait.
    pub max_outbound_requests: usize,
    /// Response body bytes one outbound request may read.
    pub max_outbound_response_bytes: u64,
    /// From sending an outbound request to its response head, connecting included.
    pub outbound_timeout_ms: u64,
    /// The key-value buckets the handler may open; none when empty.
    pub kv_buckets: Vec<String>,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        FunctionConfig {
            env: BTreeMap::new(),
            timeout_ms: 30_000,
            memory_mb: 128,
            max_sends: DEFAULT_MAX_SENDS,
            allowed_outbound_hosts: Vec::new(),
            max_outbound_requests: 16,
            max_outbound_response_bytes: 16 << 20,
            outbound_timeout_ms: 10_000,
            kv_buckets: Vec::new(),
        }
    }
}

/// The most memory any function may ask for; also what the engine's instance pool reserves.
pub const MAX_MEMORY_MB: u64 = 1024;
const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
/// Outbox sends per invocation, by default and at most.
pub const DEFAULT_MAX_SENDS: usize = 10_000;
const MAX_SENDS: usize = 100_000;
const MAX_OUTBOUND_REQUESTS: usize = 1_000;
const MAX_OUTBOUND_RESPONSE_BYTES: u64 = 1 << 30;

impl FunctionConfig {
    pub fn validate(&self) -> Result<()> {
        let min_timeout_ms = executor::MIN_TIMEOUT.as_millis() as u64;
        if !(min_timeout_ms..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(Error::InvalidConfig(format!(
                "timeout_ms must be between {min_timeout_ms} and {MAX_TIMEOUT_MS}, got {}; a \
                 time limit is held to within 5% or 20 ms even on a busy machine, which a limit \
                 shorter than {min_timeout_ms} ms cannot be",
                self.timeout_ms
            )));
        }
        if !(1..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(Error::InvalidConfig(format!(
                "memory_mb must be between 1 and {MAX_MEMORY_MB}, got {}",
                self.memory_mb
            )));
        }
        if !(1..=MAX_SENDS).contains(&self.max_sends) {
            return Err(Error::InvalidConfig(format!(
                "max_sends must be between 1 and {MAX_SENDS}, got {}",
                self.max_sends
            )));
        }
        executor::AllowList::parse(&self.allowed_outbound_hosts).map_err(Error::InvalidConfig)?;
        for bucket in &self.kv_buckets {
            store::state::validate_bucket_name(bucket)
                .map_err(|e| Error::InvalidConfig(format!("kv_buckets: {e}")))?;
        }
        if !(1..=MAX_OUTBOUND_REQUESTS).contains(&self.max_outbound_requests) {
            return Err(Error::InvalidConfig(format!(
                "max_outbound_requests must be between 1 and {MAX_OUTBOUND_REQUESTS}, got {}",
                self.max_outbound_requests
            )));
        }
        if !(1..=MAX_OUTBOUND_RESPONSE_BYTES).contains(&self.max_outbound_response_bytes) {
            return Err(Error::InvalidConfig(format!(
                "max_outbound_response_bytes must be between 1 and {MAX_OUTBOUND_RESPONSE_BYTES}, got {}",
                self.max_outbound_response_bytes
            )));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.outbound_timeout_ms) {
            return Err(Error::InvalidConfig(format!(
                "outbound_timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, got {}",
                self.outbound_timeout_ms
            )));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(Error::InvalidConfig(format!(
                    "environment variable name `{name}` must be non-empty without `=` or NUL"
                )));
            }
        }
        Ok(())
    }

    /// The limits `function` runs with. The config must have passed [`FunctionConfig::validate`]
    /// (an allow-list that no longer parses allows nothing).
    pub fn limits(&self, function: &str) -> Limits {
        let allow = executor::AllowList::parse(&self.allowed_outbound_hosts).unwrap_or_else(|e| {
            tracing::warn!(
                function,
                "stored allowed_outbound_hosts refused, allowing nothing: {e}"
            );
            executor::AllowList::default()
        });
        Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb * 1024 * 1024,
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            max_sends: self.max_sends,
            max_send_bytes: 64 * 1024 * 1024,
            max_log_bytes: 64 * 1024,
            kv_buckets: self.kv_buckets.iter().cloned().collect(),
            outbound: executor::OutboundLimits {
                function: Arc::from(function),
                allow: Arc::new(allow),
                max_concurrent: self.max_outbound_requests,
                max_response_bytes: self.max_outbound_response_bytes,
                timeout: Duration::from_millis(self.outbound_timeout_ms),
            },
        }
    }
}

/// One invocation as kept in the invocation log and returned by `invoke`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvocationRecord {
    /// Its place in the log: later invocations have greater ids (a cursor for paging).
    pub id: u64,
    pub function: String,
    pub version: u32,
    pub started_at_ms: u64,
    pub duration_ms: f64,
    pub batch_size: usize,
    /// `ok`, `error` (the handler returned `err`), or a failure: `trap`, `panic`, `timeout`,
    /// `out_of_memory`, `stack_overflow`.
    pub outcome: String,
    /// A dry run (`POST /v1/functions/{name}/invoke`): nothing it did was committed.
    pub dry_run: bool,
    pub error: Option<String>,
    pub failures: Vec<serde_json::Value>,
    pub logs: String,
    /// How many messages the handler sent (committed only when `outcome` is `ok`).
    pub sent: usize,
    /// The sends themselves; kept for dry runs, left out of the recent-invocations log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sends: Vec<serde_json::Value>,
    /// The messages published to topics; kept for dry runs, left out of the log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publishes: Vec<serde_json::Value>,
    /// The replies to messages of the batch; kept for dry runs, left out of the log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<serde_json::Value>,
}

impl InvocationRecord {
    /// A dry run keeps the sent, published and replied messages themselves, not just the count
    /// of sends.
    pub fn new(
        function: &str,
        version: u32,
        batch_size: usize,
        started_at_ms: u64,
        invocation: &Invocation,
        dry_run: bool,
    ) -> Self {
        let (outcome, error, failures) = match &invocation.outcome {
            Outcome::Ok(failures) => {
                let failures = failures
                    .iter()
                    .map(|f| match &f.disposition {
                        executor::Disposition::Retry(delay) => {
                            serde_json::json!({"id": f.id, "disposition": "retry", "delay_ms": delay})
                        }
                        executor::Disposition::DeadLetter(reason) => {
                            serde_json::json!({"id": f.id, "disposition": "dead_letter", "reason": reason})
                        }
                    })
                    .collect();
                ("ok", None, failures)
            }
            Outcome::Error(reason) => ("error", Some(reason.clone()), Vec::new()),
            Outcome::Failed { kind, message } => {
                (failure_name(*kind), Some(message.clone()), Vec::new())
            }
        };
        let sends = invocation
            .sends
            .iter()
            .filter(|_| dry_run)
            .map(|s| {
                let mut send = message_json(&s.body, &s.attributes);
                send["queue"] = s.queue.clone().into();
                send["delay_ms"] = s.delay_ms.into();
                send["priority"] = s.priority.into();
                send["group"] = s.group.clone().into();
                send
            })
            .collect();
        let publishes = invocation
            .publishes
            .iter()
            .filter(|_| dry_run)
            .map(|p| {
                let mut publish = message_json(&p.body, &p.attributes);
                publish["topic"] = p.topic.clone().into();
                publish
            })
            .collect();
        let replies = invocation
            .replies
            .iter()
            .filter(|_| dry_run)
            .map(|r| {
                let mut reply = message_json(&r.body, &r.attributes);
                reply["message_id"] = r.message_id.clone().into();
                reply
            })
            .collect();
        InvocationRecord {
            id: 0,
            function: function.to_owned(),
            version,
            started_at_ms,
            duration_ms: invocation.duration.as_secs_f64() * 1000.0,
            batch_size,
            outcome: outcome.to_owned(),
            dry_run,
            error,
            failures,
            logs: invocation.logs.clone(),
            sent: invocation.sends.len(),
            sends,
            publishes,
            replies,
        }
    }
}

/// A message's body (as text when it is UTF-8, and in base64) and attributes, for a dry run.
fn message_json(body: &[u8], attributes: &[(String, String)]) -> serde_json::Value {
    use base64::Engine as _;
    let attributes: serde_json::Map<_, _> = attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "body": std::str::from_utf8(body).ok(),
        "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
        "attributes": attributes,
    })
}

/// The outbox check of one invocation: a send must go to a queue and a publish to a topic that
/// exists now, both looked up in the store's cached catalog. A topic deleted after the check is
/// found at the settle, which then fails with `TopicNotFound` (as a deleted queue fails it with
/// `QueueNotFound`).
///
/// The handler's key-value reads go to `store` too.
pub async fn outbox_check(store: &Store) -> OutboxCheck {
    let queues = store.clone();
    let topics = store.topic_names().await;
    if let Err(err) = &topics {
        tracing::warn!(%err, "cannot load the topic names; publishes fail until it can");
    }
    OutboxCheck::new(
        move |queue| match queues.queue_exists(queue) {
            true => Ok(()),
            false => Err(format!("queue `{queue}` does not exist")),
        },
        move |topic| match &topics {
            Ok(names) if names.contains(topic) => Ok(()),
            Ok(_) => Err(format!("topic `{topic}` does not exist")),
            Err(err) => Err(format!(
                "cannot check that topic `{topic}` exists: {err}; fail the batch to have it retried"
            )),
        },
    )
    .reading_state(store.clone())
}

pub fn failure_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Trap => "trap",
        FailureKind::Panic => "panic",
        FailureKind::Timeout => "timeout",
        FailureKind::OutOfMemory => "out_of_memory",
        FailureKind::StackOverflow => "stack_overflow",
    }
}

/// The active version of a function, ready to run.
#[derive(Clone)]
pub struct Active {
    pub name: String,
    pub version: u32,
    pub handler: Handler,
    pub limits: Limits,
}

/// The registry; cheap to clone.
#[derive(Clone)]
pub struct Functions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    executor: Executor,
    /// Prepared components by sha256, so each is compiled or loaded once per process.
    handlers: Mutex<HashMap<String, Handler>>,
    log: InvocationLog,
}

impl Functions {
    /// Components are kept by the store, so every host sharing it can run every function;
    /// each host compiles them once into the executor's cache. Invocations are kept for
    /// `retention`.
    pub fn new(store: Store, executor: Executor, retention: LogRetention) -> Functions {
        Functions {
            inner: Arc::new(Inner {
                log: InvocationLog::new(store.clone(), retention),
                store,
                executor,
                handlers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Every invocation: kept, paged and followed.
    pub fn log(&self) -> &InvocationLog {
        &self.inner.log
    }

    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    /// Validates and compiles `wasm`, stores it, and makes it the active version of `name`.
    /// Nothing is stored when validation fails.
    pub async fn upload(
        &self,
        name: &str,
        wasm: Vec<u8>,
        config: FunctionConfig,
    ) -> Result<FunctionRecord> {
        validate_name(name)?;
        config.validate()?;
        let sha256 = hex::encode(Sha256::digest(&wasm));
        let (handler, wasm) = self.prepare(wasm).await?;
        let size = wasm.len() as u64;
        self.inner.store.put_component(&sha256, wasm).await?;
        self.cache(&sha256, handler);
        let config =
            serde_json::to_value(&config).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        Ok(self
            .inner
            .store
            .add_function_version(name, &sha256, size, config)
            .await?)
    }

    pub async fn get(&self, name: &str) -> Result<FunctionRecord> {
        Ok(self.inner.store.get_function(name).await?)
    }

    pub async fn list(&self) -> Result<Vec<FunctionRecord>> {
        Ok(self.inner.store.list_functions().await?)
    }

    /// Deletes the function with its versions, trigger and invocation log.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.inner.store.delete_function(name).await?;
        Ok(())
    }

    /// Activates `version`, or the newest version older than the active one.
    pub async fn rollback(&self, name: &str, version: Option<u32>) -> Result<FunctionRecord> {
        let record = self.inner.store.get_function(name).await?;
        let target = match version {
            Some(version) => version,
            None => record
                .versions
                .iter()
                .map(|v| v.version)
                .filter(|v| *v < record.active_version)
                .max()
                .ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "function `{name}` has no version older than {} to roll back to",
                        record.active_version
                    ))
                })?,
        };
        Ok(self.inner.store.activate_version(name, target).await?)
    }

    /// The active version of `name`, compiled and ready (loaded from the cache if needed).
    pub async fn active(&self, name: &str) -> Result<Active> {
        let record = self.inner.store.get_function(name).await?;
        let version = record
            .versions
            .iter()
            .find(|v| v.version == record.active_version)
            .ok_or(store::Error::VersionNotFound {
                name: name.to_owned(),
                version: record.active_version,
            })?;
        let config: FunctionConfig = serde_json::from_value(version.config.clone())
            .map_err(|e| Error::InvalidConfig(format!("stored config of `{name}`: {e}")))?;
        let handler = self.handler(&version.sha256).await?;
        Ok(Active {
            name: record.name,
            version: version.version,
            handler,
            limits: config.limits(name),
        })
    }

    /// Runs the active version on `batch` and returns everything it did, committing nothing.
    pub async fn invoke(&self, name: &str, batch: Vec<Message>) -> Result<InvocationRecord> {
        let active = self.active(name).await?;
        let check = outbox_check(&self.inner.store).await;
        let started_at_ms = self.inner.store.now_ms();
        let size = batch.len();
        let invocation = self
            .inner
            .executor
            .invoke(&active.handler, &active.limits, batch, check)
            .await;
        let record =
            InvocationRecord::new(name, active.version, size, started_at_ms, &invocation, true);
        self.inner.log.record(record).await
    }

    async fn handler(&self, sha256: &str) -> Result<Handler> {
        if let Some(handler) = self
            .inner
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256)
        {
            return Ok(handler.clone());
        }
        let wasm = self.inner.store.get_component(sha256).await?;
        let (handler, _) = self.prepare(wasm).await?;
        self.cache(sha256, handler.clone());
        Ok(handler)
    }

    /// Validates and compiles `wasm`, handing the bytes back for storing.
    async fn prepare(&self, wasm: Vec<u8>) -> Result<(Handler, Vec<u8>)> {
        let executor = self.inner.executor.clone();
        // Compiling is CPU-bound for tens of milliseconds or more: keep it off the reactor.
        let (prepared, wasm) = tokio::task::spawn_blocking(move || (executor.prepare(&wasm), wasm))
            .await
            .map_err(|e| Error::Executor(executor::Error::Engine(e.to_string())))?;
        Ok((prepared.map_err(Error::Executor)?, wasm))
    }

    fn cache(&self, sha256: &str, handler: Handler) {
        self.inner
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256.to_owned(), handler);
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_valid_and_bounds_are_enforced() {
        assert!(FunctionConfig::default().validate().is_ok());
        let zero = FunctionConfig {
            timeout_ms: 0,
            ..Default::default()
        };
        assert!(matches!(zero.validate(), Err(Error::InvalidConfig(_))));
        let shortest = executor::MIN_TIMEOUT.as_millis() as u64;
        let too_short = FunctionConfig {
            timeout_ms: shortest - 1,
            ..Default::default()
        };
        match too_short.validate() {
            Err(Error::InvalidConfig(message)) => assert!(
                message.starts_with(&format!("timeout_ms must be between {shortest} and ")),
                "{message}"
            ),
            other => panic!("a limit below the minimum was accepted: {other:?}"),
        }
        let shortest = FunctionConfig {
            timeout_ms: shortest,
            ..Default::default()
        };
        assert!(shortest.validate().is_ok());
        let huge = FunctionConfig {
            memory_mb: MAX_MEMORY_MB + 1,
            ..Default::default()
        };
        assert!(matches!(huge.validate(), Err(Error::InvalidConfig(_))));
        let bad_env = FunctionConfig {
            env: [("A=B".to_owned(), "x".to_owned())].into(),
            ..Default::default()
        };
        assert!(matches!(bad_env.validate(), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn names_allow_only_safe_characters() {
        assert!(validate_name("orders-enrich_2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"x".repeat(81)).is_err());
    }
}
