//! `sluice bench`: starts a host in this process on a temporary data directory, drives it over
//! real HTTP with real components, and reports enqueue, drain, steady-state latency, chain,
//! the SQS endpoint's receive + delete-batch drain, per-batch overhead, the store's physical
//! floor, isolation from hostile functions, costs at queue depth (peek, stats, another queue's
//! enqueues during a purge), restart/idle figures of a separate `sluice serve` process, and
//! the same costs for Python and JavaScript no-op handlers beside Rust's (the `polyglot`
//! phase). Each phase is a module of `phases`, named by [`Phase`]; a phase that needs
//! another's figure reads it from the report.
//!
//! Latency is timed in-process: `starts` subscribes to the host's public
//! [`HANDLER_START`](sluice::dispatch::HANDLER_START) trace event, which a trigger emits with a
//! batch's message ids right before it goes to the executor. A message's commit happens after
//! its request is sent and before its 2xx is received, so `start − 2xx` and `start − send`
//! bracket commit → handler start from below and above; both are reported.

mod bare;
mod child;
mod components;
mod floor;
mod host;
mod load;
mod memory;
mod phases;
mod report;
mod starts;
mod wasm;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;

pub use phases::Phase;
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
    #[arg(long, default_value = "5s", value_parser = sluice::cli::parse_duration)]
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
    /// and drops them after; adds the `hosts` phase (the plain queue's floor, the contract's
    /// statements alone, and one and three hosts).
    #[arg(long, env = "SLUICE_BENCH_DATABASE_URL")]
    pub database: Option<String>,
    /// The PostgreSQL server the `e2e` phase's plain peer runs on (one table, a producer and
    /// `SKIP LOCKED` consumers on a scratch database), e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres; without it the phase compares with
    /// in-process SQLite only.
    #[arg(long, env = "SLUICE_BENCH_PEER_DATABASE_URL")]
    pub peer_database: Option<String>,
    /// Run only these phases (comma-separated); without it, every phase but polyglot, which
    /// runs only when named here (it needs the Python and JavaScript toolchains scripts/test
    /// installs, and takes minutes). `hosts` runs only with --database.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Phase>,
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

    /// Whether `phase` runs: named by `--only`, or every phase that runs by default without it.
    fn wants(&self, phase: Phase) -> bool {
        match self.only.is_empty() {
            true => phase.by_default(),
            false => self.only.contains(&phase),
        }
    }
}

/// Runs the benchmark: the phases on the in-process host, then those after it has stopped;
/// prints the table and writes the JSON file.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let args = args.effective();
    let began = Instant::now();
    starts::subscribe();
    let components = components::load(args.components.as_deref(), args.wasm_target_dir.as_deref())?;
    let tmp = match &args.data_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("sluice-bench")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("sluice-bench").tempdir()?,
    };
    let run = phases::Run {
        args: &args,
        components: &components,
        dir: tmp.path(),
    };
    let mut report = report::Report::default();
    let on_host: Vec<Phase> = Phase::ON_HOST
        .into_iter()
        .filter(|p| args.wants(*p))
        .collect();
    if !on_host.is_empty() {
        let scratch = match &args.database {
            Some(url) => Some(sluice_test_support::testdb::TestDatabase::create_on(url).await),
            None => None,
        };
        let bench = host::Bench::start(
            tmp.path().join("host"),
            &args,
            scratch.as_ref().map(|db| db.url.clone()),
        )
        .await?;
        for phase in on_host {
            phase.on_host(&bench, &run, &mut report).await?;
        }
        bench.stop().await;
    }
    for phase in Phase::AFTER_HOST {
        if args.wants(phase) {
            phase.after_host(&run, &mut report).await?;
        }
    }

    report.print();
    if let Some(path) = &args.json {
        let config = json!({
            "messages": args.messages,
            "body_bytes": args.body_bytes,
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "batch_clients": args.batch_clients,
            "sqs_clients": args.sqs_clients,
            "single_clients": args.single_clients,
            "rate": args.rate,
            "duration_s": args.duration.as_secs_f64(),
            "functions": args.functions,
            "polyglot_functions": args.polyglot_functions,
            "durability": args.durability,
            "quick": args.quick,
        });
        let json = report.json(config, began.elapsed());
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
