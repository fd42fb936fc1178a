//! Every SQL statement of the store, named for what it does. Statements run through
//! `prepare_cached`, so each is parsed once per connection.
//!
//! Every `LIMIT` (in this module and the backend's others) is written `LIMIT (?N + 0)`, an
//! expression, never a bare `LIMIT ?N`: SQLite built with STAT4 (as the bundled build is) lets
//! the planner use a bare bound `LIMIT`, marks the statement as depending on its value, and so
//! parses and plans it again every time the parameter is bound (see [`visible_in_order`] for
//! the lease's own case).

/// Migrations, in order: `MIGRATIONS[n]` brings the schema from version `n` to `n + 1`.
pub const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    super::invocations::SCHEMA_V4,
    super::schedules::SCHEMA_V5,
    SCHEMA_V6,
    SCHEMA_V7,
    super::topics::SCHEMA_V8,
    super::replies::SCHEMA_V9,
    SCHEMA_V10,
    super::kv::SCHEMA_V11,
    SCHEMA_V12,
    super::invocations::SCHEMA_V13,
];

/// Why each dead letter died, as a column beside the attribute that says so, so a dead-letter
/// queue is filtered and tallied by reason without reading every message's attributes. Set only
/// when a message moves to its dead-letter queue (NULL for every other message: their inserts
/// pay nothing for it); the partial index holds only dead letters, in id order per reason.
/// Dead letters already stored take the reason from their attribute.
const SCHEMA_V12: &str = "
ALTER TABLE messages ADD COLUMN dead_letter_reason TEXT;
UPDATE messages SET dead_letter_reason = (
    SELECT a.value ->> 1 FROM json_each(messages.attributes) AS a
    WHERE a.value ->> 0 = 'sluice-dead-letter-reason' LIMIT 1)
    WHERE source_queue IS NOT NULL AND attributes IS NOT NULL;
CREATE INDEX messages_by_reason ON messages(queue, dead_letter_reason, id)
    WHERE dead_letter_reason IS NOT NULL;
";

/// When each message was first leased: SQS's `ApproximateFirstReceiveTimestamp`. NULL until
/// then, and for messages leased before this version.
const SCHEMA_V10: &str = "ALTER TABLE messages ADD COLUMN first_leased_at INTEGER;";

/// Priorities and ordered groups.
///
/// - `lane` is the order a lease reads messages in: `9 - priority` for a message that may be
///   delivered (lane 0 first), [`HELD_LANE`] for one waiting behind the head of its group. The
///   lease index leads with it, so a lease is one index range per lane, read until the batch
///   is full; held messages sit in a lane no lease reads.
/// - `group_key` names a message's group; `messages_by_group` finds a group's head (its oldest
///   message) when the one before it leaves the queue, to move it out of the held lane.
const SCHEMA_V7: &str = "
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 4;
ALTER TABLE messages ADD COLUMN group_key TEXT;
ALTER TABLE messages ADD COLUMN lane INTEGER NOT NULL DEFAULT 5;
DROP INDEX messages_by_visibility;
CREATE INDEX messages_by_lane ON messages(queue, lane, visible_at, id);
CREATE INDEX messages_by_group ON messages(queue, group_key, id) WHERE group_key IS NOT NULL;
";

/// The lane of messages waiting behind their group's head; no lease reads it.
pub const HELD_LANE: i64 = 10;

/// The SQS endpoint's secret of a token (NULL for tokens issued without `sqs`): SigV4 needs
/// the secret itself to compute the HMAC, so it is kept, not hashed.
const SCHEMA_V6: &str = "ALTER TABLE tokens ADD COLUMN sqs_secret TEXT;";

