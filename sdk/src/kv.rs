//! Key-value state: buckets of keys and byte values over the WIT import `wasi:keyvalue`, with
//! [`open`] (or [`Bucket::open`]) and a [`Bucket`]'s `get`, `set`, `delete`, `exists`,
//! `list_keys`, `increment`, the typed [`Bucket::get_json`] / [`Bucket::set_json`], and
//! compare-and-swap ([`Bucket::cas`], [`Bucket::update`]).
//!
//! # What a handler may rely on
//!
//! - **Writes commit with the ack.** Everything a handler writes is buffered by the host and
//!   committed in the same transaction that settles its batch, only if the handler returns
//!   `Ok` (even when some messages are retried or dead-lettered). `Err`, a panic, a timeout or
//!   a crash of the host discard every write. A retried batch therefore never counts twice.
//! - **Reads see the handler's own writes first**, then what is committed.
//! - **Increments never lose an update**: [`Bucket::increment`] adds its delta to whatever is
//!   committed when the batch commits, however many other batches increment the key meanwhile.
//!   Counters are stored as ASCII decimal (`"42"`), so an operator reads the number.
//! - **Compare-and-swap is checked twice**: [`Cas::swap`] fails at once with
//!   [`CasError::Changed`] if the key changed since [`Bucket::cas`] read it, and if it changes
//!   between the swap and the commit, nothing of the batch commits and the host retries the
//!   batch with the reason `state conflict`.
//! - A function opens only the buckets its version lists (`sluice deploy --kv BUCKET`, upload
//!   query `kv_bucket`, manifest `kv_buckets`); any other fails with [`Error::AccessDenied`].
//!   Buckets are created by an operator (`PUT /v1/kv/{bucket}`, with an optional `ttl_ms` after
//!   which a key expires since its last write).
//! - Limits: keys are 1 to [`MAX_KEY_BYTES`] bytes, values at most [`MAX_VALUE_BYTES`]; the keys
//!   a handler writes count toward its function's `max_sends`, their bytes toward
//!   `max_send_bytes`.
//!
//! On native targets buckets live in the [`testing`](crate::testing) harness's memory, with the
//! same commit-on-ack rule.
//!
//! ```
//! use sluice_sdk::{kv, testing::{self, Harness}, Batch, Error, Outcome};
//!
//! fn handle(batch: Batch) -> Result<Outcome, Error> {
//!     let counts = kv::open("counts")?;
//!     for msg in &batch {
//!         counts.increment(&format!("count:{}", msg.body_str()?), 1)?;
//!     }
//!     Ok(Outcome::ack_all())
//! }
//!
//! let harness = Harness::new().bucket("counts");
//! harness.run(handle, [testing::message("acme"), testing::message("acme")]);
//! assert_eq!(harness.get("counts", "count:acme").as_deref(), Some(&b"2"[..]));
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::buckets as backend;
#[cfg(target_arch = "wasm32")]
use crate::wit::kv as backend;

/// The longest key, in bytes (keys are at least 1 byte).
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// How many times [`Bucket::update`] reads and swaps again when the key changed meanwhile.
pub const UPDATE_ATTEMPTS: usize = 10;

