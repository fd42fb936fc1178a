//! Every SQL statement of the PostgreSQL backend, named for what it does. Times are the
//! host's clock in milliseconds, passed in, never the database's `now()`.

// ---- queues ----
pub const QUEUE_NAMES: &str = "SELECT name FROM queues";
pub const QUEUE_SETTINGS: &str = "SELECT settings FROM queues WHERE name = $1";
pub const QUEUE_EXISTS: &str = "SELECT 1 FROM queues WHERE name = $1";
/// Locks a queue's row for its delete: statements adding messages to it wait, then find it
/// gone (see `schema::V12`).
pub const LOCK_QUEUE_FOR_DELETE: &str = "SELECT 1 FROM queues WHERE name = $1 FOR UPDATE";
pub const INSERT_QUEUE: &str = "INSERT INTO queues (name, settings, dead_letter_queue, created_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";
pub const UPDATE_QUEUE_SETTINGS: &str =
    "UPDATE queues SET settings = $2, dead_letter_queue = $3 WHERE name = $1";
pub const QUEUES_USING_AS_DLQ: &str =
    "SELECT name FROM queues WHERE dead_letter_queue = $1 AND name <> $1 ORDER BY name LIMIT 1";
pub const DEAD_LETTER_QUEUE_OF: &str = "SELECT dead_letter_queue FROM queues WHERE name = $1";
/// Serializes changes that set a dead-letter queue, so hosts cannot close a cycle together.
pub const LOCK_DEAD_LETTER_CHANGES: &str = "SELECT pg_advisory_xact_lock(5149001)";
pub const DELETE_QUEUE: &str = "DELETE FROM queues WHERE name = $1";
pub const DELETE_QUEUE_MESSAGES: &str = "DELETE FROM messages WHERE queue = $1";
/// Purges a queue; the groups it emptied come back, for messages enqueued meanwhile.
pub const PURGE_QUEUE_MESSAGES: &str =
    "WITH gone AS (DELETE FROM messages WHERE queue = $1 RETURNING group_key)
    SELECT count(*),
        coalesce(array_remove(array_agg(DISTINCT group_key), NULL), '{}') FROM gone";
pub const DELETE_QUEUE_DEDUP: &str = "DELETE FROM dedup WHERE queue = $1";
pub const DELETE_QUEUE_COUNTS: &str = "DELETE FROM queue_counts WHERE queue = $1";
/// A queue with its totals: the folded ones plus the deltas not folded yet.
pub const SELECT_QUEUES: &str = "SELECT q.name, q.settings, q.created_at,
    q.enqueued_total + coalesce(c.enqueued, 0), q.acked_total + coalesce(c.acked, 0),
    q.retried_total + coalesce(c.retried, 0), q.dead_lettered_total + coalesce(c.dead_lettered, 0),
    q.dropped_total + coalesce(c.dropped, 0), q.expired_total + coalesce(c.expired, 0)
    FROM queues q LEFT JOIN (
        SELECT queue, sum(enqueued)::bigint AS enqueued, sum(acked)::bigint AS acked,
            sum(retried)::bigint AS retried, sum(dead_lettered)::bigint AS dead_lettered,
            sum(dropped)::bigint AS dropped, sum(expired)::bigint AS expired
        FROM queue_counts GROUP BY queue
    ) c ON c.queue = q.name
    WHERE $1::text IS NULL OR q.name = $1 ORDER BY q.name";
/// Live counts: visible, delayed, in flight, and the oldest message's enqueue time.
pub const QUEUE_LIVE_COUNTS: &str = "SELECT
    count(*) FILTER (WHERE visible_at <= $2),
    count(*) FILTER (WHERE visible_at > $2 AND lease_id IS NULL),
    count(*) FILTER (WHERE visible_at > $2 AND lease_id IS NOT NULL),
    min(enqueued_at)
    FROM messages WHERE queue = $1";
pub const ADD_COUNTS: &str = "INSERT INTO queue_counts
    (queue, enqueued, acked, retried, dead_lettered, dropped, expired)
    VALUES ($1, $2, 0, $3, $4, $5, $6)";
