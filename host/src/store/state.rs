//! Key-value state, decided once for both backends: what buckets and keys are, the checks a
//! write passes before any backend sees it, and [`plan`], which turns a list of
//! [`StateWrite`]s and the keys' committed values into the rows to write. A backend reads the
//! keys (locked until its commit), asks [`plan`], and writes what it answers, in the same
//! transaction as the settle that carries the writes.
//!
//! What a handler may rely on: writes commit with the ack of its batch or not at all; an
//! increment adds its delta to whatever is committed when the settle commits (so concurrent
//! increments never lose an update); a write that expects a version (a compare-and-swap) fails
//! the whole settle with [`Error::StateConflict`] when the key changed since it was read, and
//! so does a settle carrying writes whose lease no longer holds every message it names.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::{Error, Result};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// The longest bucket name, in characters.
pub const MAX_BUCKET_NAME_LEN: usize = 80;
/// The longest a bucket may keep a key after its last write (ten years).
pub const MAX_TTL_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;

/// A bucket as stored: keys written to it expire `ttl_ms` after their last write, if set.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketRecord {
    pub name: String,
    pub ttl_ms: Option<u64>,
    pub created_at_ms: u64,
}

/// A committed key: its value, its version (changed by every write, never reused, so a
/// compare-and-swap can tell it was rewritten) and when it was last written.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub version: u64,
    pub written_at_ms: u64,
}

/// One write to a key, applied at commit.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub bucket: String,
    pub key: String,
    pub op: StateOp,
    /// Commit only if the key's committed version is still this one (`0`: the key must be
    /// absent); the version a compare-and-swap read.
    pub expect: Option<u64>,
}

/// What a [`StateWrite`] does.
#[derive(Debug, Clone, PartialEq)]
pub enum StateOp {
    Set(Vec<u8>),
    Delete,
    /// Adds to the key's counter (a missing key counts as 0), at commit.
    Increment(i64),
}

/// The version of an absent key, as [`StateWrite::expect`] names it.
pub const ABSENT: u64 = 0;

