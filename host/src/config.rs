//! Server configuration: parsed once at the binary's edge (flags, environment) and passed down.
//! Nothing below `main` reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `sluice serve` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and uploaded components live (without `database`), and the
    /// compiled-component cache (always).
    pub data_dir: PathBuf,
    /// A PostgreSQL URL shared by several hosts; `None` keeps everything in SQLite in
    /// `data_dir`.
    pub database: Option<String>,
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Address the SQS-compatible endpoint listens on; `None`: no SQS endpoint.
    pub sqs_listen: Option<SocketAddr>,
    pub limits: ApiLimits,
    pub connections: ConnectionLimits,
    /// An admin token to accept (and keep) from the start; without one, the first start creates
    /// an admin token and prints it once.
    pub admin_token: Option<String>,
    /// How long the invocation log is kept.
    pub invocations: crate::functions::LogRetention,
    /// How often each queue's stats are sampled for the console's charts.
    pub series_interval: std::time::Duration,
    /// Where uploads are compiled: `sluice serve` compiles each in a child process of itself.
    pub compiler: crate::executor::Compiler,
}

/// Limits on what a client may send, each with a clear error when exceeded.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest request body accepted for message routes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest component upload (413 beyond).
    pub max_function_bytes: usize,
    /// Most messages in one batch enqueue (400 beyond).
    pub max_batch_messages: usize,
    /// Most attributes on one message, and the longest name or value.
    pub max_attributes: usize,
    pub max_attribute_bytes: usize,
    /// Request bodies being buffered by all requests together; a body that would take the
    /// total past it is refused at once with 503 and `Retry-After` instead of being read.
    pub max_buffered_body_bytes: usize,
    /// How long a request's whole body may take to arrive once its head has (408 beyond).
    pub body_read_timeout: Duration,
    /// Longest request target (path and query) accepted (414 beyond).
    pub max_uri_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 16 * 1024 * 1024,
            max_function_bytes: 64 * 1024 * 1024,
            max_batch_messages: 1000,
            max_attributes: 32,
            max_attribute_bytes: 1024,
            max_buffered_body_bytes: 256 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(60),
            max_uri_bytes: 8 * 1024,
        }
    }
}

/// Limits on connections, so idle or slow clients cannot exhaust file descriptors or tasks.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once. It is lowered to fit the process's open-file limit.
    pub max_connections: usize,
    /// How long a request's head (request line and headers) may take to arrive once its first
    /// byte has.
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its first request, or for the next one after an
    /// answer (keep-alive), before it is closed.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers, 431 beyond).
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
        }
    }
}

impl Config {
    /// Where the store lives.
    pub fn store_location(&self) -> crate::store::Location {
        match &self.database {
            Some(url) => crate::store::Location::Postgres(url.clone()),
            None => crate::store::Location::Sqlite(self.data_dir.clone()),
        }
    }

    /// A configuration with default limits.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Config {
        Config {
            data_dir,
            database: None,
            listen,
            sqs_listen: None,
            limits: ApiLimits::default(),
            connections: ConnectionLimits::default(),
            admin_token: None,
            invocations: crate::functions::LogRetention::default(),
            series_interval: std::time::Duration::from_secs(10),
            compiler: crate::executor::Compiler::InProcess,
        }
    }
}

/// `sluice.toml`: queues, functions, triggers, schedules and topics, applied idempotently by
/// `sluice apply`.
///
/// ```toml
/// [queues.orders-dlq]
///
/// [queues.orders]
/// max_attempts = 3
/// dead_letter_queue = "orders-dlq"
///
/// [functions.enrich]
/// component = "target/wasm32-wasip2/release/chain_enrich.wasm"  # relative to this file
/// env = { NEXT_QUEUE = "enriched" }
/// timeout_ms = 5000
///
/// [functions.enrich.trigger]
/// queue = "orders"
/// batch_size = 100
/// max_wait_ms = 200
///
/// [schedules.nightly-report]
/// cron = "0 2 * * *"
/// timezone = "Europe/Berlin"
/// queue = "orders"
/// body = '{"report": "daily"}'
///
/// [topics.events]
/// retention_ms = 86400000
///
/// [topics.events.subscriptions.orders]
/// filter = { kind = "order", region = { prefix = "eu-" } }
/// from = "earliest"
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub queues: std::collections::BTreeMap<String, crate::api::model::QueueSettings>,
    #[serde(default)]
    pub functions: std::collections::BTreeMap<String, FunctionManifest>,
    #[serde(default)]
    pub schedules: std::collections::BTreeMap<String, ScheduleManifest>,
    #[serde(default)]
    pub topics: std::collections::BTreeMap<String, TopicManifest>,
    /// Key-value buckets (`[kv.NAME]`), which functions name in `kv_buckets`.
    #[serde(default)]
    pub kv: std::collections::BTreeMap<String, BucketManifest>,
}