/// Folds every counter delta into its queue's totals. Concurrent folds never count a delta
/// twice: a delta row is deleted by exactly one of them.
pub const FOLD_COUNTS: &str = "WITH d AS (DELETE FROM queue_counts RETURNING *),
    s AS (SELECT queue, sum(enqueued) AS e, sum(acked) AS a, sum(retried) AS r,
        sum(dead_lettered) AS dl, sum(dropped) AS dr, sum(expired) AS x FROM d GROUP BY queue)
    UPDATE queues q SET enqueued_total = q.enqueued_total + s.e, acked_total = q.acked_total + s.a,
        retried_total = q.retried_total + s.r, dead_lettered_total = q.dead_lettered_total + s.dl,
        dropped_total = q.dropped_total + s.dr, expired_total = q.expired_total + s.x
    FROM s WHERE q.name = s.queue";
pub const QUEUE_RETENTIONS: &str = "SELECT name, settings FROM queues";

// ---- messages ----
pub const NEXT_MESSAGE_IDS: &str =
    "SELECT nextval('messages_id_seq') FROM generate_series(1, $1::bigint)";
/// Many messages in one statement, with ids taken from the sequence beforehand so the answer
/// lists them in request order.
/// With the queue's counter delta in the same statement, so that outside a transaction the
/// two still commit together. Locks the queue's row first and inserts nothing when the queue
/// is gone (then it writes no counter row either, and reports 0 rows).
pub const INSERT_MESSAGES_COUNTED: &str = "WITH q AS (SELECT name FROM queues WHERE name = $2::text
        FOR KEY SHARE),
    inserted AS (INSERT INTO messages
        (id, queue, body, attributes, attempt, enqueued_at, visible_at, priority, group_key, lane)
        SELECT m.id, q.name, m.body, m.attributes, 0, $5::bigint, m.visible_at, m.priority,
            m.group_key, m.lane
        FROM q, unnest($1::bigint[], $3::bytea[], $4::text[], $6::bigint[], $7::smallint[],
            $8::text[], $9::smallint[]) AS m(id, body, attributes, visible_at, priority, group_key,
            lane)
        RETURNING 1)
    INSERT INTO queue_counts (queue, enqueued, acked, retried, dead_lettered, dropped, expired)
    SELECT $2::text, count(*), 0, 0, 0, 0, 0 FROM inserted HAVING count(*) > 0";
/// One message moved into queue `$1` (dead-lettered or redriven); like every insert, it locks
/// the queue's row and inserts nothing when the queue is gone.
pub const INSERT_MOVED: &str = "INSERT INTO messages
    (queue, body, attributes, attempt, enqueued_at, visible_at, source_queue, priority,
    group_key, lane, dead_letter_reason)
    SELECT name, $2, $3, 0, $4, $4, $5, $6, $7, $8, $9 FROM queues WHERE name = $1 FOR KEY SHARE";
/// Serializes, across hosts, the transactions that add messages to the listed groups of a
/// queue or let a group's next message go: an enqueue must see whether its group still has a
/// message, and a release must see a message enqueued behind the one that left. Locks are
/// taken in one order, so two of these never wait on each other in a cycle. (Queue names have
/// no `/`, so `queue/group` names one group.)
pub const LOCK_GROUPS: &str = "SELECT pg_advisory_xact_lock(5149, h) FROM
    (SELECT DISTINCT hashtext($1 || '/' || g) AS h FROM unnest($2::text[]) g ORDER BY h) s";
/// The listed groups of a queue that have a message in it.
pub const GROUPS_WITH_MESSAGES: &str = "SELECT g FROM unnest($2::text[]) g
    WHERE EXISTS (SELECT 1 FROM messages WHERE queue = $1 AND group_key = g)";
/// Moves the head (oldest message) of each listed group out of the held lane, if it is there.
pub const RELEASE_GROUP_HEADS: &str = "UPDATE messages m SET lane = 9 - m.priority
    FROM (SELECT (SELECT id FROM messages WHERE queue = $1 AND group_key = g ORDER BY id LIMIT 1)
          AS head FROM unnest($2::text[]) g) h
    WHERE m.queue = $1 AND m.id = h.head AND m.lane = 10";
