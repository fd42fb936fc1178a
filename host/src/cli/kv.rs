//! `sluice kv`: key-value buckets (create, list, show, delete) and their keys (get, set,
//! unset, keys), over the `/v1/kv` routes. An operator's write commits at once.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::segment;
use super::view::{self, Align, Table};
use super::{Remote, parse_duration, print_json};

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Create a bucket, or change its expiry.
    Create(CreateArgs),
    /// List buckets.
    List(RemoteArgs),
    /// Show a bucket.
    Show(BucketArgs),
    /// Delete a bucket and every key in it.
    Delete(BucketArgs),
    /// Print a key's value as it is (bytes to standard output).
    Get(KeyArgs),
    /// Set a key to VALUE, or to the contents of --file (`-`: standard input).
    Set(SetArgs),
    /// Delete a key.
    Unset(KeyArgs),
    /// List a bucket's keys in byte order, optionally only those starting with a prefix.
    Keys(KeysArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Letters, digits, `-` and `_`, up to 80.
    bucket: String,
    /// Keys expire this long after their last write (never when left out).
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// The bucket.
    bucket: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The bucket.
    bucket: String,
    /// The key (up to 1 KiB).
    key: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The bucket.
    bucket: String,
    /// The key (up to 1 KiB).
    key: String,
    /// The value (up to 1 MiB); or use --file.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    value: Option<String>,
    /// Read the value from this file (`-`: standard input), bytes as they are.
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The bucket.
    bucket: String,
    /// Only keys starting with this.
    #[arg(long)]
    prefix: Option<String>,
    /// At most this many keys (the API's pages are followed until then).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    remote: Remote,
}

/// The API's path of `bucket`, and of `key` in it.
fn bucket_path(bucket: &str) -> String {
    format!("/v1/kv/{}", segment(bucket))
}

fn key_path(bucket: &str, key: &str) -> String {
    format!("{}/keys/{}", bucket_path(bucket), segment(key))
}

pub async fn run(command: KvCommand) -> anyhow::Result<()> {
    match command {
        KvCommand::Create(args) => {
            let ttl_ms = args.ttl.map(|ttl| ttl.as_millis() as u64);
            let client = args.remote.client();
            let request = client
                .request(Method::PUT, &bucket_path(&args.bucket))
                .json(&json!({ "ttl_ms": ttl_ms }));
            let bucket = client.send(request).await?;
            if args.remote.json {
                print_json(&bucket);
            } else {
                print!("{}", show_bucket(&bucket));
            }
        }
        KvCommand::List(args) => {
            let list = args.remote.client().get("/v1/kv").await?;
            if args.remote.json {
                print_json(&list);
            } else {
                print!("{}", list_buckets(&list));
            }
        }
        KvCommand::Show(args) => {
            let bucket = args.remote.client().get(&bucket_path(&args.bucket)).await?;
            if args.remote.json {
                print_json(&bucket);
            } else {
                print!("{}", show_bucket(&bucket));
            }
        }
        KvCommand::Delete(args) => {
            args.remote
                .client()
                .delete(&bucket_path(&args.bucket))
                .await?;
            if args.remote.json {
                print_json(&json!({ "deleted": args.bucket }));
            } else {
                println!("deleted bucket {}", args.bucket);
            }
        }
        KvCommand::Get(args) => {
            let client = args.remote.client();
            let request = client.request(Method::GET, &key_path(&args.bucket, &args.key));
            let (_, value) = client.send_raw(request).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(&value)?;
            if !value.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&out) {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        KvCommand::Set(args) => {
            let value = match (&args.value, &args.file) {
                (Some(value), _) => value.clone().into_bytes(),
                (None, Some(path)) if path.as_os_str() == "-" => {
                    let mut value = Vec::new();
                    std::io::stdin().read_to_end(&mut value)?;
                    value
                }
                (None, Some(path)) => std::fs::read(path)
                    .with_context(|| format!("reading the value from {}", path.display()))?,
                (None, None) => unreachable!("clap requires VALUE or --file"),
            };
            let client = args.remote.client();
            let request = client
                .request(Method::PUT, &key_path(&args.bucket, &args.key))
                .body(value);
            let (headers, _) = client.send_raw(request).await?;
            let version = headers
                .get("sluice-kv-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            if args.remote.json {
                print_json(&json!({ "bucket": args.bucket, "key": args.key, "version": version }));
            } else {
                println!("set {} in {} (version {version})", args.key, args.bucket);
            }
        }
        KvCommand::Unset(args) => {
            args.remote
                .client()
                .delete(&key_path(&args.bucket, &args.key))
                .await?;
            if args.remote.json {
                print_json(&json!({ "deleted": args.key }));
            } else {
                println!("deleted {} from {}", args.key, args.bucket);
            }
        }
        KvCommand::Keys(args) => {
            let client = args.remote.client();
            let mut keys: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            while keys.len() < args.limit {
                let mut query = vec![("limit", (args.limit - keys.len()).min(1000).to_string())];
                if let Some(prefix) = &args.prefix {
                    query.push(("prefix", prefix.clone()));
                }
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.clone()));
                }
                let request = client
                    .request(Method::GET, &format!("{}/keys", bucket_path(&args.bucket)))
                    .query(&query);
                let page = client.send(request).await?;
                keys.extend(page["keys"].as_array().into_iter().flatten().cloned());
                cursor = page["cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            if args.remote.json {
                print_json(&json!({ "keys": keys, "cursor": cursor }));
            } else {
                for key in &keys {
                    println!("{}", view::text(key));
                }
                if cursor.is_some() {
                    eprintln!("(more keys; raise --limit to see them)");
                }
            }
        }
    }
    Ok(())
}

/// `sluice kv list`: every bucket with its expiry.
fn list_buckets(list: &Value) -> String {
    let mut table = Table::new(&[
        ("BUCKET", Align::Left),
        ("TTL", Align::Right),
        ("CREATED", Align::Left),
    ]);
    for bucket in list["buckets"].as_array().into_iter().flatten() {
        table.row(vec![
            view::text(&bucket["name"]),
            ttl(&bucket["ttl_ms"]),
            view::time_of(&bucket["created_at_ms"]),
        ]);
    }
    table.render()
}

fn show_bucket(bucket: &Value) -> String {
    view::pairs(&[
        ("bucket", view::text(&bucket["name"])),
        ("ttl", ttl(&bucket["ttl_ms"])),
        ("created", view::time_of(&bucket["created_at_ms"])),
    ])
}

/// A bucket's expiry for people: `1h`, or `never`.
fn ttl(value: &Value) -> String {
    value
        .as_u64()
        .map(view::millis)
        .unwrap_or_else(|| "never".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_buckets_are_one_path_segment_each_however_they_are_spelled() {
        assert_eq!(key_path("seen", "seen:42"), "/v1/kv/seen/keys/seen%3A42");
        assert_eq!(key_path("b", "a/b c"), "/v1/kv/b/keys/a%2Fb%20c");
    }

    #[test]
    fn a_bucket_without_expiry_says_never() {
        let shown = show_bucket(&json!({"name": "counts", "ttl_ms": null, "created_at_ms": 0}));
        assert!(shown.contains("never"), "{shown}");
        let list = list_buckets(&json!({"buckets": [{"name": "seen", "ttl_ms": 3_600_000}]}));
        assert!(list.contains("seen") && list.contains("1h"), "{list}");
    }
}
