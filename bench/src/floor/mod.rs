//! The floors and peers Sluice is held against: what the same durable work costs with nothing
//! in between (no HTTP, no dispatcher, no WebAssembly): on SQLite with the store's own
//! statements, on PostgreSQL with the delivery contract's statements, and the strong plain
//! queue a user would write instead on either, in-process and behind HTTP.

pub(crate) mod http;
pub(crate) mod plain;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::path::Path;

use crate::BenchArgs;

/// Runs one of the SQLite floor's measurements on a blocking thread, in `dir`, with the
/// benchmark's message count, body size and batch size.
pub(crate) async fn on_floor<T: Send + 'static>(
    args: &BenchArgs,
    dir: &Path,
    measure: fn(&Path, u64, usize, usize) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (dir, n, body, batch) = (
        dir.to_owned(),
        args.messages,
        args.body_bytes,
        args.batch_size as usize,
    );
    tokio::task::spawn_blocking(move || measure(&dir, n, body, batch)).await?
}
