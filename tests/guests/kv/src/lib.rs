//! A `sluice:queue@0.4.0` handler that runs the `wasi:keyvalue` calls each message's body lists,
//! through the raw imports (no SDK), to test the host's key-value state. One call per line,
//! words separated by spaces:
//!
//! ```text
//! open counts             get B K        set B K V       delete B K     exists B K
//! list B [CURSOR]         inc B K DELTA  cas B K         swap B K V
//! get-many B K...         set-many B K=V...              delete-many B K...
//! cas-inc B K
//! ```
//!
//! `cas-inc` adds 1 to the decimal counter at `K` by compare-and-swap alone (read, add, swap;
//! read again while the swap says the key changed), the read-modify-write a handler without
//! `increment` would write.
//!
//! Each call is printed as `<line> => <result>`: `ok`, a value (as text, `none` when absent), a
//! sum, `true`/`false`, `keys a,b cursor none`, or the error (`access-denied`, `no-such-store`,
//! `other: ...`, `cas-failed: <fresh value>`). A bucket is used by name once opened. A message
//! with the attribute `end: err` makes the handler return `err` after running every message,
//! `end: trap` makes it trap, `end: strict` return `err` if any call failed; otherwise the batch
//! is acknowledged.

wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

use std::collections::HashMap;

use wasi::keyvalue::store::{self, Bucket};
use wasi::keyvalue::{atomics, batch};

struct Kv;

fn error(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no-such-store".into(),
        store::Error::AccessDenied => "access-denied".into(),
        store::Error::Other(message) => format!("other: {message}"),
    }
}

fn text(value: Option<Vec<u8>>) -> String {
    value.map_or("none".into(), |v| String::from_utf8_lossy(&v).into_owned())
}

#[derive(Default)]
struct Session {
    buckets: HashMap<String, Bucket>,
    reads: HashMap<(String, String), atomics::Cas>,
}

impl Session {
    fn bucket(&self, name: &str) -> Result<&Bucket, String> {
        self.buckets
            .get(name)
            .ok_or_else(|| format!("bucket {name} is not open"))
    }

    fn run(&mut self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split(' ').collect();
        let arg = |i: usize| {
            words
                .get(i)
                .copied()
                .ok_or(format!("`{line}`: too few words"))
        };
        match words[0] {
            "open" => {
                let bucket = store::open(arg(1)?).map_err(error)?;
                self.buckets.insert(arg(1)?.to_owned(), bucket);
                Ok("ok".into())
            }
            "get" => Ok(text(self.bucket(arg(1)?)?.get(arg(2)?).map_err(error)?)),
            "set" => {
                let bucket = self.bucket(arg(1)?)?;
                bucket.set(arg(2)?, arg(3)?.as_bytes()).map_err(error)?;
                Ok("ok".into())
            }
            "delete" => {
                self.bucket(arg(1)?)?.delete(arg(2)?).map_err(error)?;
                Ok("ok".into())
            }
            "exists" => Ok(self
                .bucket(arg(1)?)?
                .exists(arg(2)?)
                .map_err(error)?
                .to_string()),
            "list" => {
                let page = self
                    .bucket(arg(1)?)?
                    .list_keys(words.get(2).copied())
                    .map_err(error)?;
                Ok(format!(
                    "keys {} cursor {}",
                    page.keys.join(","),
                    page.cursor.as_deref().unwrap_or("none")
                ))
            }
            "inc" => {
                let delta: i64 = arg(3)?.parse().map_err(|e| format!("delta: {e}"))?;
                let sum =
                    atomics::increment(self.bucket(arg(1)?)?, arg(2)?, delta).map_err(error)?;
                Ok(sum.to_string())
            }
            "cas" => {
                let read = atomics::Cas::new(self.bucket(arg(1)?)?, arg(2)?).map_err(error)?;
                let current = text(read.current().map_err(error)?);
                self.reads
                    .insert((arg(1)?.to_owned(), arg(2)?.to_owned()), read);
                Ok(current)
            }
            "swap" => {
                let slot = (arg(1)?.to_owned(), arg(2)?.to_owned());
                let read = self.reads.remove(&slot).ok_or("no cas read of that key")?;
                match atomics::swap(read, arg(3)?.as_bytes()) {
                    Ok(()) => Ok("ok".into()),
                    Err(atomics::CasError::CasFailed(fresh)) => {
                        let current = text(fresh.current().map_err(error)?);
                        self.reads.insert(slot, fresh);
                        Err(format!("cas-failed: {current}"))
                    }
                    Err(atomics::CasError::StoreError(e)) => Err(error(e)),
                }
            }
            "get-many" => {
                let keys = words[2..].iter().map(|k| k.to_string()).collect::<Vec<_>>();
                let values = batch::get_many(self.bucket(arg(1)?)?, &keys).map_err(error)?;
                Ok(values
                    .into_iter()
                    .map(|v| v.map_or("none".into(), |(k, v)| format!("{k}={}", text(Some(v)))))
                    .collect::<Vec<_>>()
                    .join(","))
            }
            "set-many" => {
                let pairs = words[2..]
                    .iter()
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_string(), v.as_bytes().to_vec())
                    })
                    .collect::<Vec<_>>();
                batch::set_many(self.bucket(arg(1)?)?, &pairs).map_err(error)?;
                Ok("ok".into())
            }
            "delete-many" => {
                let keys = words[2..].iter().map(|k| k.to_string()).collect::<Vec<_>>();
                batch::delete_many(self.bucket(arg(1)?)?, &keys).map_err(error)?;
                Ok("ok".into())
            }
            "cas-inc" => {
                let mut read = atomics::Cas::new(self.bucket(arg(1)?)?, arg(2)?).map_err(error)?;
                for _ in 0..1000 {
                    let n: i64 = match read.current().map_err(error)? {
                        None => 0,
                        Some(value) => String::from_utf8_lossy(&value)
                            .parse()
                            .map_err(|e| format!("not a counter: {e}"))?,
                    };
                    match atomics::swap(read, (n + 1).to_string().as_bytes()) {
                        Ok(()) => return Ok((n + 1).to_string()),
                        Err(atomics::CasError::CasFailed(fresh)) => read = fresh,
                        Err(atomics::CasError::StoreError(e)) => return Err(error(e)),
                    }
                }
                Err("the key changed under 1000 swaps".into())
            }
            other => Err(format!("unknown call `{other}`")),
        }
    }
}

impl Guest for Kv {
    fn handle(messages: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        let mut session = Session::default();
        let mut end = None;
        let mut failed = None;
        for message in &messages {
            let script = String::from_utf8_lossy(&message.body);
            for line in script.lines().filter(|l| !l.trim().is_empty()) {
                match session.run(line.trim()) {
                    Ok(result) => println!("{} => {result}", line.trim()),
                    Err(error) => {
                        println!("{} => {error}", line.trim());
                        failed = Some(format!("{}: {error}", line.trim()));
                    }
                }
            }
            for (name, value) in &message.attributes {
                if name == "end" {
                    end = Some(value.clone());
                }
            }
        }
        match end.as_deref() {
            Some("err") => Err("asked to fail".into()),
            Some("trap") => panic!("asked to trap"),
            Some("strict") if failed.is_some() => Err(failed.unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }
}

export!(Kv);
