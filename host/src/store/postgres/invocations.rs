//! The invocation log in PostgreSQL: one row per handler invocation on any host, newest first
//! by id, with paging, an outcome filter, bounded retention (an age and a per-function cap) and
//! stats over time, so `sluice logs` and the console show every host's invocations and survive
//! restarts.

use deadpool_postgres::{GenericClient, Transaction};

use super::super::invocation_stats::PERCENTILES;
use super::super::{
    Error, InvocationBucket, InvocationEntry, InvocationQuery, InvocationRetention, Result,
    StatsWindow,
};
use super::{count, int};

const INSERT: &str = "INSERT INTO invocations
    (function, version, started_at, duration_ms, batch_size, outcome, dry_run, error, failures,
     logs, sent)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";
/// A page of one function's log, newest first: ids below `$2`, outcomes in `$3` (every
/// outcome when it is empty).
const PAGE: &str = "SELECT id, function, version, started_at, duration_ms, batch_size, outcome,
    dry_run, error, failures, logs, sent FROM invocations
    WHERE function = $1 AND id < $2 AND (cardinality($3::text[]) = 0 OR outcome = ANY($3))
    ORDER BY id DESC LIMIT $4";
/// Keeps the newest `$2` rows of function `$1`.
const TRIM_FUNCTION: &str = "DELETE FROM invocations WHERE function = $1 AND id <= (
    SELECT id FROM invocations WHERE function = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)";
/// Keeps the newest rows of function `$1` whose output and errors add up to at most `$2`
/// bytes, and the newest one whatever its size. `octet_length` of a value stored out of line
/// reads its size, not the value.
const TRIM_FUNCTION_BYTES: &str = "DELETE FROM invocations WHERE function = $1 AND id <= (
    SELECT id FROM (
        SELECT id, sum(octet_length(logs) + coalesce(octet_length(error), 0))
            OVER (ORDER BY id DESC) AS kept,
            row_number() OVER (ORDER BY id DESC) AS newest
        FROM invocations WHERE function = $1) sized
    WHERE kept > $2 AND newest > 1 ORDER BY id DESC LIMIT 1)";
/// Deletes rows started before `$1` among the `$2` oldest: ids grow with time, so walking the
/// primary key from the start finds the expired ones without an index on `started_at`, and
/// never walks more than `$2` rows.
const EXPIRE: &str = "DELETE FROM invocations WHERE id IN (
    SELECT id FROM invocations ORDER BY id LIMIT $2) AND started_at < $1";
pub const DELETE_FUNCTION: &str = "DELETE FROM invocations WHERE function = $1";

/// Schema version 11: a function's invocations by start time, so stats over a window read only
/// the window's rows, however long the log the server keeps.
pub const SCHEMA_V11: &str =
    "CREATE INDEX invocations_by_start ON invocations(function, started_at);";

/// Function `$1`'s invocations (not dry runs) started from `$2` up to `$3` in buckets of `$4`
/// ms from `$2`: per non-empty bucket, how many, how many failed, and the duration
/// percentiles of [`PERCENTILES`] (one sort per bucket).
const STATS: &str = "SELECT (started_at - $2) / $4 AS bucket, count(*),
    count(*) FILTER (WHERE outcome <> 'ok'),
    percentile_cont($5::float8[]) WITHIN GROUP (ORDER BY duration_ms)
    FROM invocations
    WHERE function = $1 AND started_at >= $2 AND started_at < $3 AND NOT dry_run
    GROUP BY bucket ORDER BY bucket";

/// The most expired rows one write removes.
const MAX_EXPIRED_PER_WRITE: i64 = 1_000;
/// The most expired rows one sweep removes (the next sweep goes on).
const MAX_EXPIRED_PER_SWEEP: i64 = 10_000;

pub async fn insert(
    tx: &Transaction<'_>,
    now: u64,
    mut entries: Vec<InvocationEntry>,
    retention: Option<InvocationRetention>,
) -> Result<Vec<InvocationEntry>> {
    let mut functions: Vec<String> = Vec::new();
    for entry in &mut entries {
        let failures = match &entry.failures {
            serde_json::Value::Array(a) if a.is_empty() => None,
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        };
        let row = tx
            .query_one(
                &tx.prepare_cached(INSERT).await?,
                &[
                    &entry.function,
                    &i32::try_from(entry.version).unwrap_or(i32::MAX),
                    &int(entry.started_at_ms),
                    &entry.duration_ms,
                    &int(entry.batch_size),
                    &entry.outcome,
                    &entry.dry_run,
                    &entry.error,
                    &failures,
                    &entry.logs,
                    &int(entry.sent),
                ],
            )
            .await?;
        entry.id = count(row.get(0));
        if !functions.contains(&entry.function) {
            functions.push(entry.function.clone());
        }
    }
    let Some(retention) = retention else {
        return Ok(entries);
    };
    for function in functions {
        tx.execute(
            TRIM_FUNCTION,
            &[&function, &int(retention.max_per_function)],
        )
        .await?;
        tx.execute(
            TRIM_FUNCTION_BYTES,
            &[&function, &int(retention.max_bytes_per_function)],
        )
        .await?;
    }
    let cutoff = int(now.saturating_sub(retention.max_age_ms));
    tx.execute(EXPIRE, &[&cutoff, &MAX_EXPIRED_PER_WRITE])
        .await?;
    Ok(entries)
}

/// The sweep's part: removes up to [`MAX_EXPIRED_PER_SWEEP`] invocations started before
/// `cutoff` (ms), oldest first.
pub async fn expire(tx: &Transaction<'_>, cutoff: u64) -> Result<u64> {
    Ok(tx
        .execute(EXPIRE, &[&int(cutoff), &MAX_EXPIRED_PER_SWEEP])
        .await?)
}

pub async fn stats(
    client: &impl GenericClient,
    function: &str,
    window: &StatsWindow,
) -> Result<Vec<InvocationBucket>> {
    let rows = client
        .query(
            STATS,
            &[
                &function,
                &int(window.start_ms),
                &int(window.end_ms),
                &int(window.bucket_ms),
                &PERCENTILES.to_vec(),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let percentiles: Vec<f64> = row.get(3);
            let [p50_ms, p95_ms, p99_ms] = [0, 1, 2].map(|i| percentiles.get(i).copied());
            Ok(InvocationBucket {
                start_ms: window.bucket_start(row.get(0)),
                invocations: count(row.get(1)),
                errors: count(row.get(2)),
                p50_ms,
                p95_ms,
                p99_ms,
            })
        })
        .collect()
}

pub async fn page(
    client: &impl GenericClient,
    function: &str,
    query: &InvocationQuery,
) -> Result<Vec<InvocationEntry>> {
    let before = query.before.map(int).unwrap_or(i64::MAX);
    let rows = client
        .query(
            PAGE,
            &[&function, &before, &query.outcomes, &(query.limit as i64)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let failures: Option<String> = row.get(9);
            let failures = match failures {
                Some(text) => serde_json::from_str(&text).map_err(|e| {
                    Error::Unavailable(format!("stored invocation failures are unreadable: {e}"))
                })?,
                None => serde_json::Value::Array(Vec::new()),
            };
            Ok(InvocationEntry {
                id: count(row.get(0)),
                function: row.get(1),
                version: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
                started_at_ms: count(row.get(3)),
                duration_ms: row.get(4),
                batch_size: count(row.get(5)),
                outcome: row.get(6),
                dry_run: row.get(7),
                error: row.get(8),
                failures,
                logs: row.get(10),
                sent: count(row.get(11)),
            })
        })
        .collect()
}