/// Claims a dedup id for a new message: inserts it, or takes over an entry whose window has
/// passed. No row back means a live duplicate.
pub const DEDUP_CLAIM: &str = "INSERT INTO dedup (queue, dedup_id, message_id, expires_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (queue, dedup_id) DO UPDATE
        SET message_id = excluded.message_id, expires_at = excluded.expires_at
        WHERE dedup.expires_at <= $5
    RETURNING message_id";
pub const DEDUP_LOOKUP_LIVE: &str = "SELECT message_id FROM dedup
    WHERE queue = $1 AND dedup_id = $2 AND expires_at > $3";
pub const DEDUP_LOOKUP: &str = "SELECT message_id FROM dedup WHERE queue = $1 AND dedup_id = $2";
pub const DEDUP_FORGET_EXPIRED: &str = "DELETE FROM dedup WHERE expires_at <= $1";
pub const DEPTH_UP_TO: &str =
    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE queue = $1 LIMIT $2) d";
/// For a lease's transaction: commit without waiting for the WAL flush. Losing a lease in a
/// database crash loses nothing: its messages are simply visible again, and the attempt it
/// counted is not counted. A settle that follows it is durable only after it (the WAL is
/// flushed in order), so no ack, retry or send can outlive the lease it was checked against.
pub const COMMIT_WITHOUT_WAITING: &str = "SET LOCAL synchronous_commit = off";
/// Takes a free slot of the queue's first `$2` (a lease under a cap of `$2`): one with no
/// lease or an expired one, skipping slots another host is taking.
pub const TAKE_SLOT: &str = "UPDATE lease_slots s SET lease_id = $3, expires_at = $4
    FROM (SELECT slot FROM lease_slots
          WHERE queue = $1 AND slot < $2 AND (lease_id IS NULL OR expires_at <= $5)
          ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) free
    WHERE s.queue = $1 AND s.slot = free.slot RETURNING s.slot";
/// How many of the queue's first `$2` slots exist.
pub const COUNT_SLOTS: &str = "SELECT count(*) FROM lease_slots WHERE queue = $1 AND slot < $2";
/// Creates the queue's first `$2` slots (a new cap, or a raised one).
pub const ADD_SLOTS: &str = "INSERT INTO lease_slots (queue, slot)
    SELECT $1, generate_series(0, $2 - 1) ON CONFLICT DO NOTHING";
/// Frees the slot lease `$2` holds, if it holds one.
pub const FREE_SLOT: &str =
    "UPDATE lease_slots SET lease_id = NULL WHERE queue = $1 AND lease_id = $2";
/// Keeps lease `$2`'s slot taken as long as its messages.
pub const EXTEND_SLOT: &str = "UPDATE lease_slots SET expires_at = greatest(expires_at, $3) WHERE queue = $1 AND lease_id = $2";
/// Takes up to $3 visible messages in delivery order, skipping rows another host is taking,
/// and leases them in the same statement. Lanes are read in the order `$7` gives, each one
/// index range in (visible_at, id) order from the lane's mark (`$9`, `$10`: see `marks`),
/// until $3 are taken. Messages out of attempts keep their count (the caller dead-letters
/// them); the previous attempt, visible time and the lane's turn come back for that and for
/// ordering. A lease under a cap (`$8`) takes nothing
/// unless it holds one of the queue's slots: the slot is taken by the statement sent just
/// before this one, in the same round trip. The update finds the picked rows by
/// `id = ANY(ARRAY(…))` as well as by the join: prepared once, the statement may run on a
/// generic plan, and the join alone plans as a hash join over a sequential scan of every
/// message (84 ms instead of 4 ms at 200,000 messages), where the array stays a primary-key
/// lookup.
pub const LEASE: &str = "WITH picked AS (
        SELECT p.id, p.visible_at, p.attempt, l.turn
        FROM unnest($7::smallint[], $9::bigint[], $10::bigint[])
            WITH ORDINALITY AS l(lane, from_visible_at, from_id, turn),
        LATERAL (SELECT id, visible_at, attempt FROM messages
            WHERE queue = $1 AND lane = l.lane AND visible_at <= $2
                AND (visible_at, id) >= (l.from_visible_at, l.from_id)
            ORDER BY visible_at, id LIMIT $3
            FOR UPDATE SKIP LOCKED) p
        WHERE NOT $8::boolean
            OR EXISTS (SELECT 1 FROM lease_slots WHERE queue = $1 AND lease_id = $4)
        LIMIT $3
    )
    UPDATE messages m SET lease_id = $4, visible_at = $5,
        attempt = CASE WHEN m.attempt >= $6 THEN m.attempt ELSE m.attempt + 1 END,
        first_leased_at = coalesce(m.first_leased_at, $2)
    FROM picked WHERE m.queue = $1 AND m.id = ANY(ARRAY(SELECT id FROM picked)) AND m.id = picked.id
    RETURNING m.id, m.body, m.attributes, m.attempt, m.enqueued_at, picked.visible_at,
        picked.attempt, picked.turn, m.priority, m.group_key, m.first_leased_at";
