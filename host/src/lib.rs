//! Sluice: durable queues that run WebAssembly components as their consumers.
//!
//! # Layout
//!
//! Follow one message through the host:
//!
//! 1. [`api`] receives it over HTTP (`POST /v1/queues/{queue}/messages`) and hands it to
//! 2. [`store`], which commits it (SQLite with group commit and fsync, or PostgreSQL shared by
//!    several hosts) before the producer gets its 2xx, and wakes the queue's
//! 3. [`dispatch`]er, which leases a batch and asks the
//! 4. [`executor`] to run the queue's function (uploaded and versioned by [`functions`]) in a
//!    fresh sandboxed instance (a component built against `sluice:queue` 0.2.0 or 0.1.0), then
//! 5. settles the batch through [`store`] in one transaction: acknowledge, retry with backoff,
//!    dead-letter, and commit the handler's outbox sends, topic publishes and replies (a
//!    producer waiting with `Sluice-Reply-Timeout-Ms` wakes on that commit).
//!
//! Consumers outside WebAssembly take the same path without steps 3 and 4: [`pull`] leases
//! batches for them (the HTTP pull API), hands out receipts, and settles by receipt.
//!
//! Around that flow: [`auth`] decides who may call what (tokens and scopes), [`server`] wires
//! the parts together for `sluice serve` (its `http` module is the front door: connection cap,
//! read deadlines) and shuts them down in order, [`cli`] holds the
//! command line (the server and its client subcommands), and [`config`] the server
//! configuration and the `sluice.toml` manifest. [`series`] keeps the last
//! hour of each queue's stats for the web console, which [`console`] serves at `/ui`.
//! [`fanout`] moves topic subscriptions that are replaying history through it, and [`schedule`]
//! fires cron schedules; [`sqs`] is the SQS-compatible endpoint over the same store.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod executor;
pub mod fanout;
pub mod functions;
pub mod pull;
pub mod schedule;
pub mod series;
pub mod server;
pub mod sqs;
pub mod store;
