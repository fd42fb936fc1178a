//! The benchmark's phases, one module each, named by [`Phase`]: `--only` takes these names
//! (clap rejects any other, listing the valid ones), and [`crate::run`] runs them in the order
//! of [`Phase::ON_HOST`] and [`Phase::AFTER_HOST`].

mod backlog;
mod chain;
mod depth;
mod drain;
mod e2e;
mod enqueue;
mod floor;
mod hostile;
mod hosts;
mod latency;
mod order;
mod outbound;
mod overhead;
mod polyglot;
mod pull;
mod reply;
mod restart;
pub(crate) mod sqs;
mod state;
mod steady;
mod topics;

use std::path::Path;

use clap::ValueEnum;

use crate::BenchArgs;
use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;

/// One phase of `sluice bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// HTTP batch and single-message enqueue.
    Enqueue,
    /// Publishing to a topic fanned out to 10 queues.
    Topics,
    /// A backlog drained through a trigger.
    Drain,
    /// HTTP pull consumers, and long polls.
    Pull,
    /// The drain with priorities, and with ordered groups.
    Order,
    /// Request-reply round trips.
    Reply,
    /// A backlog drained through the SQS endpoint.
    Sqs,
    /// Paced single enqueues with a trigger consuming, then saturation.
    Steady,
    /// A backlog through a chain of two functions.
    Chain,
    /// One producer and a trigger at once, beside plain peers.
    E2e,
    /// Paced single enqueues, and batches of 10 at half the e2e figure.
    Latency,
    /// The webhook example at batch 1 and concurrency 256 against a local upstream answering
    /// in 50 ms.
    Outbound,
    /// A backlog through examples/counter (key-value state with each ack) beside a no-op,
    /// and a set + get round trip through the HTTP API.
    State,
    /// A trigger beside functions that fail every batch.
    Hostile,
    /// Peek, stats and another queue's enqueues on a deep queue.
    Depth,
    /// A fresh instance + call per batch, beside bare wasmtime.
    Overhead,
    /// The SQLite store's physical floor.
    Floor,
    /// PostgreSQL's floor and one and three hosts on one database (with --database).
    Hosts,
    /// Resident memory while a large backlog fills and drains.
    Backlog,
    /// Restart to first invocation, and idle memory.
    Restart,
    /// Python and JavaScript no-ops beside Rust (only when named).
    Polyglot,
}

/// What every phase may use: the effective arguments, the components, and a temporary
/// directory of its own under `dir`.
pub(crate) struct Run<'a> {
    pub args: &'a BenchArgs,
    pub components: &'a Components,
    pub dir: &'a Path,
}

impl Phase {
    /// The phases on the in-process host, in the order they run.
    pub(crate) const ON_HOST: [Phase; 15] = [
        Phase::Enqueue,
        Phase::Topics,
        Phase::Drain,
        Phase::Pull,
        Phase::Order,
        Phase::Reply,
        Phase::Sqs,
        Phase::Steady,
        Phase::Chain,
        Phase::E2e,
        Phase::Latency,
        Phase::Outbound,
        Phase::State,
        Phase::Hostile,
        Phase::Depth,
    ];

    /// The phases once the in-process host has stopped, in the order they run: `latency` and
    /// `e2e` measure their floor and peers here, so that nothing else loads the machine.
    pub(crate) const AFTER_HOST: [Phase; 8] = [
        Phase::Overhead,
        Phase::Floor,
        Phase::Latency,
        Phase::E2e,
        Phase::Hosts,
        Phase::Backlog,
        Phase::Restart,
        Phase::Polyglot,
    ];

    /// Whether the phase runs without `--only`. Polyglot builds Python and JavaScript
    /// components with their own toolchains and compiles interpreter-sized components: minutes
    /// on a small machine.
    pub(crate) fn by_default(self) -> bool {
        self != Phase::Polyglot
    }

    /// The phase's part on the in-process host, if it has one.
    pub(crate) async fn on_host(
        self,
        host: &Bench,
        run: &Run<'_>,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let c = run.components;
        match self {
            Phase::Enqueue => enqueue::run(host, report).await,
            Phase::Topics => topics::run(host, report).await,
            Phase::Drain => drain::run(host, report, c).await,
            Phase::Pull => pull::run(host, report).await,
            Phase::Order => order::run(host, report, c).await,
            Phase::Reply => reply::run(host, report, c).await,
            Phase::Sqs => sqs::run(host, report).await,
            Phase::Steady => steady::run(host, report, c).await,
            Phase::Chain => chain::run(host, report, c).await,
            Phase::E2e => e2e::run(host, report, c).await,
            Phase::Latency => latency::run(host, report, c).await,
            Phase::Outbound => outbound::run(host, report, c).await,
            Phase::State => state::run(host, report, c).await,
            Phase::Hostile => hostile::run(host, report, c).await,
            Phase::Depth => depth::run(host, report).await,
            Phase::Overhead
            | Phase::Floor
            | Phase::Hosts
            | Phase::Backlog
            | Phase::Restart
            | Phase::Polyglot => Ok(()),
        }
    }

    /// The phase's part once the in-process host has stopped, if it has one.
    pub(crate) async fn after_host(self, run: &Run<'_>, report: &mut Report) -> anyhow::Result<()> {
        let dir = |name: &str| run.dir.join(name);
        match self {
            Phase::Overhead => {
                overhead::run(report, run.args, run.components, &dir("overhead")).await
            }
            Phase::Floor => floor::run(report, run.args, &dir("floor")).await,
            Phase::Latency => latency::floor(report, run.args, &dir("latency-floor")).await,
            Phase::E2e => e2e::peers(report, run.args, &dir("e2e-peer")).await,
            Phase::Hosts => match &run.args.database {
                Some(url) => hosts::run(report, run.args, run.components, url, &dir("hosts")).await,
                None => Ok(()),
            },
            Phase::Backlog => backlog::run(report, run.args, run.components, &dir("backlog")).await,
            Phase::Restart => restart::run(report, run.args, run.components, &dir("restart")).await,
            Phase::Polyglot => {
                polyglot::run(report, run.args, run.components, &dir("polyglot")).await
            }
            Phase::Enqueue
            | Phase::Topics
            | Phase::Drain
            | Phase::Pull
            | Phase::Order
            | Phase::Reply
            | Phase::Sqs
            | Phase::Steady
            | Phase::Chain
            | Phase::Outbound
            | Phase::State
            | Phase::Hostile
            | Phase::Depth => Ok(()),
        }
    }
}
