//! The PostgreSQL schema and its versioned migrations, run on start under an advisory lock so
//! hosts starting together migrate once; a database written by a newer Sluice is refused.

use deadpool_postgres::Client;

use super::super::{Error, Result};

/// `MIGRATIONS[n]` brings the schema from version `n` to `n + 1`.
pub(in crate::store) const MIGRATIONS: &[&str] = &[
    V1,
    super::schedules::SCHEMA_V2,
    V3,
    V4,
    V5,
    super::topics::SCHEMA_V6,
    super::replies::SCHEMA_V7,
    V8,
    super::kv::SCHEMA_V9,
    V10,
    super::invocations::SCHEMA_V11,
    V12,
];

/// A message's queue is no longer a foreign key: PostgreSQL checked it row by row, a lookup in
/// `queues` for each of a batch's messages (a quarter of a 100-message insert's time, measured
/// with `pgbench`). Every statement that adds messages now locks its queue's row once
/// (`FOR KEY SHARE`) and adds nothing when the queue is gone, and deleting a queue locks the row
/// (`FOR UPDATE`) before it deletes the messages, so no message outlives its queue.
const V12: &str = "
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_queue_fkey;
";

/// Why each dead letter died, as a column beside the attribute that says so, so a dead-letter
/// queue is filtered and tallied by reason without reading every message's attributes. Set only
/// when a message moves to its dead-letter queue (NULL for every other message: their inserts
/// pay nothing for it). The partial index holds only dead letters, keyed by a digest of the
/// reason: a reason is a handler's error text, of any length, and a B-tree entry must fit a
/// third of a page. Dead letters already stored take the reason from their attribute.
const V10: &str = "
ALTER TABLE messages ADD COLUMN dead_letter_reason TEXT;
UPDATE messages SET dead_letter_reason = (
    SELECT a ->> 1 FROM json_array_elements(attributes::json) a
    WHERE a ->> 0 = 'sluice-dead-letter-reason' LIMIT 1)
    WHERE source_queue IS NOT NULL AND attributes IS NOT NULL;
CREATE INDEX messages_by_reason ON messages(queue, md5(dead_letter_reason), id)
    WHERE dead_letter_reason IS NOT NULL;
";

/// When each message was first leased: SQS's `ApproximateFirstReceiveTimestamp`. NULL until
/// then, and for messages leased before this version.
const V8: &str = "ALTER TABLE messages ADD COLUMN first_leased_at BIGINT;";

/// The SQS endpoint's secret of a token (NULL for tokens issued without `sqs`): SigV4 needs
/// the secret itself to compute the HMAC, so it is kept, not hashed.
const V3: &str = "ALTER TABLE tokens ADD COLUMN sqs_secret TEXT;";

/// A trigger's concurrency cap as one row per slot: a capped lease takes a free slot (no
/// lease, or its lease expired) with `SKIP LOCKED` and its settle frees it. Counting live
/// leases instead walked the partial index `messages_leased`, which every lease and ack grew
/// with dead entries until vacuum: the cap cost more than the lease it guarded. And messages
/// keyed by (queue, id), so per-queue walks in id order read only that queue.
const V4: &str = "
CREATE TABLE lease_slots (
    queue      TEXT NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
    slot       INTEGER NOT NULL,
    lease_id   BIGINT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, slot)
);
DROP INDEX messages_leased;
-- Keyed by queue first: a queue's oldest messages (retention, peek, redrive) are one index
-- range instead of a walk over every queue's ids.
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (queue, id);
";

/// Priorities and ordered groups. `lane` is the order a lease reads messages in: `9 - priority`
/// for a message that may be delivered, 10 for one waiting behind the head of its group; the
/// lease index leads with it, so a lease reads one index range per lane until its batch is
/// full. `messages_by_group` finds a group's head when the message before it leaves.
const V5: &str = "
ALTER TABLE messages ADD COLUMN priority SMALLINT NOT NULL DEFAULT 4;
ALTER TABLE messages ADD COLUMN group_key TEXT;
ALTER TABLE messages ADD COLUMN lane SMALLINT NOT NULL DEFAULT 5;
DROP INDEX messages_by_visibility;
CREATE INDEX messages_by_lane ON messages(queue, lane, visible_at, id);
CREATE INDEX messages_by_group ON messages(queue, group_key, id) WHERE group_key IS NOT NULL;
";

