//! `sluice bench`: starts a host in this process on a temporary data directory, drives it over
//! real HTTP with real components, and reports enqueue, drain, steady-state latency, chain,
//! the SQS endpoint's receive + delete-batch drain, per-batch overhead, the store's physical floor, isolation from hostile functions, costs at
//! queue depth (peek, stats, another queue's enqueues during a purge), restart/idle figures
//! of a separate `sluice serve` process, and the same costs for Python and JavaScript no-op
//! handlers beside Rust's (the `polyglot` phase).
//!
//! Latency is timed in-process: the bench embeds a sequence number in each body and installs
//! [`crate::dispatch::observe_handler_starts`], which sees each batch right before it goes to
//! the executor. A message's commit happens after its request is sent and before its 2xx is
//! received, so `start − 2xx` and `start − send` bracket commit → handler start from below and
//! above; both are reported.

mod components;
mod hosts;
mod phases;
mod report;
mod sqs;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

pub use phases::run;

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Backlog size for the drain, chain and hostile phases, and messages sent by the batch
    /// enqueue phase.
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Body size of every message, in bytes (at least 16: the body starts with a sequence number).
    #[arg(long, default_value_t = 256)]
    pub body_bytes: usize,
    /// Concurrent SQS consumers of the sqs phase (each: ReceiveMessage 10, DeleteMessageBatch).
    #[arg(long, default_value_t = 32)]
    pub sqs_clients: usize,
    /// Trigger batch size, enqueue batch size and floor batch size.
    #[arg(long, default_value_t = 100)]
    pub batch_size: u32,
    /// The trigger's max_concurrency.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
    /// Concurrent clients of the batch enqueue (and of the saturating producers).
    #[arg(long, default_value_t = 4)]
    pub batch_clients: usize,
    /// Concurrent clients of the single-message enqueue.
    #[arg(long, default_value_t = 64)]
    pub single_clients: usize,
    /// Offered load of the steady phase, messages per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Length of each timed phase (single enqueue, steady, saturation).
    #[arg(long, default_value = "5s", value_parser = crate::cli::parse_duration)]
    pub duration: Duration,
    /// Depth of the queue the depth phase peeks, counts and purges.
    #[arg(long, default_value_t = 5_000_000)]
    pub depth_messages: u64,
    /// Messages the backlog phase enqueues into a `sluice serve` and then drains, sampling its
    /// resident memory throughout.
    #[arg(long, default_value_t = 5_000_000)]
    pub backlog_messages: u64,
    /// Functions deployed for the restart and idle-memory phase.
    #[arg(long, default_value_t = 100)]
    pub functions: u32,
    /// Python and JavaScript functions (half each, every one a distinct component) deployed and
    /// exercised for the polyglot phase's resident-memory figure.
    #[arg(long, default_value_t = 20)]
    pub polyglot_functions: u32,
    /// Durability of every commit. Only `full` exists: WAL with an fsync before each 2xx; the
    /// host has no weaker mode, and the benchmark will not invent one.
    #[arg(long, default_value = "full", value_parser = ["full"])]
    pub durability: String,
    /// A small run (well under a minute) that proves the benchmark works; asserts no speed.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Directory with sum.wasm, reply.wasm, webhook.wasm and guest_{ok,trap,loop,oom,recurse}.wasm; built from the
    /// repository with cargo when absent.
    #[arg(long)]
    pub components: Option<PathBuf>,
    /// Target directory for building the components (default: target/bench-wasm in the repo).
    #[arg(long)]
    pub wasm_target_dir: Option<PathBuf>,
    /// Put the temporary data directories under this directory (the disk being measured).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run the host's phases on PostgreSQL: each run creates scratch databases on the server of
    /// this URL (postgres://USER@HOST:PORT/DB names a database to connect to while doing so)
    /// and drops them after; adds the `SKIP LOCKED` floor and the several-hosts phase.
    #[arg(long, env = "SLUICE_BENCH_DATABASE_URL")]
    pub database: Option<String>,
    /// The PostgreSQL server the `e2e` phase's peer runs on (a plain `SKIP LOCKED` producer and
    /// consumer on a scratch database), e.g. postgres://postgres@127.0.0.1:5432/postgres;
    /// without it the phase compares with in-process SQLite only.
    #[arg(long, env = "SLUICE_BENCH_PEER_DATABASE_URL")]
    pub peer_database: Option<String>,
    /// Run only these phases (comma-separated): enqueue, topics (fan-out to 10 queues),
    /// drain, pull, order (priorities and groups), reply (request-reply round trips), sqs,
    /// steady, chain, e2e (one producer and a trigger at once, beside plain peers), latency
    /// (paced single enqueues, and batches of 10 at half the e2e figure), outbound (the webhook
    /// example at batch 1 and concurrency 256 against a local upstream answering in 50 ms),
    /// overhead,
    /// floor, hostile, depth, backlog (resident memory while a large backlog fills and
    /// drains), restart, hosts (with --database); and polyglot, which runs only when named
    /// here (it needs the Python and JavaScript toolchains scripts/test installs, and takes
    /// minutes).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

impl BenchArgs {
    /// Applies `--quick`: small counts and short phases.
    fn effective(&self) -> BenchArgs {
        let mut args = self.clone();
        args.body_bytes = args.body_bytes.max(16);
        if args.quick {
            args.messages = args.messages.min(5_000);
            args.depth_messages = args.depth_messages.min(20_000);
            args.backlog_messages = args.backlog_messages.min(20_000);
            args.duration = args.duration.min(Duration::from_secs(1));
            args.functions = args.functions.min(10);
            args.polyglot_functions = args.polyglot_functions.min(2);
        }
        args
    }

    fn wants(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}