/// Costs that do not grow with a queue's depth.
///
/// - `messages_by_queue` holds (queue, id): peek and the oldest message are an index walk.
/// - `queues.depth` counts a queue's messages, kept in step by every write that adds or
///   removes one, in the same transaction.
/// - Visible, delayed and in flight depend on the time. `message_due` counts, per queue and
///   `visible_at`, the messages not leased (`ready`) and leased (`leased`), for every message
///   with `visible_at > queues.due_through`; messages due at or before `due_through` are
///   visible and not tracked (a leased one there is a lease that expired). Stats read the
///   entries after now: delayed = their `ready`, in flight = their `leased`, visible = depth -
///   both. Each lease and each retention sweep folds the entries now past into `due_through`,
///   so the table holds roughly one entry per distinct future due time (a lease's expiry, a
///   delayed batch, a retry), bounded by the longest delay (15 minutes) and visibility timeout
///   (12 hours), never by the number of messages.
const SCHEMA_V3: &str = "
CREATE INDEX messages_by_queue ON messages(queue);
ALTER TABLE queues ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN due_through INTEGER NOT NULL DEFAULT 0;
CREATE TABLE message_due (
    queue      TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    ready      INTEGER NOT NULL,
    leased     INTEGER NOT NULL,
    PRIMARY KEY (queue, visible_at)
) WITHOUT ROWID;
UPDATE queues SET depth = (SELECT count(*) FROM messages WHERE messages.queue = queues.name);
INSERT INTO message_due (queue, visible_at, ready, leased)
    SELECT queue, visible_at, sum(lease_id IS NULL), sum(lease_id IS NOT NULL)
    FROM messages GROUP BY queue, visible_at;
";

/// API tokens: only a hash of each secret is kept.
const SCHEMA_V2: &str = "
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    scopes      TEXT NOT NULL,                       -- JSON array of scope strings
    created_at  INTEGER NOT NULL
);
";

const SCHEMA_V1: &str = "
CREATE TABLE queues (
    name                TEXT PRIMARY KEY,
    settings            TEXT NOT NULL,             -- QueueSettings as JSON
    dead_letter_queue   TEXT REFERENCES queues(name),
    created_at          INTEGER NOT NULL,
    enqueued_total      INTEGER NOT NULL DEFAULT 0,
    acked_total         INTEGER NOT NULL DEFAULT 0,
    retried_total       INTEGER NOT NULL DEFAULT 0,
    dead_lettered_total INTEGER NOT NULL DEFAULT 0,
    dropped_total       INTEGER NOT NULL DEFAULT 0,
    expired_total       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queues_by_dead_letter_queue ON queues(dead_letter_queue);

-- AUTOINCREMENT: an id is never reused, even after the newest message is deleted.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT NOT NULL,
    body         BLOB NOT NULL,
    attributes   TEXT,                             -- JSON [[name, value], ...]; NULL when none
    attempt      INTEGER NOT NULL DEFAULT 0,
    enqueued_at  INTEGER NOT NULL,
    visible_at   INTEGER NOT NULL,
    lease_id     INTEGER,
    last_error   TEXT,
    source_queue TEXT                              -- set on dead-lettered messages, for redrive
);
-- Leases walk this index in its order; it also answers visible counts and next-visible times.
CREATE INDEX messages_by_visibility ON messages(queue, visible_at, id);
-- No index on enqueued_at: it cost a third of enqueue and lease+ack throughput. Ids grow with
-- enqueue time, so the retention sweep walks the primary key from the oldest message instead.

