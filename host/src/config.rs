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
        }
    }
}
