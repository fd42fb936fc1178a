//! The invocation log at rest: one row per handler invocation (dry runs marked), newest first
//! by id, with paging, an outcome filter, bounded retention (an age and a per-function cap) and
//! stats over time. What an outcome means is decided by `functions`; this module only keeps and
//! finds rows.

use rusqlite::{Connection, Row, params};

use super::writer::{Tx, int};
use crate::store::invocation_stats::bucket_of;
use crate::store::{
    Error, InvocationBucket, InvocationEntry, InvocationQuery, InvocationRetention, Result,
    StatsWindow,
};

/// Version 4 of the schema: the invocation log.
pub const SCHEMA_V4: &str = "
CREATE TABLE invocations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    function    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    batch_size  INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    dry_run     INTEGER NOT NULL,
    error       TEXT,
    failures    TEXT,                                -- JSON array; NULL when none
    logs        TEXT NOT NULL,
    sent        INTEGER NOT NULL
);
-- Pages of one function's log walk this index backwards from a cursor.
CREATE INDEX invocations_by_function ON invocations(function, id);
";

/// Version 13: a function's invocations by start time, so stats over a window read only the
/// window's rows, however long the log the server keeps.
pub const SCHEMA_V13: &str = "
CREATE INDEX invocations_by_start ON invocations(function, started_at);
";

const INSERT: &str = "
INSERT INTO invocations
    (function, version, started_at, duration_ms, batch_size, outcome, dry_run, error, failures, logs, sent)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// A page of one function's log, newest first: ids below `?2`, outcomes in the JSON array `?3`
/// (every outcome when it is empty).
const PAGE: &str = "
SELECT id, function, version, started_at, duration_ms, batch_size, outcome, dry_run, error,
       failures, logs, sent
FROM invocations
WHERE function = ?1 AND id < ?2
  AND (json_array_length(?3) = 0 OR outcome IN (SELECT value FROM json_each(?3)))
ORDER BY id DESC
LIMIT (?4 + 0)";

/// Keeps the newest `?2` rows of function `?1`.
const TRIM_FUNCTION: &str = "
DELETE FROM invocations
WHERE function = ?1
  AND id <= (SELECT id FROM invocations WHERE function = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)";

/// Keeps the newest rows of function `?1` whose output and errors add up to at most `?2`
/// bytes, and the newest one whatever its size. `octet_length` reads a value's size from its
/// record header, not the value.
const TRIM_FUNCTION_BYTES: &str = "
DELETE FROM invocations
WHERE function = ?1
  AND id <= (SELECT id FROM (
      SELECT id, sum(octet_length(logs) + coalesce(octet_length(error), 0))
          OVER (ORDER BY id DESC) AS kept,
          row_number() OVER (ORDER BY id DESC) AS newest
      FROM invocations WHERE function = ?1)
    WHERE kept > ?2 AND newest > 1 ORDER BY id DESC LIMIT 1)";

/// Deletes rows started before `?1` among the `?2` oldest: ids grow with time, so walking the
/// primary key from the start finds the expired ones without an index on `started_at`.
const EXPIRE: &str = "
DELETE FROM invocations
WHERE id IN (SELECT id FROM invocations ORDER BY id LIMIT (?2 + 0)) AND started_at < ?1";

const DELETE_FUNCTION: &str = "DELETE FROM invocations WHERE function = ?1";

/// Function `?1`'s invocations (not dry runs) started from `?2` up to `?3`, each with its bucket
/// (of `?4` ms from `?2`) and whether it failed, in bucket order and, within a bucket, by
/// duration: each bucket's durations come sorted, ready for their percentiles.
const STATS: &str = "
SELECT (started_at - ?2) / ?4 AS bucket, outcome <> 'ok', duration_ms
FROM invocations
WHERE function = ?1 AND started_at >= ?2 AND started_at < ?3 AND dry_run = 0
ORDER BY bucket, duration_ms";

/// The most expired rows one write removes, so a long-idle log never holds the writer for long.
const MAX_EXPIRED_PER_WRITE: u64 = 1_000;

