//! The invocation log: every invocation (dry runs marked) kept in the store for the retention
//! the server was given, read back a page at a time, and announced to followers (`sluice logs
//! --follow`, the console) the moment it is committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{InvocationRecord, Result};
use crate::store::{InvocationEntry, InvocationQuery, InvocationRetention, Store};

/// How many committed invocations a slow follower may fall behind before it misses some.
const FOLLOW_BUFFER: usize = 1024;

/// How long invocations are kept, from the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    pub max_age: Duration,
    pub max_per_function: u64,
    /// Bytes of captured output and errors kept per function, whatever the count.
    pub max_bytes_per_function: u64,
}

impl Default for LogRetention {
    fn default() -> Self {
        LogRetention {
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_per_function: 10_000,
            max_bytes_per_function: 16 << 20,
        }
    }
}

/// The log; cheap to clone.
#[derive(Clone)]
pub struct InvocationLog {
    store: Store,
    retention: InvocationRetention,
    live: broadcast::Sender<Arc<InvocationRecord>>,
}

impl InvocationLog {
    pub fn new(store: Store, retention: LogRetention) -> InvocationLog {
        InvocationLog {
            store,
            retention: InvocationRetention {
                max_age_ms: u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX),
                max_per_function: retention.max_per_function.max(1),
                max_bytes_per_function: retention.max_bytes_per_function,
            },
            live: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }

    /// Commits the invocation, then tells followers; returns it with its id.
    pub async fn record(&self, record: InvocationRecord) -> Result<InvocationRecord> {
        let (sends, publishes, replies) = (
            record.sends.clone(),
            record.publishes.clone(),
            record.replies.clone(),
        );
        let entry = to_entry(&record);
        let mut stored = self
            .store
            .record_invocations(vec![entry], self.retention)
            .await?;
        let mut record = stored.pop().map(from_entry).unwrap_or(record);
        let _ = self.live.send(Arc::new(record.clone()));
        record.sends = sends;
        record.publishes = publishes;
        record.replies = replies;
        Ok(record)
    }

    /// The record as the store keeps it and the retention to keep the log to, for a settle
    /// that commits the invocation with its batch ([`Store::settle_logged`]).
    pub fn entry(&self, record: &InvocationRecord) -> (InvocationEntry, InvocationRetention) {
        (to_entry(record), self.retention)
    }

    /// Tells followers about an invocation committed with its batch's settle.
    pub fn announce(&self, committed: InvocationEntry) {
        let _ = self.live.send(Arc::new(from_entry(committed)));
    }

    /// Invocations committed from now on, of every function.
    pub fn follow(&self) -> broadcast::Receiver<Arc<InvocationRecord>> {
        self.live.subscribe()
    }

    /// A page of `function`'s log, newest first.
    pub async fn page(
        &self,
        function: &str,
        query: InvocationQuery,
    ) -> Result<Vec<InvocationRecord>> {
        Ok(self
            .store
            .invocations(function, query)
            .await?
            .into_iter()
            .map(from_entry)
            .collect())
    }
}

fn to_entry(record: &InvocationRecord) -> InvocationEntry {
    InvocationEntry {
        id: 0,
        function: record.function.clone(),
        version: record.version,
        started_at_ms: record.started_at_ms,
        duration_ms: record.duration_ms,
        batch_size: record.batch_size as u64,
        outcome: record.outcome.clone(),
        dry_run: record.dry_run,
        error: record.error.clone(),
        failures: serde_json::Value::Array(record.failures.clone()),
        logs: record.logs.clone(),
        sent: record.sent as u64,
    }
}

fn from_entry(entry: InvocationEntry) -> InvocationRecord {
    InvocationRecord {
        id: entry.id,
        function: entry.function,
        version: entry.version,
        started_at_ms: entry.started_at_ms,
        duration_ms: entry.duration_ms,
        batch_size: usize::try_from(entry.batch_size).unwrap_or(usize::MAX),
        outcome: entry.outcome,
        dry_run: entry.dry_run,
        error: entry.error,
        failures: match entry.failures {
            serde_json::Value::Array(failures) => failures,
            _ => Vec::new(),
        },
        logs: entry.logs,
        sent: usize::try_from(entry.sent).unwrap_or(usize::MAX),
        sends: Vec::new(),
        publishes: Vec::new(),
        replies: Vec::new(),
    }
}