CREATE TABLE dedup (
    queue      TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
CREATE INDEX dedup_by_expiry ON dedup(expires_at);

CREATE TABLE functions (
    name           TEXT PRIMARY KEY,
    active_version INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE TABLE function_versions (
    name       TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    config     TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE triggers (
    function        TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
    queue           TEXT NOT NULL UNIQUE REFERENCES queues(name),
    batch_size      INTEGER NOT NULL,
    max_wait_ms     INTEGER NOT NULL,
    max_concurrency INTEGER NOT NULL,
    paused          INTEGER NOT NULL
);
";

// ---- queues ----
pub const QUEUE_NAMES: &str = "SELECT name FROM queues";
pub const QUEUE_SETTINGS: &str = "SELECT settings FROM queues WHERE name = ?1";
pub const QUEUE_EXISTS: &str = "SELECT 1 FROM queues WHERE name = ?1";
pub const INSERT_QUEUE: &str =
    "INSERT INTO queues (name, settings, dead_letter_queue, created_at) VALUES (?1, ?2, ?3, ?4)";
pub const UPDATE_QUEUE_SETTINGS: &str =
    "UPDATE queues SET settings = ?2, dead_letter_queue = ?3 WHERE name = ?1";
pub const QUEUES_USING_AS_DLQ: &str =
    "SELECT name FROM queues WHERE dead_letter_queue = ?1 AND name <> ?1 ORDER BY name LIMIT 1";
pub const DEAD_LETTER_QUEUE_OF: &str = "SELECT dead_letter_queue FROM queues WHERE name = ?1";
pub const DELETE_QUEUE: &str = "DELETE FROM queues WHERE name = ?1";
/// Deletes up to ?3 of the queue's messages with ids up to ?2, oldest first; returns what the
/// counters need of each.
pub const DELETE_QUEUE_MESSAGES_UP_TO: &str = "DELETE FROM messages WHERE id IN
    (SELECT id FROM messages WHERE queue = ?1 AND id <= ?2 ORDER BY id LIMIT (?3 + 0))
    RETURNING visible_at, lease_id IS NOT NULL, group_key";
pub const NEWEST_ID_OF_QUEUE: &str = "SELECT max(id) FROM messages WHERE queue = ?1";
/// Up to ?2 of the queue's dedup entries.
pub const DELETE_QUEUE_DEDUP_SOME: &str = "DELETE FROM dedup WHERE (queue, dedup_id) IN
    (SELECT queue, dedup_id FROM dedup WHERE queue = ?1 LIMIT (?2 + 0))";
pub const DELETE_QUEUE_DUE: &str = "DELETE FROM message_due WHERE queue = ?1";
pub const ADD_COUNTERS: &str = "UPDATE queues SET
    enqueued_total = enqueued_total + ?2,
    acked_total = acked_total + ?3,
    retried_total = retried_total + ?4,
    dead_lettered_total = dead_lettered_total + ?5,
    dropped_total = dropped_total + ?6,
    expired_total = expired_total + ?7,
    depth = depth + ?8
    WHERE name = ?1";
pub const QUEUE_DEPTH: &str = "SELECT depth FROM queues WHERE name = ?1";
pub const DUE_THROUGH: &str = "SELECT due_through FROM queues WHERE name = ?1";
/// Adds to the counts of messages due at one time.
pub const ADD_DUE: &str = "INSERT INTO message_due (queue, visible_at, ready, leased)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (queue, visible_at) DO UPDATE SET
    ready = ready + excluded.ready, leased = leased + excluded.leased";
pub const DROP_EMPTY_DUE: &str =
    "DELETE FROM message_due WHERE queue = ?1 AND visible_at = ?2 AND ready = 0 AND leased = 0";
/// Folds one queue's entries due by ?2 into `due_through` (two statements).
pub const FOLD_DUE: &str = "DELETE FROM message_due WHERE queue = ?1 AND visible_at <= ?2";
pub const SET_DUE_THROUGH: &str =
    "UPDATE queues SET due_through = ?2 WHERE name = ?1 AND due_through < ?2";
/// The same for every queue, in the retention sweep.
pub const FOLD_ALL_DUE: &str = "DELETE FROM message_due WHERE visible_at <= ?1";
pub const SET_ALL_DUE_THROUGH: &str = "UPDATE queues SET due_through = ?1 WHERE due_through < ?1";
macro_rules! queue_columns {
    () => {
        "SELECT name, settings, created_at, enqueued_total, acked_total, retried_total,
        dead_lettered_total, dropped_total, expired_total, depth, due_through FROM queues"
    };
}
pub const SELECT_QUEUE: &str = concat!(queue_columns!(), " WHERE name = ?1");
pub const SELECT_QUEUES: &str = concat!(queue_columns!(), " ORDER BY name");
/// Messages not visible at ?2, not leased and leased: an index range over future due times.
pub const QUEUE_NOT_DUE: &str = "SELECT coalesce(sum(ready), 0), coalesce(sum(leased), 0)
    FROM message_due WHERE queue = ?1 AND visible_at > ?2";
/// The oldest message's enqueue time: ids grow with enqueue time, so the first by id.
pub const QUEUE_OLDEST: &str =
    "SELECT enqueued_at FROM messages WHERE queue = ?1 ORDER BY id LIMIT 1";
/// Live counts by reading every message of the queue: what the counters must always equal
/// (the property test checks it after every step).
#[cfg(test)]
pub const QUEUE_RECOUNT: &str = "SELECT
    count(*),
    coalesce(sum(visible_at <= ?2), 0),
    coalesce(sum(visible_at > ?2 AND lease_id IS NULL), 0),
    coalesce(sum(visible_at > ?2 AND lease_id IS NOT NULL), 0),
    min(enqueued_at)
    FROM messages WHERE queue = ?1";

// ---- messages ----
pub const INSERT_MESSAGE: &str = "INSERT INTO messages
    (queue, body, attributes, attempt, enqueued_at, visible_at, source_queue, priority, group_key,
    lane, dead_letter_reason) VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
/// Whether a group has a message in the queue (then a new one waits behind it).
pub const GROUP_HAS_MESSAGES: &str =
    "SELECT 1 FROM messages WHERE queue = ?1 AND group_key = ?2 LIMIT 1";
/// Moves a group's head (its oldest message) out of the held lane, if it is there.
pub const RELEASE_GROUP_HEAD: &str = "UPDATE messages SET lane = 9 - priority
    WHERE id = (SELECT id FROM messages WHERE queue = ?1 AND group_key = ?2 ORDER BY id LIMIT 1)
    AND lane = 10";
pub const DEDUP_LOOKUP: &str =
    "SELECT message_id FROM dedup WHERE queue = ?1 AND dedup_id = ?2 AND expires_at > ?3";
pub const DEDUP_REMEMBER: &str = "INSERT OR REPLACE INTO dedup (queue, dedup_id, message_id, expires_at) VALUES (?1, ?2, ?3, ?4)";
/// Visible messages of one lane in delivery order, as one arm of [`visible_in_order`]. The
/// queue is bound as `CAST(?1 AS TEXT)`, an expression: bound bare beside this `ORDER BY`,
/// SQLite marks the statement as planned for the value and prepares it again at every bind
/// (measured: a third of the host's CPU in `sluice bench --only outbound`). The plan is the
/// same (`messages_by_lane`, queue and lane equal, `visible_at` in range).
macro_rules! visible_in_lane {
    ($lane:literal) => {
        concat!(
            "SELECT * FROM (SELECT id, body, attributes, attempt, enqueued_at, visible_at,
            lease_id IS NOT NULL, priority, group_key, first_leased_at FROM messages
            WHERE queue = CAST(?1 AS TEXT) AND lane = ",
            $lane,
            " AND visible_at <= ?2 ORDER BY visible_at, id LIMIT (?3 + 0))"
        )
    };
}
/// The ten arms of [`visible_in_order`], by lane.
const VISIBLE_IN_LANE: [&str; 10] = [
    visible_in_lane!(0),
    visible_in_lane!(1),
    visible_in_lane!(2),
    visible_in_lane!(3),
    visible_in_lane!(4),
    visible_in_lane!(5),
    visible_in_lane!(6),
    visible_in_lane!(7),
    visible_in_lane!(8),
    visible_in_lane!(9),
];
/// Visible messages in delivery order: lane `first` (a lane served out of turn, so that no
/// priority waits forever), then lanes 0 to 9; within a lane, by visible time and id. Each
/// arm walks `messages_by_lane` in its order, and SQLite stops at the outer limit, so a lease
/// reads only the lanes it takes from.
pub fn visible_in_order(first: usize) -> &'static str {
    static STATEMENTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (0..10)
            .map(|first| {
                let order = std::iter::once(first).chain((0..10).filter(|&l| l != first));
                let arms: Vec<&str> = order.map(|lane| VISIBLE_IN_LANE[lane]).collect();
                format!("{} LIMIT (?3 + 0)", arms.join(" UNION ALL "))
            })
            .collect()
    });
    &STATEMENTS[first.min(9)]
}
pub const LEASED_VISIBLE_AT: &str =
    "SELECT visible_at FROM messages WHERE id = ?1 AND lease_id = ?2 AND queue = ?3";