/// A key-value bucket in the manifest.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketManifest {
    /// Keys expire this long after their last write; never when left out.
    pub ttl_ms: Option<u64>,
}

/// A topic in the manifest, with its subscriptions by queue.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicManifest {
    /// Default 1 day; a topic that exists keeps its retention.
    pub retention_ms: Option<u64>,
    #[serde(default)]
    pub subscriptions: std::collections::BTreeMap<String, SubscriptionManifest>,
}

/// `PUT /v1/topics/{topic}/subscriptions/{queue}`'s body.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionManifest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// `"latest"`, `"earliest"` or a time in ms; only for a new subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<serde_json::Value>,
}

/// A schedule in the manifest: `PUT /v1/schedules/{name}`'s body.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleManifest {
    pub cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    pub queue: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

fn utc() -> String {
    "UTC".to_owned()
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionManifest {
    /// Path to the built component, relative to the manifest.
    pub component: PathBuf,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_sends: Option<usize>,
    /// Where the handler may send HTTP requests (Spin's patterns); nowhere when left out.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// The key-value buckets the handler may open; none when left out.
    #[serde(default)]
    pub kv_buckets: Vec<String>,
    pub max_outbound_requests: Option<usize>,
    pub max_outbound_response_bytes: Option<u64>,
    pub outbound_timeout_ms: Option<u64>,
    pub trigger: Option<TriggerManifest>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerManifest {
    pub queue: String,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    #[serde(default)]
    pub max_wait_ms: u64,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    #[serde(default)]
    pub paused: bool,
}

fn default_batch_size() -> u32 {
    10
}

fn default_concurrency() -> u32 {
    4
}

impl Manifest {
    /// Parses a manifest; the error names the offending line and field.
    pub fn parse(text: &str) -> Result<Manifest, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_queues_functions_and_triggers() {
        let manifest = Manifest::parse(
            r#"
            [queues.orders-dlq]
            [queues.orders]
            max_attempts = 3
            dead_letter_queue = "orders-dlq"
            backoff = { initial_ms = 100 }

            [functions.enrich]
            component = "enrich.wasm"
            env = { NEXT_QUEUE = "enriched" }
            [functions.enrich.trigger]
            queue = "orders"
            batch_size = 100

            [schedules.nightly]
            cron = "0 2 * * *"
            queue = "orders"
            attributes = { kind = "report" }

            [topics.events]
            [topics.events.subscriptions.orders]
            filter = { kind = "order", region = { prefix = "eu-" } }
            from = "earliest"
            "#,
        )
        .unwrap();
        assert_eq!(manifest.queues.len(), 2);
        assert_eq!(manifest.queues["orders"].max_attempts, 3);
        assert_eq!(manifest.queues["orders"].backoff.initial_ms, 100);
        assert_eq!(
            manifest.queues["orders"].backoff.max_ms, 300_000,
            "defaults fill the rest"
        );
        let enrich = &manifest.functions["enrich"];
        assert_eq!(enrich.env["NEXT_QUEUE"], "enriched");
        let trigger = enrich.trigger.as_ref().unwrap();
        assert_eq!((trigger.batch_size, trigger.max_concurrency), (100, 4));
        let nightly = &manifest.schedules["nightly"];
        assert_eq!(
            (nightly.timezone.as_str(), nightly.body.as_str()),
            ("UTC", "")
        );
        assert_eq!(nightly.attributes["kind"], "report");
        let orders = &manifest.topics["events"].subscriptions["orders"];
        assert_eq!(
            orders.filter,
            Some(serde_json::json!({"kind": "order", "region": {"prefix": "eu-"}}))
        );
        assert_eq!(orders.from, Some(serde_json::json!("earliest")));
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_field() {
        let err = Manifest::parse("[kv.seen]\nttl = 3\n").unwrap_err();
        assert!(err.to_string().contains("ttl"), "{err}");
        let manifest = Manifest::parse("[kv.counts]\n[kv.seen]\nttl_ms = 3600000\n").unwrap();
        assert_eq!(manifest.kv["seen"].ttl_ms, Some(3_600_000));
        assert_eq!(manifest.kv["counts"], BucketManifest::default());
        let err = Manifest::parse("[queues.a]\nmax_atempts = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_atempts"), "{err}");
        let err = Manifest::parse("[functions.f]\ncomponent = \"x\"\nmemory = 3\n").unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
    }
}
