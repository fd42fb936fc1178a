//! Key-value buckets in native tests: the committed state a [`Harness`](super::Harness) keeps
//! between runs, and the writes of the run in progress, which reads see first and which are
//! committed only when the handler returns `Ok` — the host's rule, in memory.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::kv::{Error, KeyPage, add_to_counter};

/// How many keys one page of `list_keys` holds, as on the host.
const KEYS_PAGE: usize = 1000;

/// A committed key: its value and a version changed by every commit, as on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: Vec<u8>,
    version: u64,
}

/// Committed state: bucket → key → entry. `declared`: only the buckets present may be opened
/// (a harness that named none lets any bucket open, empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct Committed {
    buckets: BTreeMap<String, BTreeMap<String, Entry>>,
    declared: bool,
    versions: u64,
}

impl Committed {
    /// Lets `bucket` be opened (and so only the buckets declared).
    pub(super) fn declare(&mut self, bucket: &str) {
        self.declared = true;
        self.buckets.entry(bucket.to_owned()).or_default();
    }

    /// Commits `value` (`None`: deletes) to a key.
    pub(super) fn put(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) {
        self.versions += 1;
        let keys = self.buckets.entry(bucket.to_owned()).or_default();
        match value {
            Some(value) => {
                keys.insert(
                    key.to_owned(),
                    Entry {
                        value,
                        version: self.versions,
                    },
                );
            }
            None => {
                keys.remove(key);
            }
        }
    }

    /// A key's committed value.
    pub(super) fn get(&self, bucket: &str, key: &str) -> Option<&[u8]> {
        Some(&self.buckets.get(bucket)?.get(key)?.value)
    }

    /// A bucket's committed keys, in byte order.
    pub(super) fn keys(&self, bucket: &str) -> Vec<String> {
        self.buckets
            .get(bucket)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn version(&self, bucket: &str, key: &str) -> u64 {
        self.buckets
            .get(bucket)
            .and_then(|keys| keys.get(key))
            .map_or(0, |entry| entry.version)
    }
}

/// A write a handler made during a test run: the key's value when the handler returned (the
/// last of its writes to the key), `None` when it deleted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvWrite {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The value written, `None` for a delete. An increment is written as the counter it made,
    /// in ASCII decimal.
    pub value: Option<Vec<u8>>,
}

impl KvWrite {
    /// The value as text; `None` for a delete or a value that is not UTF-8.
    ///
    /// ```
    /// # use sluice_sdk::{kv, testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { kv::open("b")?.increment("n", 2)?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.kv_writes()[0].value_str(), Some("2"));
    /// ```
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value.as_deref()?).ok()
    }
}

/// A run's own writes: (bucket, key) → value, `None` for a delete.
type Writes = BTreeMap<(String, String), Option<Vec<u8>>>;

/// What a run replaced, to put back when it ends.
pub(super) struct Saved(Committed, Writes);

thread_local! {
    /// The committed state the run in progress reads (outside a run: a scratch state in which
    /// every bucket opens).
    static COMMITTED: RefCell<Committed> = RefCell::new(Committed::default());
    /// The run's own writes, per key, in key order.
    static PENDING: RefCell<Writes> = const { RefCell::new(BTreeMap::new()) };
}

/// Starts a run on `committed`; returns the state to restore with [`finish`].
pub(super) fn start(committed: Committed) -> Saved {
    Saved(COMMITTED.replace(committed), PENDING.take())
}

/// Ends a run: restores what [`start`] returned, and answers the run's writes.
pub(super) fn finish(saved: Saved) -> Vec<KvWrite> {
    COMMITTED.set(saved.0);
    PENDING
        .replace(saved.1)
        .into_iter()
        .map(|((bucket, key), value)| KvWrite { bucket, key, value })
        .collect()
}

/// An open bucket in the harness: its name is enough.
pub(crate) type Bucket = ();
/// A compare-and-swap read: the committed version it saw.
pub(crate) type Cas = u64;

/// Why a swap did not happen.
pub(crate) enum Swap {
    Changed(Cas, Option<Vec<u8>>),
    // Kept for the host's shape: a swap in memory cannot fail otherwise.
    #[allow(dead_code)]
    Failed(Error),
}

pub(crate) fn open(name: &str) -> Result<Bucket, Error> {
    COMMITTED.with_borrow(|committed| {
        if committed.declared && !committed.buckets.contains_key(name) {
            return Err(Error::AccessDenied {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    })
}

fn read(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let slot = (bucket.to_owned(), key.to_owned());
    match PENDING.with_borrow(|pending| pending.get(&slot).cloned()) {
        Some(own) => own,
        None => COMMITTED.with_borrow(|c| c.get(bucket, key).map(<[u8]>::to_vec)),
    }
}

fn write(bucket: &str, key: &str, value: Option<Vec<u8>>) {
    PENDING.with_borrow_mut(|pending| pending.insert((bucket.to_owned(), key.to_owned()), value));
}

pub(crate) fn get(_: &Bucket, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(read(bucket, key))
}

pub(crate) fn set(_: &Bucket, bucket: &str, key: &str, value: &[u8]) -> Result<(), Error> {
    write(bucket, key, Some(value.to_vec()));
    Ok(())
}

pub(crate) fn delete(_: &Bucket, bucket: &str, key: &str) -> Result<(), Error> {
    write(bucket, key, None);
    Ok(())
}

pub(crate) fn exists(_: &Bucket, bucket: &str, key: &str) -> Result<bool, Error> {
    Ok(read(bucket, key).is_some())
}

pub(crate) fn list_keys(_: &Bucket, bucket: &str, cursor: Option<&str>) -> Result<KeyPage, Error> {
    let mut keys = COMMITTED.with_borrow(|c| c.keys(bucket));
    PENDING.with_borrow(|pending| {
        for ((_, key), value) in pending.iter().filter(|((b, _), _)| b == bucket) {
            match (value, keys.binary_search(key)) {
                (Some(_), Err(at)) => keys.insert(at, key.clone()),
                (None, Ok(at)) => {
                    keys.remove(at);
                }
                _ => {}
            }
        }
    });
    let mut keys: Vec<String> = keys
        .into_iter()
        .filter(|key| cursor.is_none_or(|c| key.as_str() > c))
        .take(KEYS_PAGE + 1)
        .collect();
    let more = keys.len() > KEYS_PAGE;
    keys.truncate(KEYS_PAGE);
    let cursor = more.then(|| keys.last().cloned()).flatten();
    Ok(KeyPage { keys, cursor })
}

pub(crate) fn increment(_: &Bucket, bucket: &str, key: &str, delta: i64) -> Result<i64, Error> {
    // Nothing else commits during a test run, so the sum is what the commit will write.
    let sum = add_to_counter(bucket, key, read(bucket, key).as_deref(), delta)?;
    write(bucket, key, Some(sum.to_string().into_bytes()));
    Ok(sum)
}

pub(crate) fn cas(_: &Bucket, bucket: &str, key: &str) -> Result<(Cas, Option<Vec<u8>>), Error> {
    let version = COMMITTED.with_borrow(|c| c.version(bucket, key));
    Ok((version, read(bucket, key)))
}

pub(crate) fn swap(version: Cas, bucket: &str, key: &str, value: &[u8]) -> Result<(), Swap> {
    let now = COMMITTED.with_borrow(|c| c.version(bucket, key));
    if now != version {
        return Err(Swap::Changed(now, read(bucket, key)));
    }
    write(bucket, key, Some(value.to_vec()));
    Ok(())
}