/// Leases of a queue still live (some message held and not yet visible again).
pub const LIVE_LEASES: &str = "SELECT count(DISTINCT lease_id) FROM messages
    WHERE queue = ?1 AND lane IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) AND visible_at > ?2
    AND lease_id IS NOT NULL";
pub const EXTEND_LEASE: &str =
    "UPDATE messages SET visible_at = ?3 WHERE id = ?1 AND lease_id = ?2";
/// Leases many messages in one statement; ?1 is a JSON array of ids, ?4 the time now (kept as
/// the time of a message's first lease). One statement per batch instead of one per message:
/// the writer thread is the pipeline's bottleneck.
pub const TAKE_LEASE_MANY: &str =
    "UPDATE messages SET lease_id = ?2, visible_at = ?3, attempt = attempt + 1,
    first_leased_at = coalesce(first_leased_at, ?4)
    WHERE id IN (SELECT value FROM json_each(?1))";
/// Acknowledges many messages in one statement; ?1 is a JSON array of ids. Only rows this
/// lease still holds are deleted.
pub const ACK_MANY: &str =
    "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?1)) AND lease_id = ?2
    AND queue = ?3 RETURNING id, visible_at, group_key";
pub const LEASED_ATTEMPT: &str =
    "SELECT attempt, visible_at FROM messages WHERE id = ?1 AND lease_id = ?2 AND queue = ?3";
