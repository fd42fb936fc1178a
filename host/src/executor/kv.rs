//! The `wasi:keyvalue` imports of world 0.4.0 for one invocation: the buckets it may open, the
//! buffer of its writes (one pending change per key, with the version a compare-and-swap read)
//! and its reads, which see that buffer first and then committed state, read through the
//! [`Store`]. A counter is read once per invocation: its later increments add to what the
//! first one read (the commit adds the deltas to whatever is committed then). Nothing is written here: the buffer becomes the settlement's `state`, committed
//! with the batch's ack (see `crate::store::state` for what the commit decides).

use std::collections::{BTreeMap, HashSet};

use wasmtime::component::Resource;

use super::bindings::v4::wasi::keyvalue::{atomics, batch, store as kv};
use super::sandbox::State;
use crate::store::state::{
    ABSENT, MAX_KEYS_PAGE, add_to_counter, encode_counter, validate_key, validate_value,
};
use crate::store::{self, StateOp, StateWrite, Store};

/// An open bucket, as the guest holds it.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// A key as a compare-and-swap read it: its version then, and the value the guest saw.
#[derive(Debug)]
pub struct Cas {
    bucket: String,
    key: String,
    version: u64,
    current: Option<Vec<u8>>,
}

/// What the invocation did to one key so far.
#[derive(Debug, Clone)]
enum Change {
    Set(Vec<u8>),
    Delete,
    /// Increments not yet folded into a value: `delta` is applied to the committed value at
    /// commit; `base` is the committed counter as the first increment read it, which later
    /// increments and reads add to instead of reading it again.
    Add {
        base: i64,
        delta: i64,
    },
}

#[derive(Debug)]
struct Pending {
    change: Change,
    /// The version a compare-and-swap read, checked at commit.
    expect: Option<u64>,
}

/// One invocation's key-value state: what it may open, and what it wrote.
pub(super) struct Kv {
    allowed: HashSet<String>,
    store: Option<Store>,
    pending: BTreeMap<(String, String), Pending>,
    bytes: usize,
    max_keys: usize,
    max_bytes: usize,
}

type KvResult<T> = wasmtime::Result<Result<T, kv::Error>>;

fn other(error: impl std::fmt::Display) -> kv::Error {
    kv::Error::Other(error.to_string())
}

/// `base + delta`, or the error an overflowing increment gets.
fn add(base: i64, delta: i64) -> Result<i64, kv::Error> {
    base.checked_add(delta)
        .ok_or_else(|| other(format!("{base} + {delta} overflows a 64-bit integer")))
}

fn from_store(error: store::Error) -> kv::Error {
    match error {
        store::Error::BucketNotFound(_) => kv::Error::NoSuchStore,
        other => kv::Error::Other(other.to_string()),
    }
}

impl Kv {
    /// The state of an invocation that may open `allowed`, reading committed state through
    /// `store` (none: every bucket is empty), writing at most `max_keys` keys and `max_bytes`
    /// bytes of keys and values.
    pub(super) fn new(
        allowed: HashSet<String>,
        store: Option<Store>,
        max_keys: usize,
        max_bytes: usize,
    ) -> Kv {
        Kv {
            allowed,
            store,
            pending: BTreeMap::new(),
            bytes: 0,
            max_keys,
            max_bytes,
        }
    }

