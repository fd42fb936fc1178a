//! The SDK's key-value buckets on the generated `wasi:keyvalue` bindings: each call of
//! [`crate::kv`] becomes one import call, and the WASI errors become [`kv::Error`]s that name
//! the bucket.

use super::wasi::keyvalue::{atomics, store};
use crate::kv::{Error, KeyPage};

pub(crate) type Bucket = store::Bucket;
pub(crate) type Cas = atomics::Cas;

/// Why a swap did not happen.
pub(crate) enum Swap {
    Changed(Cas, Option<Vec<u8>>),
    Failed(Error),
}

fn error(bucket: &str, error: store::Error) -> Error {
    match error {
        store::Error::NoSuchStore => Error::NoSuchBucket {
            bucket: bucket.to_owned(),
        },
        store::Error::AccessDenied => Error::AccessDenied {
            bucket: bucket.to_owned(),
        },
        store::Error::Other(message) => Error::Other {
            bucket: bucket.to_owned(),
            message,
        },
    }
}

pub(crate) fn open(name: &str) -> Result<Bucket, Error> {
    store::open(name).map_err(|e| error(name, e))
}

pub(crate) fn get(handle: &Bucket, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
    handle.get(key).map_err(|e| error(bucket, e))
}

pub(crate) fn set(handle: &Bucket, bucket: &str, key: &str, value: &[u8]) -> Result<(), Error> {
    handle.set(key, value).map_err(|e| error(bucket, e))
}

pub(crate) fn delete(handle: &Bucket, bucket: &str, key: &str) -> Result<(), Error> {
    handle.delete(key).map_err(|e| error(bucket, e))
}

pub(crate) fn exists(handle: &Bucket, bucket: &str, key: &str) -> Result<bool, Error> {
    handle.exists(key).map_err(|e| error(bucket, e))
}

pub(crate) fn list_keys(
    handle: &Bucket,
    bucket: &str,
    cursor: Option<&str>,
) -> Result<KeyPage, Error> {
    let page = handle.list_keys(cursor).map_err(|e| error(bucket, e))?;
    Ok(KeyPage {
        keys: page.keys,
        cursor: page.cursor,
    })
}

pub(crate) fn increment(
    handle: &Bucket,
    bucket: &str,
    key: &str,
    delta: i64,
) -> Result<i64, Error> {
    atomics::increment(handle, key, delta).map_err(|e| error(bucket, e))
}

pub(crate) fn cas(
    handle: &Bucket,
    bucket: &str,
    key: &str,
) -> Result<(Cas, Option<Vec<u8>>), Error> {
    let cas = Cas::new(handle, key).map_err(|e| error(bucket, e))?;
    let current = cas.current().map_err(|e| error(bucket, e))?;
    Ok((cas, current))
}

pub(crate) fn swap(cas: Cas, bucket: &str, _key: &str, value: &[u8]) -> Result<(), Swap> {
    match atomics::swap(cas, value) {
        Ok(()) => Ok(()),
        Err(atomics::CasError::CasFailed(fresh)) => match fresh.current() {
            Ok(current) => Err(Swap::Changed(fresh, current)),
            Err(e) => Err(Swap::Failed(error(bucket, e))),
        },
        Err(atomics::CasError::StoreError(e)) => Err(Swap::Failed(error(bucket, e))),
    }
}