pub const RETRY: &str =
    "UPDATE messages SET lease_id = NULL, visible_at = ?2, last_error = ?3 WHERE id = ?1";
pub const MESSAGE_FOR_MOVE: &str = "SELECT body, attributes, attempt, visible_at,
    lease_id IS NOT NULL, priority, group_key FROM messages WHERE id = ?1";
pub const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE id = ?1";
pub const DELETE_QUEUE_MESSAGE: &str = "DELETE FROM messages WHERE id = ?1 AND queue = ?2
    RETURNING visible_at, lease_id IS NOT NULL, group_key";
/// The source of one dead-lettered message, when it is in the queue and not leased now.
pub const REDRIVABLE_ONE: &str = "SELECT source_queue FROM messages
    WHERE id = ?1 AND queue = ?2 AND (lease_id IS NULL OR visible_at <= ?3)";
/// Dead-lettered messages not currently leased, oldest first, after a cursor.
pub const REDRIVABLE: &str = "SELECT id, source_queue FROM messages
    WHERE queue = ?1 AND id > ?2 AND (lease_id IS NULL OR visible_at <= ?3) ORDER BY id LIMIT (?4 + 0)";
/// A queue's oldest messages first (ids grow with enqueue time).
pub const OLDEST_OF_QUEUE: &str = "SELECT id, enqueued_at, visible_at, lease_id IS NOT NULL,
    group_key FROM messages WHERE queue = ?1 ORDER BY id LIMIT (?2 + 0)";
pub const QUEUE_RETENTIONS: &str = "SELECT name, settings FROM queues";
/// Up to ?2 dedup entries whose window has passed.
pub const DEDUP_FORGET_EXPIRED_SOME: &str = "DELETE FROM dedup WHERE (queue, dedup_id) IN
    (SELECT queue, dedup_id FROM dedup WHERE expires_at <= ?1 LIMIT (?2 + 0))";
