//! `sluice serve`: opens the store, starts the executor and the dispatchers, and serves the API
//! until the shutdown signal; then stops leasing, lets in-flight batches settle, and exits.

pub mod http;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::Authorizer;
use crate::config::{Config, ConnectionLimits};
use crate::dispatch::Dispatcher;
use crate::executor::{Executor, ExecutorConfig};
use crate::functions::{self, Functions};
use crate::series::Series;
use crate::store::{self, Store, StoreOptions};

/// How long shutdown waits for in-flight invocations before leaving them to lease expiry.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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

    /// Starts a dispatcher for every stored trigger, follows catalog changes (made through this
    /// host or, with a shared store, any other), and starts the queue series' sampler.
    async fn start(&self) -> Result<(), Error> {
        self.state.dispatcher.watch_catalog();
        self.state.auth.watch(self.shutdown.clone());
        tokio::spawn(
            self.state
                .series
                .clone()
                .run(self.state.store.clone(), self.shutdown.clone()),
        );
        tokio::spawn(crate::schedule::run(
            self.state.store.clone(),
            self.shutdown.clone(),
        ));
        tokio::spawn(crate::fanout::run(
            self.state.store.clone(),
            self.shutdown.clone(),
        ));
        Ok(self.state.dispatcher.start_all().await?)
    }
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
    /// token is cancelled): starts the dispatchers, serves, then stops leasing and lets
    /// in-flight batches settle. `sluice serve` and `sluice bench` start hosts through here.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        connections: ConnectionLimits,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let open_files = http::raise_open_file_limit();
        let addr = listener.local_addr().map_err(Error::Serve)?;
        self.start().await?;
        tracing::info!(%addr, "sluice listening");

        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            shutdown.cancel();
        });
        let sqs = match self.sqs.take() {
            Some(listener) => {
                let sqs_addr = listener.local_addr().map_err(Error::Serve)?;
                // Logged after the API's address, which is what scripts read first.
                tracing::info!(sqs_endpoint = %format!("http://{sqs_addr}"), "SQS endpoint listening");
                Some(tokio::spawn(http::serve(
                    listener,
                    crate::sqs::router(self.state.clone(), sqs_addr),
                    connections.clone(),
                    open_files,
                    self.shutdown.clone(),
                )))
            }
            None => None,
        };
        let app = api::router(self.state.clone());
        http::serve(
            listener,
            app,
            connections,
            open_files,
            self.shutdown.clone(),
        )
        .await;
        if let Some(sqs) = sqs {
            let _ = sqs.await;
        }
        self.state.dispatcher.shutdown(SHUTDOWN_GRACE).await;
        tracing::info!("sluice stopped");
        Ok(())
    }
}
