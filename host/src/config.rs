//! Server configuration: parsed once at the binary's edge (flags, environment) and passed down.
//! Nothing below `main` reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `sluice serve` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database, uploaded components and compiled artifacts live.
    pub data_dir: PathBuf,
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    pub limits: ApiLimits,
    /// An admin token to accept (and keep) from the start; without one, the first start creates
    /// an admin token and prints it once.
    pub admin_token: Option<String>,
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
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 16 * 1024 * 1024,
            max_function_bytes: 64 * 1024 * 1024,
            max_batch_messages: 1000,
            max_attributes: 32,
            max_attribute_bytes: 1024,
        }
    }
}

impl Config {
    /// A configuration with default limits.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Config {
        Config {
            data_dir,
            listen,
            limits: ApiLimits::default(),
            admin_token: None,
        }
    }
}

/// `sluice.toml`: queues, functions and triggers, applied idempotently by `sluice apply`.
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
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub queues: std::collections::BTreeMap<String, crate::store::QueueSettings>,
    #[serde(default)]
    pub functions: std::collections::BTreeMap<String, FunctionManifest>,
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
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_field() {
        let err = Manifest::parse("[queues.a]\nmax_atempts = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_atempts"), "{err}");
        let err = Manifest::parse("[functions.f]\ncomponent = \"x\"\nmemory = 3\n").unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
    }
}