/// A counter's value as stored: ASCII decimal, as Redis keeps `INCR` counters, so an operator
/// reading the key through the API sees the number.
pub fn encode_counter(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// The counter a value holds, if it holds one (ASCII decimal).
pub fn decode_counter(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// Adds `delta` to the counter `value` holds (`None`: absent, 0). Fails when the value is not
/// a counter or the sum overflows.
pub fn add_to_counter(value: Option<&[u8]>, delta: i64) -> std::result::Result<i64, String> {
    let current = match value {
        None => 0,
        Some(v) => decode_counter(v).ok_or("its value is not a decimal integer")?,
    };
    current
        .checked_add(delta)
        .ok_or_else(|| format!("{current} + {delta} overflows a 64-bit integer"))
}

/// Bucket names follow queue names: 1 to 80 characters of `A-Z a-z 0-9 _ -`.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let invalid = |reason: String| Err(Error::InvalidKv(format!("bucket name `{name}`: {reason}")));
    if name.is_empty() {
        return invalid("a name cannot be empty".into());
    }
    if name.len() > MAX_BUCKET_NAME_LEN {
        return invalid(format!(
            "a name is at most {MAX_BUCKET_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return invalid(format!(
            "{c:?} is not allowed; use only letters A-Z a-z, digits 0-9, `_` and `-`"
        ));
    }
    Ok(())
}

/// A bucket's expiry: none, or between 1 ms and [`MAX_TTL_MS`].
pub fn validate_ttl(ttl_ms: Option<u64>) -> Result<()> {
    match ttl_ms {
        Some(ttl) if ttl == 0 || ttl > MAX_TTL_MS => Err(Error::InvalidKv(format!(
            "ttl_ms must be between 1 and {MAX_TTL_MS} (ten years), or left out for no expiry; \
             got {ttl}"
        ))),
        _ => Ok(()),
    }
}

/// A key: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKv("a key cannot be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKv(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// A value: at most [`MAX_VALUE_BYTES`] bytes.
pub fn validate_value(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::InvalidKv(format!(
            "value of {} bytes for key `{key}` exceeds the limit of {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Every check a write passes before any backend sees it.
pub fn validate_write(write: &StateWrite) -> Result<()> {
    validate_bucket_name(&write.bucket)?;
    validate_key(&write.key)?;
    match &write.op {
        StateOp::Set(value) => validate_value(&write.key, value),
        StateOp::Delete | StateOp::Increment(_) => Ok(()),
    }
}

/// A settle's writes commit only while its lease still holds every message it names: a stale
/// message is another consumer's now, and that consumer's writes will count it. Then nothing
/// of the settle commits and the messages this lease still holds come back once it expires.
pub fn check_lease_held(stale: &[String], state: &[StateWrite]) -> Result<()> {
    match stale.first() {
        Some(id) if !state.is_empty() => Err(Error::StateConflict(format!(
            "the lease no longer holds message {id}, so the batch's state writes cannot commit; \
             its messages are delivered again"
        ))),
        _ => Ok(()),
    }
}

/// The advisory lock a backend that shares its database takes on a key before reading it for
/// a settle, so that two hosts writing one key serialize even while the key has no row yet.
/// Stable across hosts and releases: the first eight bytes of the SHA-256 of bucket and key.
pub fn lock_of(bucket: &str, key: &str) -> i64 {
    let mut hash = Sha256::new();
    hash.update(bucket.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

/// The locks of `writes`' keys, each once, in ascending order (so that transactions taking
/// several never deadlock).
pub fn locks_of(writes: &[StateWrite]) -> Vec<i64> {
    let mut locks: Vec<i64> = writes.iter().map(|w| lock_of(&w.bucket, &w.key)).collect();
    locks.sort_unstable();
    locks.dedup();
    locks
}

/// The keys a commit of `writes` must read: those it adds to, and those a compare-and-swap
/// checks. A plain set or delete replaces whatever is there, unread.
pub fn keys_to_read(writes: &[StateWrite]) -> HashSet<(&str, &str)> {
    writes
        .iter()
        .filter(|w| w.expect.is_some() || matches!(w.op, StateOp::Increment(_)))
        .map(|w| (w.bucket.as_str(), w.key.as_str()))
        .collect()
}

/// What a settle does to one key: write `value` (a new version) expiring at `expires_at`, or
/// delete the key (`value` `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub bucket: String,
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub expires_at: Option<u64>,
}

/// Decides the writes of one commit at `now`. `ttl_of` gives each bucket's expiry (`None` for a
/// bucket that does not exist, which fails the commit); `committed` the live (unexpired) value
/// and version of a key as the backend read it, locked (needed only for [`keys_to_read`]). Writes apply in order, a later one
/// seeing an earlier one's value; an expected version is checked against the committed one.
/// Returns one change per key written, in (bucket, key) order.
pub fn plan(
    writes: Vec<StateWrite>,
    ttl_of: impl Fn(&str) -> Option<Option<u64>>,
    committed: impl Fn(&str, &str) -> Option<(Vec<u8>, u64)>,
    now: u64,
) -> Result<Vec<Change>> {
    let mut ttls: HashMap<String, Option<u64>> = HashMap::new();
    let mut changes: BTreeMap<(String, String), Option<Vec<u8>>> = BTreeMap::new();
    for write in writes {
        if !ttls.contains_key(&write.bucket) {
            let ttl =
                ttl_of(&write.bucket).ok_or_else(|| Error::BucketNotFound(write.bucket.clone()))?;
            ttls.insert(write.bucket.clone(), ttl);
        }
        let read = committed(&write.bucket, &write.key);
        if let Some(expected) = write.expect {
            let version = read.as_ref().map_or(ABSENT, |(_, version)| *version);
            if version != expected {
                return Err(Error::StateConflict(format!(
                    "key `{}` of bucket `{}` changed since the handler read it (version {expected}, \
                     now {version}); the batch is retried",
                    write.key, write.bucket
                )));
            }
        }
        let slot = (write.bucket, write.key);
        let current = match changes.get(&slot) {
            Some(pending) => pending.clone(),
            None => read.map(|(value, _)| value),
        };
        let value = match write.op {
            StateOp::Set(value) => Some(value),
            StateOp::Delete => None,
            StateOp::Increment(delta) => {
                let sum = add_to_counter(current.as_deref(), delta).map_err(|why| {
                    Error::StateConflict(format!(
                        "cannot increment key `{}` of bucket `{}`: {why}",
                        slot.1, slot.0
                    ))
                })?;
                Some(encode_counter(sum))
            }
        };
        changes.insert(slot, value);
    }
    Ok(changes
        .into_iter()
        .map(|((bucket, key), value)| {
            let expires_at = ttls[&bucket].map(|ttl| now.saturating_add(ttl));
            Change {
                bucket,
                key,
                value,
                expires_at,
            }
        })
        .collect())
}

/// Whether a key written to expire at `expires_at` is gone at `now` (reads hide it before the
/// sweep removes it).
pub fn expired(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// The most keys one page of a listing returns.
pub const MAX_KEYS_PAGE: usize = 1000;

/// Where a listing of the keys starting with `prefix` after the cursor `after` starts, in byte
/// order: the key to start from, and whether that key itself is included (the prefix is, a
/// cursor is not).
pub fn keys_from<'a>(prefix: &'a str, after: Option<&'a str>) -> (&'a str, bool) {
    match after {
        Some(after) if after >= prefix => (after, false),
        _ => (prefix, true),
    }
}

/// One page of a bucket's keys, in byte order; `cursor` is the last key of the page when more
/// may follow (pass it back to read on).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub cursor: Option<String>,
}

impl KeyPage {
    /// The page from up to `limit + 1` keys read after the cursor: the extra one only says that
    /// more follow.
    pub fn from_read(mut keys: Vec<String>, limit: usize) -> KeyPage {
        let more = keys.len() > limit;
        keys.truncate(limit);
        let cursor = more.then(|| keys.last().cloned()).flatten();
        KeyPage { keys, cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, op: StateOp, expect: Option<u64>) -> StateWrite {
        StateWrite {
            bucket: "b".into(),
            key: key.into(),
            op,
            expect,
        }
    }

    #[test]
    fn only_increments_and_swaps_read_their_keys() {
        let writes = [
            write("set", StateOp::Set(b"x".to_vec()), None),
            write("gone", StateOp::Delete, None),
            write("n", StateOp::Increment(1), None),
            write("swapped", StateOp::Set(b"y".to_vec()), Some(3)),
        ];
        let read = keys_to_read(&writes);
        assert_eq!(read, HashSet::from([("b", "n"), ("b", "swapped")]));
        // Unread keys plan as if absent: a set or a delete does not look.
        let changes = plan(
            writes.to_vec(),
            ttl,
            |_, key| (key == "swapped").then(|| (b"old".to_vec(), 3)),
            0,
        )
        .unwrap();
        assert_eq!(changes.len(), 4);
    }

    fn ttl(bucket: &str) -> Option<Option<u64>> {
        (bucket == "b").then_some(Some(1_000))
    }

    #[test]
    fn increments_add_to_the_committed_value_and_to_each_other() {
        let changes = plan(
            vec![
                write("n", StateOp::Increment(2), None),
                write("n", StateOp::Increment(3), None),
                write("fresh", StateOp::Increment(-1), None),
            ],
            ttl,
            |_, key| (key == "n").then(|| (b"10".to_vec(), 7)),
            50,
        )
        .unwrap();
        assert_eq!(
            changes,
            vec![
                Change {
                    bucket: "b".into(),
                    key: "fresh".into(),
                    value: Some(b"-1".to_vec()),
                    expires_at: Some(1_050),
                },
                Change {
                    bucket: "b".into(),
                    key: "n".into(),
                    value: Some(b"15".to_vec()),
                    expires_at: Some(1_050),
                },
            ]
        );
    }

    #[test]
    fn an_expected_version_must_still_be_committed() {
        let committed = |_: &str, _: &str| Some((b"x".to_vec(), 4));
        let swap = |expect| write("k", StateOp::Set(b"y".to_vec()), Some(expect));
        assert!(plan(vec![swap(4)], ttl, committed, 0).is_ok());
        assert!(matches!(
            plan(vec![swap(3)], ttl, committed, 0),
            Err(Error::StateConflict(_))
        ));
        // Expecting absence fails once the key exists, and holds while it does not.
        assert!(plan(vec![swap(ABSENT)], ttl, committed, 0).is_err());
        assert!(plan(vec![swap(ABSENT)], ttl, |_, _| None, 0).is_ok());
    }

    #[test]
    fn a_missing_bucket_or_a_value_that_is_no_counter_fails_the_commit() {
        let mut other = write("k", StateOp::Delete, None);
        other.bucket = "nope".into();
        assert!(matches!(
            plan(vec![other], ttl, |_, _| None, 0),
            Err(Error::BucketNotFound(b)) if b == "nope"
        ));
        assert!(matches!(
            plan(
                vec![write("k", StateOp::Increment(1), None)],
                ttl,
                |_, _| Some((b"abc".to_vec(), 1)),
                0
            ),
            Err(Error::StateConflict(_))
        ));
    }

    #[test]
    fn the_last_write_to_a_key_wins_and_deletes_have_no_value() {
        let changes = plan(
            vec![
                write("k", StateOp::Set(b"1".to_vec()), None),
                write("k", StateOp::Delete, None),
            ],
            |_| Some(None),
            |_, _| None,
            0,
        )
        .unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].value, None);
        assert_eq!(changes[0].expires_at, None);
    }

    #[test]
    fn state_needs_every_message_held() {
        let state = vec![write("k", StateOp::Delete, None)];
        assert!(check_lease_held(&[], &state).is_ok());
        assert!(check_lease_held(&["1".into()], &[]).is_ok());
        assert!(check_lease_held(&["1".into()], &state).is_err());
    }

    #[test]
    fn checks_of_names_keys_values_and_ttls() {
        assert!(validate_bucket_name("counts_1-a").is_ok());
        assert!(validate_bucket_name("").is_err());
        assert!(validate_bucket_name("a/b").is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(validate_key("").is_err());
        assert!(validate_value("k", &vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(validate_value("k", &vec![0; MAX_VALUE_BYTES + 1]).is_err());
        assert!(validate_ttl(None).is_ok());
        assert!(validate_ttl(Some(0)).is_err());
        assert!(validate_ttl(Some(3_600_000)).is_ok());
    }

    #[test]
    fn locks_are_stable_sorted_and_distinct() {
        assert_eq!(lock_of("b", "k"), lock_of("b", "k"));
        assert_ne!(lock_of("b", "k"), lock_of("bk", ""));
        let writes = vec![
            write("x", StateOp::Delete, None),
            write("y", StateOp::Delete, None),
            write("x", StateOp::Increment(1), None),
        ];
        let locks = locks_of(&writes);
        assert_eq!(locks.len(), 2);
        assert!(locks[0] < locks[1]);
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_follow() {
        let keys = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(KeyPage::from_read(keys(2), 2).cursor, None);
        assert_eq!(KeyPage::from_read(keys(3), 2).cursor, Some("1".into()));
        assert_eq!(KeyPage::from_read(keys(3), 2).keys.len(), 2);
    }
}
