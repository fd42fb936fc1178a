//! `sluice serve`: opens the store, starts the executor and the dispatchers, and serves the API
//! (and the SQS endpoint) until the shutdown signal or a failing task; then stops leasing,
//! joins its tasks, lets in-flight batches settle, and exits.

pub mod http;
mod tasks;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, BodyGuard, Routes};
use crate::auth::Authorizer;
use crate::config::{Config, ConnectionLimits};
use crate::dispatch::Dispatcher;
use crate::executor::{Executor, ExecutorConfig};
use crate::functions::{self, Functions};
use crate::series::Series;
use crate::store::{self, Store, StoreOptions};
use tasks::Tasks;

/// How long shutdown waits for in-flight invocations before leaving them to lease expiry.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long shutdown waits for the host's tasks: longer than the listeners take to drain.
const TASKS_GRACE: Duration = Duration::from_secs(http::DRAIN.as_secs() + 5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("starting the WebAssembly engine: {0}")]
    Executor(#[from] crate::executor::Error),
    #[error(transparent)]
    Functions(#[from] functions::Error),
    #[error(
        "cannot use the data directory {}: {reason}; {hint}",
        path.display()
    )]
    DataDir {
        path: std::path::PathBuf,
        reason: String,
        hint: &'static str,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error("metrics recorder: {0}")]
    Metrics(String),
    #[error(
        "{listener} on {addr} cannot accept connections any more ({reason}), so the host \
         stopped; start it again, and if this recurs check what closes or changes its socket"
    )]
    Listener {
        listener: &'static str,
        addr: std::net::SocketAddr,
        reason: std::io::Error,
    },
    #[error(
        "{task} panicked ({reason}), so the host stopped; start it again, and please report \
         this bug with the log above"
    )]
    TaskPanicked { task: &'static str, reason: String },
    #[error(
        "{task} ended before shutdown, so the host stopped; start it again, and please report \
         this bug with the log above"
    )]
    TaskEnded { task: &'static str },
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> Result<PrometheusHandle, Error> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::Metrics(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Everything the server runs on, opened from a data directory.
pub struct Host {
    pub state: AppState,
    pub shutdown: CancellationToken,
    /// Where the SQS-compatible endpoint is served, if it is ([`Host::with_sqs`]).
    sqs: Option<TcpListener>,
}

impl Host {
    /// Opens the store and the engine; dispatchers start when it serves ([`Host::serve`]).
    pub async fn open(config: &Config) -> Result<Host, Error> {
        check_data_dir(&config.data_dir)?;
        let store = Store::open_at(
            &config.store_location(),
            StoreOptions {
                max_batch_wait: Duration::ZERO,
                log_max_age: config.invocations.max_age,
            },
            Arc::new(store::SystemClock),
        )
        .await
        .map_err(|err| match err {
            // SQLite in the data directory: say which directory and what to do.
            store::Error::Unavailable(reason) if config.database.is_none() => Error::DataDir {
                path: config.data_dir.clone(),
                reason: format!("opening the database: {reason}"),
                hint: DATA_DIR_HINT,
            },
            other => Error::Store(other),
        })?;
        let executor = Executor::new(ExecutorConfig {
            cache_dir: config.data_dir.join("compiled"),
            max_memory_bytes: functions::MAX_MEMORY_MB * 1024 * 1024,
            max_instances: 256,
            keep_resident_bytes: crate::executor::KEEP_RESIDENT_BYTES,
            compiler: config.compiler.clone(),
        })?;
        let functions = Functions::new(store.clone(), executor, config.invocations);
        let shutdown = CancellationToken::new();
        let dispatcher = Dispatcher::new(store.clone(), functions.clone(), shutdown.clone());
        let (auth, created) =
            Authorizer::load(store.clone(), config.admin_token.as_deref()).await?;
        if let Some(token) = created {
            // Shown once: only its hash is stored.
            println!(
                "Created the first admin token (shown only now; keep it safe):\n\n    {}\n",
                token.token
            );
            tracing::warn!(id = %token.id, "created the first admin token; it was printed to standard output");
        }
        Ok(Host {
            state: AppState {
                store,
                functions,
                dispatcher,
                auth,
                limits: Arc::new(config.limits.clone()),
                metrics: metrics_handle()?,
                shutdown: shutdown.clone(),
                series: Series::new(config.series_interval),
            },
            shutdown,
            sqs: None,
        })
    }

    /// Serves the SQS-compatible endpoint on `listener` too, beside the API.
    pub fn with_sqs(mut self, listener: TcpListener) -> Host {
        self.sqs = Some(listener);
        self
    }

    /// Starts a dispatcher for every stored trigger and follows catalog changes (made through
    /// this host or, with a shared store, any other); the token watcher, the queue series'
    /// sampler, the schedule runner and the fan-out catch-up join `tasks`.
    async fn start(&self, tasks: &mut Tasks) -> Result<(), Error> {
        self.state.dispatcher.watch_catalog();
        let (store, shutdown) = (&self.state.store, &self.shutdown);
        let watch = self.state.auth.watch(shutdown.clone());
        tasks.spawn("the token watcher", until_shutdown(watch));
        let series = self
            .state
            .series
            .clone()
            .run(store.clone(), shutdown.clone());
        tasks.spawn("the queue series sampler", until_shutdown(series));
        let schedules = crate::schedule::run(store.clone(), shutdown.clone());
        tasks.spawn("the schedule runner", until_shutdown(schedules));
        let fanout = crate::fanout::run(store.clone(), shutdown.clone());
        tasks.spawn("the topic fan-out", until_shutdown(fanout));
        Ok(self.state.dispatcher.start_all().await?)
    }
}

/// A task that has nothing to report: it ends only when the host shuts down.
async fn until_shutdown(task: impl Future<Output = ()>) -> Result<(), Error> {
    task.await;
    Ok(())
}

/// Serves one listener; a listener that cannot accept any more is an error for the host.
async fn listen(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    bodies: BodyGuard,
    gate: Arc<http::Gate>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    http::serve(listener, app, bodies, gate, shutdown)
        .await
        .map_err(|reason| Error::Listener {
            listener: what,
            addr,
            reason,
        })
}

const DATA_DIR_HINT: &str = "make sure it is a directory that this user can create, read and \
    write (check its owner, mode and mount), or choose another with `--data-dir` \
    (`SLUICE_DATA_DIR`)";

/// Makes sure the data directory exists and is writable before anything opens files in it, so
/// a bad one is reported with its path and what to do, not as SQLite's "unable to open
/// database file".
fn check_data_dir(path: &std::path::Path) -> Result<(), Error> {
    let fail = |reason: String| Error::DataDir {
        path: path.to_owned(),
        reason,
        hint: DATA_DIR_HINT,
    };
    std::fs::create_dir_all(path).map_err(|e| fail(format!("cannot create it: {e}")))?;
    if !path.is_dir() {
        return Err(fail("it is not a directory".into()));
    }
    tempfile::tempfile_in(path).map_err(|e| fail(format!("cannot write in it: {e}")))?;
    Ok(())
}

/// Runs the server on `config.listen` until `signal` completes.
pub async fn run(
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // Before anything opens files: the connection cap is sized from this limit.
    http::raise_open_file_limit();
    let host = Host::open(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    tracing::info!(data_dir = %config.data_dir.display(), store = host.state.store.kind(), "sluice opened its store");
    let host = match config.sqs_listen {
        Some(addr) => {
            host.with_sqs(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: addr.to_string(),
                        source,
                    })?,
            )
        }
        None => host,
    };
    host.serve(listener, config.connections.clone(), signal)
        .await
}

impl Host {
    /// Serves the API on a bound `listener` until `signal` completes (or the host's shutdown
    /// token is cancelled, or one of its tasks fails): starts the dispatchers and the host's
    /// tasks, serves, then joins the tasks, stops leasing and lets in-flight batches settle.
    /// `sluice serve` and `sluice bench` start hosts through here.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        connections: ConnectionLimits,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let open_files = http::raise_open_file_limit();
        let addr = listener.local_addr().map_err(Error::Serve)?;
        let mut tasks = Tasks::new(self.shutdown.clone());
        if let Err(err) = self.start(&mut tasks).await {
            self.shutdown.cancel();
            return Err(err);
        }
        tracing::info!(%addr, "sluice listening");

        // Every listener shares the connection cap and the body budget.
        let gate = http::Gate::new(connections, open_files);
        let bodies = BodyGuard::new(self.state.limits.clone());
        if let Some(listener) = self.sqs.take() {
            let sqs_addr = listener.local_addr().map_err(Error::Serve)?;
            // Logged after the API's address, which is what scripts read first.
            tracing::info!(sqs_endpoint = %format!("http://{sqs_addr}"), "SQS endpoint listening");
            let app = crate::sqs::router(self.state.clone(), sqs_addr);
            let sqs = listen(
                "the SQS endpoint",
                listener,
                app,
                bodies.for_routes(Routes::Sqs),
                gate.clone(),
                self.shutdown.clone(),
            );
            tasks.spawn("the SQS endpoint", sqs);
        }
        let app = api::router(self.state.clone());
        let api = listen(
            "the API listener",
            listener,
            app,
            bodies,
            gate,
            self.shutdown.clone(),
        );
        tasks.spawn("the API listener", api);
        let outcome = tasks.run(signal, TASKS_GRACE).await;
        self.state.dispatcher.shutdown(SHUTDOWN_GRACE).await;
        tracing::info!("sluice stopped");
        outcome
    }
}