pub const EXTEND_LEASE: &str =
    "UPDATE messages SET visible_at = $3 WHERE id = ANY($1) AND lease_id = $2 AND queue = $4";
/// Deletes the listed messages this lease still holds and records how many as the queue's
/// acked delta, in one statement.
pub const ACK_MANY: &str = "WITH gone AS (DELETE FROM messages WHERE id = ANY($1)
        AND lease_id = $2 AND queue = $3 RETURNING id, group_key),
    counted AS (INSERT INTO queue_counts
        (queue, enqueued, acked, retried, dead_lettered, dropped, expired)
        SELECT $3, 0, count(*), 0, 0, 0, 0 FROM gone HAVING count(*) > 0)
    SELECT id, group_key FROM gone";
pub const LEASED_ATTEMPT: &str =
    "SELECT attempt FROM messages WHERE id = $1 AND lease_id = $2 AND queue = $3 FOR UPDATE";
pub const RETRY: &str = "UPDATE messages SET lease_id = NULL, visible_at = $2, last_error = $3
    WHERE queue = $4 AND id = $1";
pub const DELETE_FOR_MOVE: &str = "DELETE FROM messages WHERE queue = $2 AND id = $1
    RETURNING body, attributes, attempt, priority, group_key";
/// Dead-lettered messages not currently leased, oldest first, after a cursor.
pub const REDRIVABLE: &str = "SELECT id, source_queue FROM messages
    WHERE queue = $1 AND id > $2 AND (lease_id IS NULL OR visible_at <= $3)
    ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED";
/// One dead-lettered message, if it is in the queue and not leased.
pub const REDRIVABLE_ONE: &str = "SELECT source_queue FROM messages
    WHERE id = $1 AND queue = $2 AND (lease_id IS NULL OR visible_at <= $3) FOR UPDATE SKIP LOCKED";
pub const DELETE_LISTED: &str =
    "DELETE FROM messages WHERE id = ANY($1) AND queue = $2 RETURNING group_key";
/// Deletes those of a queue's `$3` oldest messages (by id) enqueued before `$2`. Ids grow with
/// time, so the expired ones are at the front of the key: the sweep reads at most `$3` rows
/// per queue instead of every row that has not expired. Hosts sweeping at once delete each
/// row once (the second finds it gone).
pub const EXPIRE_OLDEST: &str = "DELETE FROM messages WHERE queue = $1 AND enqueued_at < $2
    AND id IN (SELECT id FROM messages WHERE queue = $1 ORDER BY id LIMIT $3)
    RETURNING group_key";
pub const PEEK: &str = "SELECT id, body, attributes, attempt, enqueued_at, priority, group_key,
    first_leased_at FROM messages WHERE queue = $1 AND id > $2 ORDER BY id LIMIT $3";
/// Like [`PEEK`], only the dead letters that died for reason `$4`: a walk of
/// `messages_by_reason` (by the reason's digest, then the reason itself).
pub const PEEK_REASON: &str = "SELECT id, body, attributes, attempt, enqueued_at, priority,
    group_key, first_leased_at FROM messages
    WHERE queue = $1 AND md5(dead_letter_reason) = md5($4::text) AND dead_letter_reason = $4
    AND id > $2 ORDER BY id LIMIT $3";