/// Why a key-value operation failed. `?` turns it into a [`crate::Error`], which fails (and
/// retries) the batch.
///
/// ```
/// let error = sluice_sdk::kv::Error::AccessDenied { bucket: "secrets".into() };
/// assert!(error.to_string().contains("--kv secrets"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No bucket of that name exists on the host.
    NoSuchBucket {
        /// The bucket asked for.
        bucket: String,
    },
    /// The function's version does not list the bucket.
    AccessDenied {
        /// The bucket asked for.
        bucket: String,
    },
    /// Anything else: an invalid key or value, a limit reached, a value that is not the
    /// counter or JSON expected, the store failing.
    Other {
        /// The bucket the operation was on.
        bucket: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn other(bucket: &str, message: impl fmt::Display) -> Error {
        Error::Other {
            bucket: bucket.to_owned(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchBucket { bucket } => write!(
                f,
                "bucket `{bucket}` does not exist; create it with `PUT /v1/kv/{bucket}`"
            ),
            Error::AccessDenied { bucket } => write!(
                f,
                "bucket `{bucket}` is not listed for this function; deploy it with \
                 `--kv {bucket}` (upload query `kv_bucket={bucket}`, manifest `kv_buckets`)"
            ),
            Error::Other { bucket, message } => write!(f, "bucket `{bucket}`: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// Opens the bucket called `name`; the same as [`Bucket::open`].
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// let counts = sluice_sdk::kv::open("counts")?;
/// assert_eq!(counts.name(), "counts");
/// # Ok(())
/// # }
/// ```
pub fn open(name: &str) -> Result<Bucket, Error> {
    Bucket::open(name)
}

/// An open bucket: a named collection of keys and byte values. See the [module](self) for
/// when its writes commit.
pub struct Bucket {
    name: String,
    handle: backend::Bucket,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish()
    }
}

/// One page of [`Bucket::list_keys`].
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// let page = sluice_sdk::kv::open("empty")?.list_keys(None)?;
/// assert!(page.keys.is_empty() && page.cursor.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of the page, in byte order.
    pub keys: Vec<String>,
    /// Where the next page starts (pass it to `list_keys`); `None` on the last page.
    pub cursor: Option<String>,
}

impl Bucket {
    /// Opens the bucket called `name`. Fails with [`Error::AccessDenied`] when the function's
    /// version does not list it and [`Error::NoSuchBucket`] when it does not exist.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let seen = sluice_sdk::kv::Bucket::open("seen")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(name: &str) -> Result<Bucket, Error> {
        Ok(Bucket {
            name: name.to_owned(),
            handle: backend::open(name)?,
        })
    }

    /// The bucket's name.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// assert_eq!(sluice_sdk::kv::open("seen")?.name(), "seen");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, `None` when it has none.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let bucket = sluice_sdk::kv::open("prices")?;
    /// bucket.set("book", "12.50")?;
    /// assert_eq!(bucket.get("book")?.as_deref(), Some(&b"12.50"[..]));
    /// assert_eq!(bucket.get("album")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        check_key(&self.name, key)?;
        backend::get(&self.handle, &self.name, key)
    }

    /// The value of `key` parsed as JSON, `None` when it has none; an [`Error::Other`] when it is
    /// not the JSON of a `T`.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Session { user: String, pages: u32 }
    ///
    /// let sessions = sluice_sdk::kv::open("sessions")?;
    /// sessions.set_json("s-1", &Session { user: "ada".into(), pages: 3 })?;
    /// let session: Option<Session> = sessions.get_json("s-1")?;
    /// assert_eq!(session.unwrap().pages, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)?
            .map(|value| parse_json(&self.name, key, &value))
            .transpose()
    }

    /// Sets `key` to `value` (a `&str`, `String`, `&[u8]` or `Vec<u8>`), committed with the
    /// batch's ack.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// sluice_sdk::kv::open("seen")?.set("seen:msg-1", "")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        let value = value.as_ref();
        check_key(&self.name, key)?;
        check_value(&self.name, key, value)?;
        backend::set(&self.handle, &self.name, key, value)
    }

    /// Sets `key` to `value` serialized as JSON.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let last = sluice_sdk::kv::open("last-price")?;
    /// last.set_json("book", &serde_json::json!({"price": 12.5}))?;
    /// assert_eq!(last.get("book")?.unwrap(), br#"{"price":12.5}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let value = serde_json::to_vec(value).map_err(|e| {
            Error::other(
                &self.name,
                format!("cannot serialize the value of `{key}`: {e}"),
            )
        })?;
        self.set(key, value)
    }

    /// Deletes `key`; nothing happens when it has no value.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let carts = sluice_sdk::kv::open("carts")?;
    /// carts.set("ada", "3 books")?;
    /// carts.delete("ada")?;
    /// assert!(!carts.exists("ada")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(&self.name, key)?;
        backend::delete(&self.handle, &self.name, key)
    }

    /// Whether `key` has a value.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let seen = sluice_sdk::kv::open("seen")?;
    /// assert!(!seen.exists("seen:msg-1")?);
    /// seen.set("seen:msg-1", "")?;
    /// assert!(seen.exists("seen:msg-1")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        check_key(&self.name, key)?;
        backend::exists(&self.handle, &self.name, key)
    }

    /// A page of the bucket's keys, in byte order: the first page with `None`, the next with
    /// the previous page's `cursor`. Keys the handler wrote are listed, keys it deleted are not.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let bucket = sluice_sdk::kv::open("listing")?;
    /// bucket.set("b", "2")?;
    /// bucket.set("a", "1")?;
    /// let mut keys = Vec::new();
    /// let mut cursor = None;
    /// loop {
    ///     let page = bucket.list_keys(cursor.as_deref())?;
    ///     keys.extend(page.keys);
    ///     match page.cursor {
    ///         Some(next) => cursor = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// assert_eq!(keys, ["a", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_keys(&self, cursor: Option<&str>) -> Result<KeyPage, Error> {
        backend::list_keys(&self.handle, &self.name, cursor)
    }

    /// Adds `delta` (negative to subtract) to the counter at `key`, a missing key counting as
    /// 0, and returns the counter as this handler now sees it. The delta is applied to the
    /// committed value when the batch commits, so concurrent increments never lose an update.
    /// Fails when the key holds something other than a decimal integer.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let counts = sluice_sdk::kv::open("visits")?;
    /// assert_eq!(counts.increment("count:acme", 1)?, 1);
    /// assert_eq!(counts.increment("count:acme", 2)?, 3);
    /// assert_eq!(counts.get("count:acme")?.unwrap(), b"3");
    /// # Ok(())
    /// # }
    /// ```
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        check_key(&self.name, key)?;
        backend::increment(&self.handle, &self.name, key, delta)
    }

    /// Reads `key` for a compare-and-swap: [`Cas::swap`] then sets it only if it has not
    /// changed since.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let stock = sluice_sdk::kv::open("stock")?;
    /// let read = stock.cas("book")?;
    /// assert_eq!(read.current(), None);
    /// read.swap("7")?;
    /// assert_eq!(stock.get("book")?.unwrap(), b"7");
    /// # Ok(())
    /// # }
    /// ```
    pub fn cas(&self, key: &str) -> Result<Cas, Error> {
        check_key(&self.name, key)?;
        let (handle, current) = backend::cas(&self.handle, &self.name, key)?;
        Ok(Cas {
            bucket: self.name.clone(),
            key: key.to_owned(),
            current,
            handle,
        })
    }

    /// Sets `key` to what `change` makes of its current value (`None`: no value), with
    /// compare-and-swap: when another batch changed the key in between, it reads the key again
    /// and calls `change` again, up to [`UPDATE_ATTEMPTS`] times. Returns the value set. A
    /// change that lands after the swap, before the commit, retries the whole batch.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let names = sluice_sdk::kv::open("names")?;
    /// let append = |current: Option<&[u8]>| {
    ///     let mut list = current.unwrap_or_default().to_vec();
    ///     list.extend_from_slice(b"ada;");
    ///     list
    /// };
    /// names.update("team", append)?;
    /// assert_eq!(names.update("team", append)?, b"ada;ada;");
    /// # Ok(())
    /// # }
    /// ```
    pub fn update(
        &self,
        key: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let mut read = self.cas(key)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let value = change(read.current());
            match read.swap(value.clone()) {
                Ok(()) => return Ok(value),
                Err(CasError::Changed(again)) => read = again,
                Err(CasError::Failed(error)) => return Err(error),
            }
        }
        Err(Error::other(
            &self.name,
            format!(
                "key `{key}` changed under every one of {UPDATE_ATTEMPTS} compare-and-swaps; \
                 the batch is retried"
            ),
        ))
    }
}

