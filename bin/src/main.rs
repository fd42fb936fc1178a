//! The `sluice` binary: parses the command line, sets up logging, and runs the server, a
//! client subcommand or (with the default `bench` feature) the benchmark. Everything else lives
//! in the library (`host/`) and the `sluice-bench` crate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::cli::{self, Command};
use tracing_subscriber::EnvFilter;

/// jemalloc with its background threads gives freed memory back to the system within seconds,
/// even when the threads that freed it go quiet. With glibc's malloc, request bodies buffered
/// by many connections at once stayed resident after the connections closed (an arena per
/// thread, and a trim threshold that grows with the largest block freed).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The library's command line, and `sluice bench` beside it.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Durable queues that run WebAssembly components as consumers"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    #[command(flatten)]
    Host(Command),
    /// Benchmark this machine: a temporary host, real HTTP, real components.
    #[cfg(feature = "bench")]
    Bench(sluice_bench::BenchArgs),
}

/// Exit codes: 0 when the command did what it was asked, 1 when it failed (the reason is
/// printed as one line on standard error, never a backtrace, whatever `RUST_BACKTRACE` says),
/// 2 when the command line itself is wrong (clap's usage errors).
#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Commands::Host(command) => run(command).await,
        #[cfg(feature = "bench")]
        Commands::Bench(args) => sluice_bench::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` is the error and its causes on one line; `{:?}` (what returning the error
            // from `main` prints) would add a backtrace whenever RUST_BACKTRACE is set.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one of the library's commands.
async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            survive_file_size_limit();
            sluice::server::run(args.config(), shutdown_signal()).await?;
            Ok(())
        }
        Command::CompileComponent(args) => std::process::exit(
            sluice::executor::compile_child_main(&args.cache_dir, args.max_memory_bytes),
        ),
        command => cli::run_client(command).await,
    }
}

/// A write past the process's file size limit (RLIMIT_FSIZE: `ulimit -f`, systemd's
/// `LimitFSIZE`) raises SIGXFSZ, whose default action kills the process mid-transaction. With a
/// handler installed the write fails with EFBIG instead, which SQLite reports as an I/O error and
/// the API as 503 `storage_unavailable`, as for a full disk. PostgreSQL ignores it for the same
/// reason.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            Ok(mut signal) => {
                tokio::spawn(async move {
                    while signal.recv().await.is_some() {
                        tracing::warn!("a write exceeded the file size limit (SIGXFSZ)");
                    }
                });
            }
            Err(err) => tracing::error!(%err, "cannot handle SIGXFSZ"),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