/// Arbitrary, fixed: the advisory lock that serializes migrations across hosts.
const MIGRATION_LOCK: i64 = 0x51_1CE0;

const V1: &str = "
CREATE TABLE queues (
    name                TEXT PRIMARY KEY,
    settings            TEXT NOT NULL,
    dead_letter_queue   TEXT REFERENCES queues(name),
    created_at          BIGINT NOT NULL,
    enqueued_total      BIGINT NOT NULL DEFAULT 0,
    acked_total         BIGINT NOT NULL DEFAULT 0,
    retried_total       BIGINT NOT NULL DEFAULT 0,
    dead_lettered_total BIGINT NOT NULL DEFAULT 0,
    dropped_total       BIGINT NOT NULL DEFAULT 0,
    expired_total       BIGINT NOT NULL DEFAULT 0
);
-- Counter deltas: every transaction appends one row per queue it touched instead of updating
-- the queue's row, so hosts never queue up behind one hot row; the sweep folds them in.
CREATE TABLE queue_counts (
    queue         TEXT NOT NULL,
    enqueued      BIGINT NOT NULL,
    acked         BIGINT NOT NULL,
    retried       BIGINT NOT NULL,
    dead_lettered BIGINT NOT NULL,
    dropped       BIGINT NOT NULL,
    expired       BIGINT NOT NULL
);
CREATE INDEX queue_counts_by_queue ON queue_counts(queue);
CREATE TABLE messages (
    id           BIGSERIAL PRIMARY KEY,
    queue        TEXT NOT NULL REFERENCES queues(name),
    body         BYTEA NOT NULL,
    attributes   TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    enqueued_at  BIGINT NOT NULL,
    visible_at   BIGINT NOT NULL,
    lease_id     BIGINT,
    last_error   TEXT,
    source_queue TEXT
);
-- Leases walk this index in its order; it also answers visible counts and next-visible times.
CREATE INDEX messages_by_visibility ON messages(queue, visible_at, id);
-- Live leases of a queue, for the concurrency cap shared by every host (dropped by V4).
CREATE INDEX messages_leased ON messages(queue, lease_id) WHERE lease_id IS NOT NULL;
CREATE TABLE dedup (
    queue      TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    message_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
CREATE INDEX dedup_by_expiry ON dedup(expires_at);
CREATE TABLE functions (
    name           TEXT PRIMARY KEY,
    active_version INTEGER NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE TABLE function_versions (
    name       TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    config     TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE triggers (
    function        TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
    queue           TEXT NOT NULL UNIQUE REFERENCES queues(name),
    batch_size      INTEGER NOT NULL,
    max_wait_ms     BIGINT NOT NULL,
    max_concurrency INTEGER NOT NULL,
    paused          BOOLEAN NOT NULL
);
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- The invocation log of every host; pages walk this index backwards from a cursor.
CREATE TABLE invocations (
    id          BIGSERIAL PRIMARY KEY,
    function    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    started_at  BIGINT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    batch_size  BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    dry_run     BOOLEAN NOT NULL,
    error       TEXT,
    failures    TEXT,
    logs        TEXT NOT NULL,
    sent        BIGINT NOT NULL
);
CREATE INDEX invocations_by_function ON invocations(function, id);
-- Uploaded components by content hash, so every host can run every function.
CREATE TABLE components (
    sha256 TEXT PRIMARY KEY,
    bytes  BYTEA NOT NULL
);
";

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Brings the database to [`SCHEMA_VERSION`]; refuses one written by a newer Sluice.
pub async fn migrate(client: &mut Client, location: &str) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER NOT NULL)")
        .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM sluice_schema", &[])
        .await?
        .map(|r| r.get(0));
    let found = usize::try_from(found.unwrap_or(0)).unwrap_or(usize::MAX);
    if found > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            location: location.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in &MIGRATIONS[found..] {
        tx.batch_execute(migration).await?;
    }
    let version = i32::try_from(SCHEMA_VERSION).unwrap_or(i32::MAX);
    tx.execute("DELETE FROM sluice_schema", &[]).await?;
    tx.execute(
        "INSERT INTO sluice_schema (version) VALUES ($1)",
        &[&version],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