/// Unacknowledged messages (in flight too) in id order, after a cursor.
pub const PEEK: &str = "SELECT id, body, attributes, attempt, enqueued_at, NULL, NULL,
    priority, group_key, first_leased_at FROM messages WHERE id > ?2 AND queue = ?1 ORDER BY id LIMIT (?3 + 0)";
/// Like [`PEEK`], only the dead letters that died for reason ?4: a walk of `messages_by_reason`.
pub const PEEK_REASON: &str = "SELECT id, body, attributes, attempt, enqueued_at, NULL, NULL,
    priority, group_key, first_leased_at FROM messages INDEXED BY messages_by_reason
    WHERE queue = ?1 AND dead_letter_reason = ?4 AND id > ?2 ORDER BY id LIMIT (?3 + 0)";
/// Like [`PEEK`], only the messages that are not dead letters with a reason (put in a
/// dead-letter queue by hand, say).
pub const PEEK_NO_REASON: &str = "SELECT id, body, attributes, attempt, enqueued_at, NULL, NULL,
    priority, group_key, first_leased_at FROM messages
    WHERE id > ?2 AND queue = ?1 AND dead_letter_reason IS NULL ORDER BY id LIMIT (?3 + 0)";
/// A queue's messages, and the ?2 reasons most of its dead letters died for, most first, each
/// with how many, how many have any reason, and how many distinct reasons there are: one
/// statement, so one snapshot. The count walks `messages_by_queue`, the reasons only the
/// queue's part of `messages_by_reason`; neither reads a message.
pub const DEAD_LETTER_REASONS: &str =
    "SELECT t.total, r.reason, r.n, r.with_reason, r.distinct_reasons
    FROM (SELECT count(*) AS total FROM messages WHERE queue = ?1) AS t
    LEFT JOIN (SELECT dead_letter_reason AS reason, count(*) AS n,
            sum(count(*)) OVER () AS with_reason, count(*) OVER () AS distinct_reasons
        FROM messages INDEXED BY messages_by_reason
        WHERE queue = ?1 AND dead_letter_reason IS NOT NULL
        GROUP BY dead_letter_reason ORDER BY n DESC, reason LIMIT (?2 + 0)) AS r ON 1
    ORDER BY r.n DESC, r.reason";
/// The earliest time after ?2 a message of lanes 0–9 becomes visible: one index seek per lane.
pub const NEXT_VISIBLE_AT: &str = "SELECT min((SELECT min(visible_at) FROM messages
        WHERE queue = ?1 AND lane = lanes.value AND visible_at > ?2))
    FROM json_each('[0,1,2,3,4,5,6,7,8,9]') AS lanes";
pub const VISIBLE_COUNT: &str = "SELECT count(*) FROM
    (SELECT 1 FROM messages WHERE queue = ?1 AND lane IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    AND visible_at <= ?2 LIMIT (?3 + 0))";

// ---- functions and triggers ----
pub const FUNCTION_EXISTS: &str = "SELECT 1 FROM functions WHERE name = ?1";
pub const INSERT_FUNCTION: &str = "INSERT INTO functions (name, active_version, created_at) VALUES (?1, 0, ?2) ON CONFLICT (name) DO NOTHING";
pub const LAST_VERSION: &str =
    "SELECT coalesce(max(version), 0) FROM function_versions WHERE name = ?1";