/// Like [`PEEK`], only the messages that are not dead letters with a reason (put in a
/// dead-letter queue by hand, say).
pub const PEEK_NO_REASON: &str = "SELECT id, body, attributes, attempt, enqueued_at, priority,
    group_key, first_leased_at FROM messages
    WHERE queue = $1 AND dead_letter_reason IS NULL AND id > $2 ORDER BY id LIMIT $3";
/// A queue's messages, and the `$2` reasons most of its dead letters died for, most first, each
/// with how many, how many have any reason, and how many distinct reasons there are: one
/// statement, so one snapshot. The count walks the primary key, the reasons only the queue's
/// dead letters (through `messages_by_reason`).
pub const DEAD_LETTER_REASONS: &str = "SELECT t.total, r.reason, r.n, r.with_reason,
        r.distinct_reasons
    FROM (SELECT count(*) AS total FROM messages WHERE queue = $1) t
    LEFT JOIN (SELECT dead_letter_reason AS reason, count(*) AS n,
            (sum(count(*)) OVER ())::bigint AS with_reason, count(*) OVER () AS distinct_reasons
        FROM messages WHERE queue = $1 AND dead_letter_reason IS NOT NULL
        GROUP BY dead_letter_reason ORDER BY n DESC, reason LIMIT $2) r ON true
    ORDER BY r.n DESC, r.reason";
/// The earliest time after $2 a message of lanes 0–9 becomes visible: one index seek per lane.
/// The earliest time after `$2` a message of lanes 0–9 becomes visible (shared by
/// [`NEXT_VISIBLE_AT`] and [`LULL`]).
macro_rules! next_visible_at {
    () => {
        "SELECT min((SELECT visible_at FROM messages
            WHERE queue = $1 AND lane = l AND visible_at > $2 ORDER BY visible_at LIMIT 1))
        FROM generate_series(0, 9) l"
    };
}
/// The visible messages of a queue, up to `$3` (shared by [`VISIBLE_COUNT`] and [`LULL`]).
macro_rules! visible_up_to {
    ($limit:literal) => {
        concat!(
            "SELECT 1 FROM messages
            WHERE queue = $1 AND lane = ANY('{0,1,2,3,4,5,6,7,8,9}'::smallint[])
            AND visible_at <= $2 LIMIT ",
            $limit
        )
    };
}
pub const NEXT_VISIBLE_AT: &str = next_visible_at!();
pub const VISIBLE_COUNT: &str = concat!("SELECT count(*) FROM (", visible_up_to!("$3"), ") v");
/// Whether any message is visible, and [`NEXT_VISIBLE_AT`], in one statement (one snapshot).
pub const LULL: &str = concat!(
    "SELECT EXISTS (",
    visible_up_to!("1"),
    "), (",
    next_visible_at!(),
    ")"
);

// ---- functions and triggers ----
pub const FUNCTION_EXISTS: &str = "SELECT 1 FROM functions WHERE name = $1";
pub const INSERT_FUNCTION: &str = "INSERT INTO functions (name, active_version, created_at)
    VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING";
/// Locks the function's row so concurrent uploads on two hosts number versions in turn.
pub const LOCK_FUNCTION: &str = "SELECT 1 FROM functions WHERE name = $1 FOR UPDATE";
pub const LAST_VERSION: &str =
    "SELECT coalesce(max(version), 0) FROM function_versions WHERE name = $1";
pub const INSERT_VERSION: &str = "INSERT INTO function_versions
    (name, version, sha256, size, created_at, config) VALUES ($1, $2, $3, $4, $5, $6)";
pub const VERSION_EXISTS: &str = "SELECT 1 FROM function_versions WHERE name = $1 AND version = $2";
pub const SET_ACTIVE_VERSION: &str = "UPDATE functions SET active_version = $2 WHERE name = $1";
pub const DELETE_FUNCTION: &str = "DELETE FROM functions WHERE name = $1";
pub const FUNCTION_NAMES: &str = "SELECT name FROM functions ORDER BY name";
pub const ACTIVE_VERSION: &str = "SELECT active_version FROM functions WHERE name = $1";
pub const FUNCTION_VERSIONS: &str = "SELECT version, sha256, size, created_at, config
    FROM function_versions WHERE name = $1 ORDER BY version";
