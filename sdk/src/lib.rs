//! Write Sluice queue handlers in plain Rust.
//!
//! A handler is a function from a [`Batch`] of messages to an [`Outcome`]; one
//! [`export_handler!`] line turns it into the `handle` export of a WebAssembly component that
//! the Sluice host calls once per batch, in a fresh instance.
//!
//! ```
//! use sluice_sdk::{Batch, Error, Outcome};
//!
//! #[derive(serde::Deserialize)]
//! struct Order {
//!     id: String,
//!     amount: f64,
//! }
//!
//! fn handle(batch: Batch) -> Result<Outcome, Error> {
//!     let mut outcome = Outcome::ack_all();
//!     for msg in &batch {
//!         match msg.json::<Order>() {
//!             Ok(order) if order.amount >= 100.0 => sluice_sdk::send_json("big-orders", &order.id)?,
//!             Ok(_) => {}
//!             Err(e) => {
//!                 outcome.dead_letter(msg, e);
//!             }
//!         }
//!     }
//!     Ok(outcome)
//! }
//!
//! sluice_sdk::export_handler!(handle);
//!
//! // The same handler, unit-tested natively:
//! use sluice_sdk::testing;
//! let report = testing::run(handle, [
//!     testing::message(r#"{"id": "o-1", "amount": 250.0}"#),
//!     testing::message("not json"),
//! ]);
//! assert_eq!(report.acked(), ["msg-1"]);
//! assert_eq!(report.sent()[0].queue, "big-orders");
//! ```
//!
//! # What the host does with the result
//!
//! - `Ok(outcome)`: every message not marked in the outcome is acknowledged; marked ones are
//!   retried (after the queue's backoff or a delay you choose) or dead-lettered with a reason.
//!   Everything sent with [`send`] / [`send_json`] / [`Outgoing`] and published with
//!   [`publish`] / [`publish_json`] / [`Publication`] is committed in the same transaction as
//!   the acknowledgement, and so is every write to a [`kv`] bucket; a [`reply`] is committed
//!   with the acknowledgement of the message it answers (a retried or dead-lettered message's
//!   reply is discarded).
//! - `Err(error)` or a panic: the whole batch is retried and everything sent, published,
//!   replied or written to a bucket is discarded.
//!
//! HTTP requests made through [`http`] are effects outside Sluice: they happen when they are
//! made, whatever the handler then returns, so a retried batch makes them again. Send the
//! message id as an idempotency key.
//!
//! # Layout
//!
//! - [`Message`], [`Batch`]: what comes in.
//! - [`Outcome`], [`Disposition`]: what goes back, per message.
//! - [`send`], [`send_json`], [`Outgoing`]: messages to other queues, through the host's outbox.
//! - [`publish`], [`publish_json`], [`Publication`]: messages to topics, through the outbox.
//! - [`reply`], [`reply_json`], [`Reply`]: answers to producers waiting on a message.
//! - [`http`]: outbound HTTP (`http::get`, `http::post`, `http::Request`) to the hosts the
//!   function's `allowed_outbound_hosts` lists, over `wasi:http/outgoing-handler`.
//! - [`kv`]: key-value state (`kv::open`, `get`, `set`, `increment`, `get_json`, `set_json`,
//!   compare-and-swap) in the buckets the function's `kv_buckets` lists, over `wasi:keyvalue`;
//!   committed with the batch's acknowledgement.
//! - [`Error`], [`Context`]: failing the whole batch, with `?`.
//! - [`export_handler!`]: the glue to the generated WIT bindings (hidden in `wit`, with the
//!   HTTP client's `wasi:http` side).
//! - `testing` (native targets only): run a handler in `cargo test`, sends, publications and
//!   replies recorded, HTTP requests answered by stubs and recorded, key-value buckets in
//!   memory, committed on `Ok` only.
//!
//! The SDK targets the WIT world `sluice:queue/handler@0.4.0`. A component imports only what it
//! uses: one that makes no HTTP request does not import `wasi:http`.
//!
//! # Building
//!
//! A handler crate is a `cdylib` built with `cargo build --release --target wasm32-wasip2`;
//! the output `.wasm` is a component ready to upload. On native targets the crate compiles too
//! (the export is generated only for `wasm32`), so its unit tests run with plain `cargo test`.

#![warn(missing_docs)]

mod error;
pub mod http;
pub mod kv;
mod message;
mod outbox;
mod outcome;
mod publish;
mod reply;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
#[doc(hidden)]
pub mod wit;

pub use error::{Context, Error};
pub use message::{Batch, Message};
pub use outbox::{DEFAULT_PRIORITY, MAX_GROUP_BYTES, MAX_PRIORITY, Outgoing, send, send_json};
pub use outcome::{Disposition, Failure, Outcome};
pub use publish::{Publication, publish, publish_json};
pub use reply::{Reply, reply, reply_json};

/// Exports `handler`, a `fn(Batch) -> Result<Outcome, Error>`, as the component's `handle`.
///
/// Invoke it once per crate, at the top level. On `wasm32` it generates the component export;
/// on other targets it only checks the handler's signature, so the crate's native tests build.
///
/// ```
/// use sluice_sdk::{Batch, Error, Outcome};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     for msg in &batch {
///         println!("{}: {} bytes", msg.id(), msg.body().len());
///     }
///     Ok(Outcome::ack_all())
/// }
///
/// sluice_sdk::export_handler!(handle);
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:path) => {
        // Checked on every target, so a handler with the wrong signature fails `cargo test` too.
        const _: fn($crate::Batch) -> ::core::result::Result<$crate::Outcome, $crate::Error> =
            $handler;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SluiceHandler;

            impl $crate::wit::Guest for SluiceHandler {
                fn handle(
                    batch: ::std::vec::Vec<$crate::wit::Message>,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::wit::ItemFailure>,
                    ::std::string::String,
                > {
                    $crate::wit::dispatch($handler, batch)
                }
            }

    $crate::wit::export!(SluiceHandler with_types_in $crate::wit);
        };
    };
}

/// Converts a delay to the whole milliseconds the WIT carries, saturating at `u32::MAX`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn duration_to_ms(delay: std::time::Duration) -> u32 {
    u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delays_saturate() {
        assert_eq!(duration_to_ms(Duration::from_micros(1500)), 1);
        assert_eq!(duration_to_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
