//! `sluice serve`: opens the store, starts the executor and the dispatchers, and serves the API
//! until the shutdown signal; then stops leasing, lets in-flight batches settle, and exits.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::Authorizer;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::executor::{Executor, ExecutorConfig};
use crate::functions::{self, Functions};
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
}

impl Host {
    /// Opens the store and the engine; dispatchers start with [`Host::start`].
    pub async fn open(config: &Config) -> Result<Host, Error> {
        let store = Store::open(
            &config.data_dir,
            StoreOptions {
                max_batch_wait: Duration::ZERO,
            },
        )?;
        let executor = Executor::new(ExecutorConfig {
            cache_dir: config.data_dir.join("compiled"),
            max_memory_bytes: functions::MAX_MEMORY_MB * 1024 * 1024,
            max_instances: 256,
        })?;
        let functions =
            Functions::new(store.clone(), executor, config.data_dir.join("components"))?;
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
            },
            shutdown,
        })
    }

    /// Starts a dispatcher for every stored trigger.
    pub async fn start(&self) -> Result<(), Error> {
        Ok(self.state.dispatcher.start_all().await?)
    }
}

/// Runs the server until `signal` completes.
pub async fn run(
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let host = Host::open(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    host.start().await?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "sluice listening");

    let shutdown = host.shutdown.clone();
    tokio::spawn(async move {
        signal.await;
        shutdown.cancel();
    });
    let app = api::router(host.state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(host.shutdown.clone().cancelled_owned())
        .await
        .map_err(Error::Serve)?;
    host.state.dispatcher.shutdown(SHUTDOWN_GRACE).await;
    tracing::info!("sluice stopped");
    Ok(())
}