pub const TRIGGER_OF_FUNCTION: &str = "SELECT function, queue, batch_size, max_wait_ms,
    max_concurrency, paused FROM triggers WHERE function = $1";
pub const ALL_TRIGGERS: &str = "SELECT function, queue, batch_size, max_wait_ms,
    max_concurrency, paused FROM triggers ORDER BY function";
pub const CONSUMER_OF_QUEUE: &str = "SELECT function FROM triggers WHERE queue = $1";
pub const UPSERT_TRIGGER: &str = "INSERT INTO triggers
    (function, queue, batch_size, max_wait_ms, max_concurrency, paused)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (function) DO UPDATE SET queue = excluded.queue,
        batch_size = excluded.batch_size, max_wait_ms = excluded.max_wait_ms,
        max_concurrency = excluded.max_concurrency, paused = excluded.paused";
pub const DELETE_TRIGGER: &str = "DELETE FROM triggers WHERE function = $1";
pub const INSERT_COMPONENT: &str =
    "INSERT INTO components (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING";
pub const SELECT_COMPONENT: &str = "SELECT bytes FROM components WHERE sha256 = $1";

// ---- tokens ----
pub const INSERT_TOKEN: &str = "INSERT INTO tokens (id, name, hash, scopes, created_at, sqs_secret) VALUES ($1, $2, $3, $4, $5, $6)";
pub const ALL_TOKENS: &str =
    "SELECT id, name, hash, scopes, created_at, sqs_secret FROM tokens ORDER BY created_at, id";
pub const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = $1";

// ---- wake-ups across hosts ----
/// Consumers of each queue named, on every host, wake. Sent after the write it announces has
/// committed, in a transaction of its own that writes nothing else and so need not wait for
/// its fsync (see `notify`).
pub const NOTIFY_WAKE_ALL: &str = "SELECT count(pg_notify('sluice_wake', q))
    FROM unnest($1::text[]) AS q, set_config('synchronous_commit', 'off', true)";
/// Every host reloads what the payload names (see `listen`).
pub const NOTIFY_CATALOG: &str = "SELECT pg_notify('sluice_catalog', $1)";
/// Wakes producers waiting for the reply to a message (payload: its id) on every host.
pub const NOTIFY_REPLY: &str = "SELECT pg_notify('sluice_reply', $1)";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_test_support::testdb::TestDatabase;
    use tokio_postgres::NoTls;

    use super::LEASE;
    use crate::store::{Store, StoreOptions, SystemClock};

    /// Prepared once, a statement may run on a generic plan, planned without its parameters'
    /// values: the lease's must still find the rows it updates by key, not by reading every
    /// message of the queue.
    #[tokio::test]
    async fn the_lease_finds_its_messages_by_key_on_a_generic_plan() {
        let db = TestDatabase::create().await;
        // Connecting creates the schema.
        Store::connect_postgres(&db.url, StoreOptions::default(), Arc::new(SystemClock))
            .await
            .expect("connect");
        let (client, connection) = tokio_postgres::connect(&db.url, NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(
                "INSERT INTO queues (name, settings, created_at) VALUES ('q', '{}', 0);
                INSERT INTO messages (queue, body, enqueued_at, visible_at)
                    SELECT 'q', '\\x00', 0, 0 FROM generate_series(1, 20000);
                ANALYZE messages;
                SET plan_cache_mode = force_generic_plan;",
            )
            .await
            .expect("fill");
        client
            .batch_execute(&format!("PREPARE lease AS {LEASE}"))
            .await
            .expect("prepare");
        let plan: Vec<String> = client
            .query(
                "EXPLAIN EXECUTE lease('q', 1, 100, 7, 99999, 5, '{5}', false, '{0}', '{10}')",
                &[],
            )
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            !plan.contains("Seq Scan on messages"),
            "the generic plan reads the whole queue:\n{plan}"
        );
        assert!(plan.contains("messages_pkey"), "{plan}");
        // And the scan starts at the lane's mark, not at the front of the lane.
        assert!(
            plan.contains("Index Cond") && plan.contains("ROW(visible_at, id) >= ROW("),
            "the mark is not an index bound:\n{plan}"
        );
    }
}
