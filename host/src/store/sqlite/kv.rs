//! Key-value buckets in SQLite: buckets and their keys, the state writes of a settle (or of an
//! operator) applied in the writer's transaction as [`state::plan`] decides, reads that hide
//! expired keys, and the sweep of expired keys. The writer thread is the only writer, so the
//! keys a settle reads cannot change before it commits.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::writer::{Tx, int};
use super::{Error, Result};
use crate::store::state::{self, BucketRecord, KvEntry, StateWrite};

/// The SQLite schema of key-value state (migration 11). `version` of a key comes from the one
/// row of `kv_clock`, advanced by every write, so a version is never reused (not even after a
/// delete) and a compare-and-swap can tell any rewrite. `expires_at` is the write time plus the
/// bucket's `ttl_ms` at that write.
pub const SCHEMA_V11: &str = "
CREATE TABLE kv_buckets (
    name       TEXT PRIMARY KEY,
    ttl_ms     INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE kv_keys (
    bucket     TEXT NOT NULL REFERENCES kv_buckets(name) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    version    INTEGER NOT NULL,
    written_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE INDEX kv_keys_by_expiry ON kv_keys(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE kv_clock (version INTEGER NOT NULL);
INSERT INTO kv_clock (version) VALUES (0);
";

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn bucket_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BucketRecord> {
    Ok(BucketRecord {
        name: r.get(0)?,
        ttl_ms: r.get::<_, Option<i64>>(1)?.map(u),
        created_at_ms: u(r.get(2)?),
    })
}

/// Creates the bucket, or changes its expiry (for writes from now on).
pub fn put_bucket(tx: &mut Tx<'_>, name: &str, ttl_ms: Option<u64>) -> Result<BucketRecord> {
    tx.conn
        .prepare_cached(
            "INSERT INTO kv_buckets (name, ttl_ms, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET ttl_ms = excluded.ttl_ms",
        )?
        .execute(params![name, ttl_ms.map(int), int(tx.now)])?;
    get_bucket(tx.conn, name)
}

pub fn get_bucket(conn: &Connection, name: &str) -> Result<BucketRecord> {
    conn.prepare_cached("SELECT name, ttl_ms, created_at FROM kv_buckets WHERE name = ?1")?
        .query_row(params![name], bucket_from_row)
        .optional()?
        .ok_or_else(|| Error::BucketNotFound(name.to_owned()))
}

pub fn list_buckets(conn: &Connection) -> Result<Vec<BucketRecord>> {
    Ok(conn
        .prepare_cached("SELECT name, ttl_ms, created_at FROM kv_buckets ORDER BY name")?
        .query_map([], bucket_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Deletes the bucket and its keys.
pub fn delete_bucket(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let deleted = tx
        .conn
        .prepare_cached("DELETE FROM kv_buckets WHERE name = ?1")?
        .execute(params![name])?;
    match deleted {
        0 => Err(Error::BucketNotFound(name.to_owned())),
        _ => Ok(()),
    }
}

/// A key's live value, version and last write (see [`get`]).
const KEY_LOOKUP: &str = "SELECT value, version, written_at FROM kv_keys
    WHERE bucket = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";

/// The live value of `key`, `None` when absent or expired by `now`.
///
/// Two single-table lookups, not one `LEFT JOIN` of bucket and key: SQLite marks a bound
/// parameter of that join's plan as one that may change it, and rusqlite clears a cached
/// statement's bindings whenever it is handed back, so the join was parsed and planned again on
/// every call (a third of a key-value-heavy drain's CPU, measured with `perf`).
pub fn get(conn: &Connection, now: u64, bucket: &str, key: &str) -> Result<Option<KvEntry>> {
    get_bucket(conn, bucket)?;
    let row: Option<(Vec<u8>, i64, i64)> = conn
        .prepare_cached(KEY_LOOKUP)?
        .query_row(params![bucket, key, int(now)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(row.map(|(value, version, written_at)| KvEntry {
        value,
        version: u(version),
        written_at_ms: u(written_at),
    }))
}

/// Up to `limit` live keys starting with `prefix` after `after`, in byte order.
pub fn keys(
    conn: &Connection,
    now: u64,
    bucket: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    get_bucket(conn, bucket)?;
    // Keys compare as bytes (SQLite's BINARY collation), so the prefix's keys are one range
    // from the prefix itself.
    let (from, inclusive) = state::keys_from(prefix, after);
    Ok(conn
        .prepare_cached(
            "SELECT key FROM kv_keys
             WHERE bucket = ?1 AND (key > ?2 OR (?3 AND key = ?2))
                 AND substr(key, 1, length(?4)) = ?4
                 AND (expires_at IS NULL OR expires_at > ?5)
             ORDER BY key LIMIT (?6 + 0)",
        )?
        .query_map(
            params![bucket, from, inclusive, prefix, int(now), int(limit as u64)],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?)
}

/// Applies `writes` in the writer's transaction, all or none (see [`state::plan`]).
pub fn apply(tx: &mut Tx<'_>, writes: Vec<StateWrite>) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let conn = tx.conn;
    let now = tx.now;
    let mut ttls: HashMap<String, Option<Option<u64>>> = HashMap::new();
    let mut committed: HashMap<(String, String), (Vec<u8>, u64)> = HashMap::new();
    let to_read = state::keys_to_read(&writes);
    for write in &writes {
        if !ttls.contains_key(&write.bucket) {
            let ttl = conn
                .prepare_cached("SELECT ttl_ms FROM kv_buckets WHERE name = ?1")?
                .query_row(params![write.bucket], |r| r.get::<_, Option<i64>>(0))
                .optional()?
                .map(|ttl| ttl.map(u));
            ttls.insert(write.bucket.clone(), ttl);
        }
        if !to_read.contains(&(write.bucket.as_str(), write.key.as_str())) {
            continue;
        }
        let row = conn
            .prepare_cached(
                "SELECT value, version FROM kv_keys WHERE bucket = ?1 AND key = ?2
                     AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![write.bucket, write.key, int(now)], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, u(r.get(1)?)))
            })
            .optional()?;
        if let Some(row) = row {
            committed.insert((write.bucket.clone(), write.key.clone()), row);
        }
    }
    drop(to_read);
    let changes = state::plan(
        writes,
        |bucket| ttls.get(bucket).cloned().flatten(),
        |bucket, key| committed.get(&(bucket.to_owned(), key.to_owned())).cloned(),
        now,
    )?;
    let mut version: i64 = conn
        .prepare_cached("SELECT version FROM kv_clock")?
        .query_row([], |r| r.get(0))?;
    for change in changes {
        match change.value {
            Some(value) => {
                version += 1;
                conn.prepare_cached(
                    "INSERT INTO kv_keys (bucket, key, value, version, written_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value,
                         version = excluded.version, written_at = excluded.written_at,
                         expires_at = excluded.expires_at",
                )?
                .execute(params![
                    change.bucket,
                    change.key,
                    value,
                    version,
                    int(now),
                    change.expires_at.map(int)
                ])?;
            }
            None => {
                conn.prepare_cached("DELETE FROM kv_keys WHERE bucket = ?1 AND key = ?2")?
                    .execute(params![change.bucket, change.key])?;
            }
        }
    }
    conn.prepare_cached("UPDATE kv_clock SET version = ?1")?
        .execute(params![version])?;
    Ok(())
}

/// Deletes up to `budget` keys expired by now; returns how many.
pub fn expire(tx: &mut Tx<'_>, budget: u64) -> Result<u64> {
    Ok(tx
        .conn
        .prepare_cached(
            "DELETE FROM kv_keys WHERE (bucket, key) IN (
                SELECT bucket, key FROM kv_keys WHERE expires_at <= ?1 LIMIT (?2 + 0))",
        )?
        .execute(params![int(tx.now), int(budget)])? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler reads keys one call at a time: the lookup is planned once, whatever it is
    /// bound to next.
    #[tokio::test]
    async fn the_key_lookup_is_not_prepared_again_when_bound_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path(), Default::default()).unwrap();
        store.put_bucket("b", None).await.unwrap();
        let conn = Connection::open(dir.path().join("sluice.db")).unwrap();
        for (i, key) in ["a", "b", "a", "c"].into_iter().enumerate() {
            assert_eq!(get(&conn, 1_000 * i as u64, "b", key).unwrap(), None);
        }
        let lookup = conn.prepare_cached(KEY_LOOKUP).unwrap();
        assert_eq!(lookup.get_status(rusqlite::StatementStatus::RePrepare), 0);
        assert!(matches!(
            get(&conn, 0, "missing", "a"),
            Err(Error::BucketNotFound(_))
        ));
    }
}
