//! Key-value buckets in PostgreSQL: buckets and their keys, the state writes of a settle (or of
//! an operator) applied in its transaction as [`state::plan`] decides, reads that hide expired
//! keys, and the sweep of expired keys.
//!
//! Several hosts write the same keys, so a transaction first takes an advisory lock per key it
//! writes ([`state::locks_of`], in ascending order so two never deadlock), then reads them:
//! until it commits no other transaction can change them, even those that have no row yet
//! (which `SELECT … FOR UPDATE` could not lock). Increments and compare-and-swaps are therefore
//! decided on the value that is committed when they commit.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::{Error, Result, count, int};
use crate::store::state::{self, BucketRecord, KvEntry, StateWrite};

/// The PostgreSQL schema of key-value state (migration 9). Versions come from the sequence
/// `kv_versions`, so one is never reused (not even after a delete). Keys sort by bytes
/// (`COLLATE "C"`), as SQLite sorts them, so both backends page through a bucket alike.
pub const SCHEMA_V9: &str = "
CREATE TABLE kv_buckets (
    name       TEXT PRIMARY KEY,
    ttl_ms     BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE kv_keys (
    bucket     TEXT NOT NULL REFERENCES kv_buckets(name) ON DELETE CASCADE,
    key        TEXT COLLATE \"C\" NOT NULL,
    value      BYTEA NOT NULL,
    version    BIGINT NOT NULL,
    written_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX kv_keys_by_expiry ON kv_keys(expires_at) WHERE expires_at IS NOT NULL;
CREATE SEQUENCE kv_versions;
";

fn bucket_from_row(row: &tokio_postgres::Row) -> BucketRecord {
    BucketRecord {
        name: row.get(0),
        ttl_ms: row.get::<_, Option<i64>>(1).map(count),
        created_at_ms: count(row.get(2)),
    }
}

/// Creates the bucket, or changes its expiry (for writes from now on).
pub async fn put_bucket(
    client: &impl GenericClient,
    now: u64,
    name: &str,
    ttl_ms: Option<u64>,
) -> Result<BucketRecord> {
    let row = client
        .query_one(
            "INSERT INTO kv_buckets (name, ttl_ms, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET ttl_ms = EXCLUDED.ttl_ms
             RETURNING name, ttl_ms, created_at",
            &[&name, &ttl_ms.map(int), &int(now)],
        )
        .await?;
    Ok(bucket_from_row(&row))
}

pub async fn get_bucket(client: &impl GenericClient, name: &str) -> Result<BucketRecord> {
    client
        .query_opt(
            "SELECT name, ttl_ms, created_at FROM kv_buckets WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|row| bucket_from_row(&row))
        .ok_or_else(|| Error::BucketNotFound(name.to_owned()))
}

pub async fn list_buckets(client: &impl GenericClient) -> Result<Vec<BucketRecord>> {
    let rows = client
        .query(
            "SELECT name, ttl_ms, created_at FROM kv_buckets ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows.iter().map(bucket_from_row).collect())
}

/// Deletes the bucket and its keys.
pub async fn delete_bucket(client: &impl GenericClient, name: &str) -> Result<()> {
    match client
        .execute("DELETE FROM kv_buckets WHERE name = $1", &[&name])
        .await?
    {
        0 => Err(Error::BucketNotFound(name.to_owned())),
        _ => Ok(()),
    }
}

/// The live value of `key`, `None` when absent or expired by `now`.
pub async fn get(
    client: &impl GenericClient,
    now: u64,
    bucket: &str,
    key: &str,
) -> Result<Option<KvEntry>> {
    let row = client
        .query_opt(
            "SELECT k.value, k.version, k.written_at FROM kv_buckets b
             LEFT JOIN kv_keys k ON k.bucket = b.name AND k.key = $2
                 AND (k.expires_at IS NULL OR k.expires_at > $3)
             WHERE b.name = $1",
            &[&bucket, &key, &int(now)],
        )
        .await?
        .ok_or_else(|| Error::BucketNotFound(bucket.to_owned()))?;
    Ok(row.get::<_, Option<Vec<u8>>>(0).map(|value| KvEntry {
        value,
        version: count(row.get(1)),
        written_at_ms: count(row.get(2)),
    }))
}

/// Up to `limit` live keys starting with `prefix` after `after`, in byte order.
pub async fn keys(
    client: &impl GenericClient,
    now: u64,
    bucket: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    get_bucket(client, bucket).await?;
    let (from, inclusive) = state::keys_from(prefix, after);
    let rows = client
        .query(
            "SELECT key FROM kv_keys
             WHERE bucket = $1 AND (key > $2 OR ($3 AND key = $2))
                 AND starts_with(key, $4)
                 AND (expires_at IS NULL OR expires_at > $5)
             ORDER BY key LIMIT $6",
            &[
                &bucket,
                &from,
                &inclusive,
                &prefix,
                &int(now),
                &int(limit as u64),
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Applies `writes` in `tx`, all or none (see [`state::plan`]).
pub async fn apply(tx: &Transaction<'_>, now: u64, writes: Vec<StateWrite>) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    // `unnest` yields the locks in array order, so they are taken in ascending order.
    tx.execute(
        "SELECT pg_advisory_xact_lock(l) FROM unnest($1::bigint[]) AS l",
        &[&state::locks_of(&writes)],
    )
    .await?;
    let mut names: Vec<&str> = writes.iter().map(|w| w.bucket.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // FOR KEY SHARE: a bucket cannot be deleted under a settle writing to it.
    let ttls: HashMap<String, Option<u64>> = tx
        .query(
            "SELECT name, ttl_ms FROM kv_buckets WHERE name = ANY($1) FOR KEY SHARE",
            &[&names],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get::<_, Option<i64>>(1).map(count)))
        .collect();
    let (buckets, keys): (Vec<&str>, Vec<&str>) = state::keys_to_read(&writes).into_iter().unzip();
    let committed: HashMap<(String, String), (Vec<u8>, u64)> = tx
        .query(
            "SELECT bucket, key, value, version FROM kv_keys
             WHERE (bucket, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 AND (expires_at IS NULL OR expires_at > $3)",
            &[&buckets, &keys, &int(now)],
        )
        .await?
        .iter()
        .map(|row| ((row.get(0), row.get(1)), (row.get(2), count(row.get(3)))))
        .collect();
    let changes = state::plan(
        writes,
        |bucket| ttls.get(bucket).copied(),
        |bucket, key| committed.get(&(bucket.to_owned(), key.to_owned())).cloned(),
        now,
    )?;
    let (mut put, mut gone) = (Columns::default(), Columns::default());
    for change in changes {
        match change.value {
            Some(value) => {
                put.buckets.push(change.bucket);
                put.keys.push(change.key);
                put.values.push(value);
                put.expiries.push(change.expires_at.map(int));
            }
            None => {
                gone.buckets.push(change.bucket);
                gone.keys.push(change.key);
            }
        }
    }
    let upsert = async {
        if put.keys.is_empty() {
            return Ok(0);
        }
        tx.execute(
            "INSERT INTO kv_keys (bucket, key, value, version, written_at, expires_at)
             SELECT c.b, c.k, c.v, nextval('kv_versions'), $4, c.e
             FROM unnest($1::text[], $2::text[], $3::bytea[], $5::bigint[]) AS c(b, k, v, e)
             ON CONFLICT (bucket, key) DO UPDATE SET value = EXCLUDED.value,
                 version = EXCLUDED.version, written_at = EXCLUDED.written_at,
                 expires_at = EXCLUDED.expires_at",
            &[
                &put.buckets,
                &put.keys,
                &put.values,
                &int(now),
                &put.expiries,
            ],
        )
        .await
    };
    let delete = async {
        if gone.keys.is_empty() {
            return Ok(0);
        }
        tx.execute(
            "DELETE FROM kv_keys
             WHERE (bucket, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            &[&gone.buckets, &gone.keys],
        )
        .await
    };
    tokio::try_join!(upsert, delete)?;
    Ok(())
}

/// The rows of one statement of [`apply`], column by column (for `unnest`).
#[derive(Default)]
struct Columns {
    buckets: Vec<String>,
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
    expiries: Vec<Option<i64>>,
}

/// Deletes the keys expired by `now`; returns how many.
pub async fn expire(tx: &Transaction<'_>, now: u64) -> Result<u64> {
    Ok(tx
        .execute("DELETE FROM kv_keys WHERE expires_at <= $1", &[&int(now)])
        .await?)
}