pub const INSERT_VERSION: &str = "INSERT INTO function_versions (name, version, sha256, size, created_at, config) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub const VERSION_EXISTS: &str = "SELECT 1 FROM function_versions WHERE name = ?1 AND version = ?2";
pub const SET_ACTIVE_VERSION: &str = "UPDATE functions SET active_version = ?2 WHERE name = ?1";
pub const DELETE_FUNCTION: &str = "DELETE FROM functions WHERE name = ?1";
pub const FUNCTION_NAMES: &str = "SELECT name FROM functions ORDER BY name";
pub const ACTIVE_VERSION: &str = "SELECT active_version FROM functions WHERE name = ?1";
pub const FUNCTION_VERSIONS: &str = "SELECT version, sha256, size, created_at, config FROM function_versions WHERE name = ?1 ORDER BY version";
macro_rules! trigger_columns {
    () => {
        "SELECT function, queue, batch_size, max_wait_ms, max_concurrency, paused FROM triggers"
    };
}
pub const TRIGGER_OF_FUNCTION: &str = concat!(trigger_columns!(), " WHERE function = ?1");
pub const ALL_TRIGGERS: &str = concat!(trigger_columns!(), " ORDER BY function");
pub const CONSUMER_OF_QUEUE: &str = "SELECT function FROM triggers WHERE queue = ?1";
pub const UPSERT_TRIGGER: &str = "INSERT INTO triggers (function, queue, batch_size, max_wait_ms, max_concurrency, paused)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (function) DO UPDATE SET queue = excluded.queue, batch_size = excluded.batch_size,
    max_wait_ms = excluded.max_wait_ms, max_concurrency = excluded.max_concurrency, paused = excluded.paused";
pub const DELETE_TRIGGER: &str = "DELETE FROM triggers WHERE function = ?1";

// ---- tokens ----
pub const INSERT_TOKEN: &str = "INSERT INTO tokens (id, name, hash, scopes, created_at, sqs_secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub const ALL_TOKENS: &str =
    "SELECT id, name, hash, scopes, created_at, sqs_secret FROM tokens ORDER BY created_at, id";
pub const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = ?1";

#[cfg(test)]
mod limit_tests {
    /// Why every `LIMIT` is an expression: a bare bound `LIMIT` makes SQLite prepare the
    /// statement again each time it is bound; `LIMIT (?1 + 0)` does not.
    #[test]
    fn a_bare_bound_limit_reprepares_and_an_expression_does_not() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
            .unwrap();
        let reprepares = |sql: &str| {
            for limit in 1..=3 {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                stmt.query_map([2, limit], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .for_each(drop);
            }
            let stmt = conn.prepare_cached(sql).unwrap();
            stmt.get_status(rusqlite::StatementStatus::RePrepare)
        };
        let bare = concat!("SELECT id FROM t WHERE v <= ?1 LIMIT ", "?2");
        assert!(
            reprepares(bare) > 0,
            "SQLite no longer re-prepares: the rule may go"
        );
        assert_eq!(
            reprepares("SELECT id FROM t WHERE v <= ?1 LIMIT (?2 + 0)"),
            0
        );
    }

    /// The lease, the statement every batch runs, is prepared once, whatever it is bound to.
    #[test]
    fn the_lease_is_not_prepared_again_when_bound_again() {
        let dir = tempfile::tempdir().unwrap();
        let _store = crate::store::Store::open(dir.path(), Default::default()).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
        for first in [0, 4] {
            let sql = super::visible_in_order(first);
            for (queue, now, limit) in [("a", 1_000, 1), ("b", 2_000, 10), ("a", 3_000, 100)] {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                stmt.query_map(rusqlite::params![queue, now, limit], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .for_each(drop);
            }
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
        }
    }

    /// No statement of the backend binds a bare `LIMIT`.
    #[test]
    fn no_statement_binds_a_bare_limit() {
        let bare = concat!("LIMIT ", "?");
        for (file, text) in [
            ("sql.rs", include_str!("sql.rs")),
            ("messages.rs", include_str!("messages.rs")),
            ("topics.rs", include_str!("topics.rs")),
            ("replies.rs", include_str!("replies.rs")),
            ("invocations.rs", include_str!("invocations.rs")),
            ("catalog.rs", include_str!("catalog.rs")),
            ("read.rs", include_str!("read.rs")),
            ("schedules.rs", include_str!("schedules.rs")),
            ("tokens.rs", include_str!("tokens.rs")),
            ("components.rs", include_str!("components.rs")),
            ("mod.rs", include_str!("mod.rs")),
        ] {
            let bound = text
                .match_indices(bare)
                .any(|(at, _)| text[at + bare.len()..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(!bound, "{file} has a bare bound LIMIT");
        }
    }
}