    /// The writes to commit with the batch's ack, one per key, in key order.
    pub(super) fn take_writes(&mut self) -> Vec<StateWrite> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((bucket, key), pending)| StateWrite {
                bucket,
                key,
                op: match pending.change {
                    Change::Set(value) => StateOp::Set(value),
                    Change::Delete => StateOp::Delete,
                    Change::Add { delta, .. } => StateOp::Increment(delta),
                },
                expect: pending.expect,
            })
            .collect()
    }

    async fn open(&self, name: &str) -> Result<(), kv::Error> {
        if !self.allowed.contains(name) {
            return Err(kv::Error::AccessDenied);
        }
        match &self.store {
            Some(store) => store.get_bucket(name).await.map(drop).map_err(from_store),
            None => Ok(()),
        }
    }

    /// The committed value and version of a key (version [`ABSENT`] when it has none).
    async fn committed(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, u64), kv::Error> {
        validate_key(key).map_err(other)?;
        let Some(store) = &self.store else {
            return Ok((None, ABSENT));
        };
        match store.kv_get(bucket, key).await.map_err(from_store)? {
            Some(entry) => Ok((Some(entry.value), entry.version)),
            None => Ok((None, ABSENT)),
        }
    }

    /// A key's value as this invocation sees it: its own write, else what is committed.
    async fn read(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, kv::Error> {
        let slot = (bucket.to_owned(), key.to_owned());
        match self.pending.get(&slot).map(|p| &p.change) {
            Some(Change::Set(value)) => Ok(Some(value.clone())),
            Some(Change::Delete) => Ok(None),
            Some(Change::Add { base, delta }) => Ok(Some(encode_counter(add(*base, *delta)?))),
            None => Ok(self.committed(bucket, key).await?.0),
        }
    }

    /// Buffers `change` of a key, within the invocation's limits.
    fn write(
        &mut self,
        bucket: &str,
        key: &str,
        change: Change,
        expect: Option<u64>,
    ) -> Result<(), kv::Error> {
        validate_key(key).map_err(other)?;
        let size = key.len()
            + match &change {
                Change::Set(value) => {
                    validate_value(key, value).map_err(other)?;
                    value.len()
                }
                Change::Delete | Change::Add { .. } => 8,
            };
        let slot = (bucket.to_owned(), key.to_owned());
        if !self.pending.contains_key(&slot) && self.pending.len() >= self.max_keys {
            return Err(other(format!(
                "state limit reached: at most {} keys written per invocation (the function's \
                 `max_sends`)",
                self.max_keys
            )));
        }
        if self.bytes + size > self.max_bytes {
            return Err(other(format!(
                "state limit reached: at most {} bytes of keys and values written per \
                 invocation (`max_send_bytes`; {} already used, this write is {size})",
                self.max_bytes, self.bytes
            )));
        }
        self.bytes += size;
        let pending = self.pending.entry(slot).or_insert(Pending {
            change: Change::Delete,
            expect: None,
        });
        pending.change = change;
        // The first version read is the one the commit checks.
        pending.expect = pending.expect.or(expect);
        Ok(())
    }

    /// Adds `delta` to a key's counter; returns the counter as this invocation now sees it.
    async fn increment(&mut self, bucket: &str, key: &str, delta: i64) -> Result<i64, kv::Error> {
        let slot = (bucket.to_owned(), key.to_owned());
        let (change, sum) = match self.pending.get(&slot).map(|p| &p.change) {
            // After a set or a delete of its own, the invocation knows the whole value.
            Some(Change::Set(value)) => {
                let sum = add_to_counter(Some(value), delta).map_err(other)?;
                (Change::Set(encode_counter(sum)), sum)
            }
            Some(Change::Delete) => (Change::Set(encode_counter(delta)), delta),
            Some(&Change::Add {
                base,
                delta: before,
            }) => {
                let total = before
                    .checked_add(delta)
                    .ok_or_else(|| other("increment overflows"))?;
                (Change::Add { base, delta: total }, add(base, total)?)
            }
            None => {
                let (value, _) = self.committed(bucket, key).await?;
                let base = add_to_counter(value.as_deref(), 0).map_err(other)?;
                (Change::Add { base, delta }, add(base, delta)?)
            }
        };
        self.write(bucket, key, change, None)?;
        Ok(sum)
    }

    /// A page of keys: committed ones (less those this invocation deleted) and those it wrote,
    /// in byte order.
    async fn list(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<kv::KeyResponse, kv::Error> {
        let page = match &self.store {
            Some(store) => store
                .kv_keys(bucket, "", cursor.as_deref(), MAX_KEYS_PAGE)
                .await
                .map_err(from_store)?,
            None => store::KeyPage::default(),
        };
        let after = |key: &str| cursor.as_deref().is_none_or(|c| key > c);
        let within = |key: &str| page.cursor.as_deref().is_none_or(|last| key <= last);
        let mut keys: Vec<String> = page
            .keys
            .into_iter()
            .filter(|key| {
                !matches!(
                    self.pending
                        .get(&(bucket.to_owned(), key.clone()))
                        .map(|p| &p.change),
                    Some(Change::Delete)
                )
            })
            .collect();
        for ((b, key), pending) in &self.pending {
            if b == bucket
                && !matches!(pending.change, Change::Delete)
                && after(key)
                && within(key)
                && !keys.contains(key)
            {
                keys.push(key.clone());
            }
        }
        keys.sort_unstable();
        Ok(kv::KeyResponse {
            keys,
            cursor: page.cursor,
        })
    }
}

impl State {
    fn bucket_name(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }
}

impl kv::Host for State {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<Bucket>> {
        if let Err(error) = self.kv.open(&identifier).await {
            return Ok(Err(error));
        }
        Ok(Ok(self.table.push(Bucket { name: identifier })?))
    }
}

impl kv::HostBucket for State {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.read(&name, &key).await)
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write(&name, &key, Change::Set(value), None))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write(&name, &key, Change::Delete, None))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<bool> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.read(&name, &key).await.map(|v| v.is_some()))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> KvResult<kv::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.list(&name, cursor).await)
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for State {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> KvResult<i64> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.increment(&name, &key, delta).await)
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        // Checked now too, so a handler that can try again learns of the conflict at once;
        // the commit checks it once more.
        let (current, version) = match self.kv.committed(&cas.bucket, &cas.key).await {
            Ok(read) => read,
            Err(error) => return Ok(Err(atomics::CasError::StoreError(error))),
        };
        if version != cas.version {
            let fresh = self.table.push(Cas {
                version,
                current,
                ..cas
            })?;
            return Ok(Err(atomics::CasError::CasFailed(fresh)));
        }
        let written = self
            .kv
            .write(&cas.bucket, &cas.key, Change::Set(value), Some(cas.version));
        Ok(written.map_err(atomics::CasError::StoreError))
    }
}

impl atomics::HostCas for State {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Resource<Cas>> {
        let name = self.bucket_name(&bucket)?;
        let version = match self.kv.committed(&name, &key).await {
            Ok((_, version)) => version,
            Err(error) => return Ok(Err(error)),
        };
        let current = match self.kv.read(&name, &key).await {
            Ok(current) => current,
            Err(error) => return Ok(Err(error)),
        };
        Ok(Ok(self.table.push(Cas {
            bucket: name,
            key,
            version,
            current,
        })?))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> KvResult<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for State {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> KvResult<Vec<Option<(String, Vec<u8>)>>> {
        let name = self.bucket_name(&bucket)?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            match self.kv.read(&name, &key).await {
                Ok(value) => values.push(value.map(|v| (key, v))),
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(values))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        for (key, value) in key_values {
            if let Err(error) = self.kv.write(&name, &key, Change::Set(value), None) {
                return Ok(Err(error));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        for key in keys {
            if let Err(error) = self.kv.write(&name, &key, Change::Delete, None) {
                return Ok(Err(error));
            }
        }
        Ok(Ok(()))
    }
}