/// Stores `entries` in order, trims the log to `retention` when given, and returns the
/// entries with ids.
pub fn insert(
    tx: &mut Tx<'_>,
    mut entries: Vec<InvocationEntry>,
    retention: Option<InvocationRetention>,
) -> Result<Vec<InvocationEntry>> {
    let conn = tx.conn;
    let mut functions: Vec<String> = Vec::new();
    {
        let mut insert = conn.prepare_cached(INSERT)?;
        for entry in &mut entries {
            let failures = match &entry.failures {
                serde_json::Value::Array(a) if a.is_empty() => None,
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
            insert.execute(params![
                entry.function,
                entry.version,
                int(entry.started_at_ms),
                entry.duration_ms,
                int(entry.batch_size),
                entry.outcome,
                entry.dry_run,
                entry.error,
                failures,
                entry.logs,
                int(entry.sent),
            ])?;
            entry.id = u64::try_from(conn.last_insert_rowid()).unwrap_or(0);
            if !functions.contains(&entry.function) {
                functions.push(entry.function.clone());
            }
        }
    }
    let Some(retention) = retention else {
        return Ok(entries);
    };
    for function in functions {
        conn.prepare_cached(TRIM_FUNCTION)?
            .execute(params![function, int(retention.max_per_function)])?;
        conn.prepare_cached(TRIM_FUNCTION_BYTES)?
            .execute(params![function, int(retention.max_bytes_per_function)])?;
    }
    let cutoff = tx.now.saturating_sub(retention.max_age_ms);
    conn.prepare_cached(EXPIRE)?
        .execute(params![int(cutoff), int(MAX_EXPIRED_PER_WRITE)])?;
    Ok(entries)
}

/// The sweep's part: removes up to `budget` invocations started before `cutoff` (ms), oldest
/// first; returns how many.
pub fn expire(tx: &mut Tx<'_>, cutoff: u64, budget: u64) -> Result<u64> {
    Ok(tx
        .conn
        .prepare_cached(EXPIRE)?
        .execute(params![int(cutoff), int(budget)])? as u64)
}

/// One page of `function`'s log, newest first.
pub fn page(
    conn: &Connection,
    function: &str,
    query: &InvocationQuery,
) -> Result<Vec<InvocationEntry>> {
    let outcomes = serde_json::to_string(&query.outcomes)
        .map_err(|e| Error::Unavailable(format!("outcome filter: {e}")))?;
    let before = query.before.map(int).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(PAGE)?
        .query_map(
            params![function, before, outcomes, int(query.limit as u64)],
            entry_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The non-empty buckets of `window` of `function`'s invocations: one ordered read, each
/// bucket folded as its rows end.
pub fn stats(
    conn: &Connection,
    function: &str,
    window: &StatsWindow,
) -> Result<Vec<InvocationBucket>> {
    let mut statement = conn.prepare_cached(STATS)?;
    let mut rows = statement.query(params![
        function,
        int(window.start_ms),
        int(window.end_ms),
        int(window.bucket_ms)
    ])?;
    let mut found = Vec::new();
    // The bucket being read: its start and how many of it failed, and its durations.
    let mut bucket: Option<(u64, u64)> = None;
    let mut durations = Vec::new();
    while let Some(row) = rows.next()? {
        let start_ms = window.bucket_start(row.get(0)?);
        if let Some((start, errors)) = bucket
            && start != start_ms
        {
            found.push(bucket_of(start, &durations, errors));
            durations.clear();
            bucket = None;
        }
        let (_, errors) = bucket.get_or_insert((start_ms, 0));
        *errors += u64::from(row.get::<_, bool>(1)?);
        durations.push(row.get::<_, f64>(2)?);
    }
    if let Some((start, errors)) = bucket {
        found.push(bucket_of(start, &durations, errors));
    }
    Ok(found)
}

pub fn delete_function(tx: &mut Tx<'_>, function: &str) -> Result<()> {
    tx.conn
        .prepare_cached(DELETE_FUNCTION)?
        .execute(params![function])?;
    Ok(())
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<InvocationEntry> {
    let failures: Option<String> = row.get(9)?;
    let failures = match failures {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => serde_json::Value::Array(Vec::new()),
    };
    Ok(InvocationEntry {
        id: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
        function: row.get(1)?,
        version: row.get(2)?,
        started_at_ms: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
        duration_ms: row.get(4)?,
        batch_size: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
        outcome: row.get(6)?,
        dry_run: row.get(7)?,
        error: row.get(8)?,
        failures,
        logs: row.get(10)?,
        sent: u64::try_from(row.get::<_, i64>(11)?).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tempfile::TempDir;

    use super::*;
    use crate::store::{ManualClock, Store, StoreOptions};

    const T0: u64 = 1_700_000_000_000;

    fn entry(function: &str, outcome: &str, started_at_ms: u64) -> InvocationEntry {
        InvocationEntry {
            id: 0,
            function: function.into(),
            version: 1,
            started_at_ms,
            duration_ms: 1.5,
            batch_size: 3,
            outcome: outcome.into(),
            dry_run: outcome == "error",
            error: (outcome != "ok").then(|| "boom".into()),
            failures: serde_json::json!([{"id": "7", "disposition": "retry"}]),
            logs: "line\n".into(),
            sent: 2,
        }
    }

    const KEEP_ALL: InvocationRetention = InvocationRetention {
        max_age_ms: u64::MAX,
        max_per_function: u64::MAX,
        max_bytes_per_function: u64::MAX,
    };

    fn query(before: Option<u64>, outcomes: &[&str], limit: usize) -> InvocationQuery {
        InvocationQuery {
            before,
            outcomes: outcomes.iter().map(|o| (*o).to_owned()).collect(),
            limit,
        }
    }

    #[tokio::test]
    async fn entries_round_trip_page_newest_first_and_filter_by_outcome() {
        let dir = TempDir::new().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let store = Store::open_with_clock(dir.path(), StoreOptions::default(), clock).unwrap();
        let stored = store
            .record_invocations(
                vec![
                    entry("f", "ok", T0),
                    entry("f", "error", T0 + 1),
                    entry("g", "ok", T0 + 2),
                    entry("f", "trap", T0 + 3),
                ],
                KEEP_ALL,
            )
            .await
            .unwrap();
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
        let all = store.invocations("f", query(None, &[], 10)).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], stored[3], "newest first, every field kept");
        assert_eq!(
            all[2].failures,
            serde_json::json!([{"id": "7", "disposition": "retry"}])
        );
        let page = store
            .invocations("f", query(Some(all[0].id), &[], 1))
            .await
            .unwrap();
        assert_eq!(page, vec![all[1].clone()]);
        let failed = store
            .invocations("f", query(None, &["error", "trap"], 10))
            .await
            .unwrap();
        assert_eq!(
            failed
                .iter()
                .map(|e| e.outcome.as_str())
                .collect::<Vec<_>>(),
            ["trap", "error"]
        );
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_per_function_and_drops_old_ones() {
        let dir = TempDir::new().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let store =
            Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone()).unwrap();
        let per_function = InvocationRetention {
            max_age_ms: u64::MAX,
            max_per_function: 2,
            max_bytes_per_function: u64::MAX,
        };
        // Trimming runs with a write at most once a second.
        for i in 0..4 {
            clock.advance(crate::store::LOG_TRIM_INTERVAL_MS);
            store
                .record_invocations(vec![entry("f", "ok", T0 + i)], per_function)
                .await
                .unwrap();
        }
        store
            .record_invocations(vec![entry("g", "ok", T0)], per_function)
            .await
            .unwrap();
        let kept = store.invocations("f", query(None, &[], 10)).await.unwrap();
        assert_eq!(
            kept.iter().map(|e| e.started_at_ms).collect::<Vec<_>>(),
            [T0 + 3, T0 + 2]
        );

        // An hour later, with a retention of one hour, only the new entry is left.
        clock.advance(3_600_010);
        let hour = InvocationRetention {
            max_age_ms: 3_600_000,
            max_per_function: 100,
            max_bytes_per_function: u64::MAX,
        };
        store
            .record_invocations(vec![entry("g", "ok", T0 + 3_600_010)], hour)
            .await
            .unwrap();
        assert!(
            store
                .invocations("f", query(None, &[], 10))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .invocations("g", query(None, &[], 10))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