/// A key as [`Bucket::cas`] read it, to be set only if it has not changed since.
pub struct Cas {
    bucket: String,
    key: String,
    current: Option<Vec<u8>>,
    handle: backend::Cas,
}

impl fmt::Debug for Cas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cas")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("current", &self.current)
            .finish()
    }
}

impl Cas {
    /// The key read.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// assert_eq!(sluice_sdk::kv::open("stock")?.cas("book")?.key(), "book");
    /// # Ok(())
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value read, `None` when the key had none.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let stock = sluice_sdk::kv::open("stock")?;
    /// stock.set("pen", "3")?;
    /// assert_eq!(stock.cas("pen")?.current(), Some(&b"3"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    /// The value read, parsed as JSON.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let stock = sluice_sdk::kv::open("stock")?;
    /// stock.set_json("pen", &3)?;
    /// assert_eq!(stock.cas("pen")?.current_json::<u32>()?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn current_json<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.current
            .as_deref()
            .map(|value| parse_json(&self.bucket, &self.key, value))
            .transpose()
    }

    /// Sets the key to `value` if it has not changed since it was read. When it has,
    /// [`CasError::Changed`] carries a fresh read to try again with.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// use sluice_sdk::kv::CasError;
    /// let stock = sluice_sdk::kv::open("stock")?;
    /// let read = stock.cas("mug")?;
    /// let left: u32 = read.current_json()?.unwrap_or(10);
    /// match read.swap(serde_json::to_vec(&(left - 1))?) {
    ///     Ok(()) => {}
    ///     Err(CasError::Changed(_fresh)) => { /* read again, decide again */ }
    ///     Err(CasError::Failed(error)) => return Err(error.into()),
    /// }
    /// assert_eq!(stock.get_json::<u32>("mug")?, Some(9));
    /// # Ok(())
    /// # }
    /// ```
    pub fn swap(self, value: impl AsRef<[u8]>) -> Result<(), CasError> {
        let value = value.as_ref();
        check_value(&self.bucket, &self.key, value).map_err(CasError::Failed)?;
        backend::swap(self.handle, &self.bucket, &self.key, value).map_err(|e| match e {
            backend::Swap::Changed(handle, current) => CasError::Changed(Cas {
                handle,
                current,
                ..self
            }),
            backend::Swap::Failed(error) => CasError::Failed(error),
        })
    }
}

/// Why [`Cas::swap`] did not set the key. `?` turns it into a [`crate::Error`], which retries
/// the batch.
///
/// ```
/// use sluice_sdk::kv::{CasError, Error};
/// let failed = CasError::Failed(Error::Other { bucket: "b".into(), message: "too big".into() });
/// assert_eq!(failed.to_string(), "bucket `b`: too big");
/// ```
#[derive(Debug)]
pub enum CasError {
    /// The key changed since it was read; this is a fresh read of it.
    Changed(Cas),
    /// The swap itself failed.
    Failed(Error),
}

impl fmt::Display for CasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CasError::Changed(cas) => write!(
                f,
                "bucket `{}`: key `{}` changed since it was read; read it again",
                cas.bucket, cas.key
            ),
            CasError::Failed(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for CasError {}

/// The host's checks of a key, made before anything is buffered.
fn check_key(bucket: &str, key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::other(bucket, "a key cannot be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::other(
            bucket,
            format!(
                "key of {} bytes exceeds the limit of {MAX_KEY_BYTES} bytes",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// The host's check of a value.
fn check_value(bucket: &str, key: &str, value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::other(
            bucket,
            format!(
                "value of {} bytes for key `{key}` exceeds the limit of {MAX_VALUE_BYTES} bytes",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn parse_json<T: DeserializeOwned>(bucket: &str, key: &str, value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value).map_err(|e| {
        Error::other(
            bucket,
            format!("the value of `{key}` is not the JSON expected: {e}"),
        )
    })
}

/// A counter as the host stores it: ASCII decimal.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn add_to_counter(
    bucket: &str,
    key: &str,
    value: Option<&[u8]>,
    delta: i64,
) -> Result<i64, Error> {
    let current = match value {
        None => 0,
        Some(value) => std::str::from_utf8(value)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                Error::other(
                    bucket,
                    format!("cannot increment `{key}`: its value is not a decimal integer"),
                )
            })?,
    };
    current.checked_add(delta).ok_or_else(|| {
        Error::other(
            bucket,
            format!("cannot increment `{key}`: {current} + {delta} overflows a 64-bit integer"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_are_checked_before_the_host_sees_them() {
        let bucket = open("checks").unwrap();
        assert!(
            bucket
                .set("", "x")
                .unwrap_err()
                .to_string()
                .contains("cannot be empty")
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(
            bucket
                .get(&long)
                .unwrap_err()
                .to_string()
                .contains("1025 bytes")
        );
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(
            bucket
                .set("k", &big)
                .unwrap_err()
                .to_string()
                .contains("exceeds the limit")
        );
        bucket.set("text", "not a number").unwrap();
        assert_eq!(
            bucket.increment("text", 1).unwrap_err().to_string(),
            "bucket `checks`: cannot increment `text`: its value is not a decimal integer"
        );
        bucket.set("max", i64::MAX.to_string()).unwrap();
        assert!(
            bucket
                .increment("max", 1)
                .unwrap_err()
                .to_string()
                .contains("overflows")
        );
    }

    #[test]
    fn json_that_does_not_fit_says_which_key() {
        let bucket = open("json").unwrap();
        bucket.set("n", "\"text\"").unwrap();
        let error = bucket.get_json::<u32>("n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("bucket `json`: the value of `n` is not the JSON expected")
        );
    }
}
