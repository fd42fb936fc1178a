//! The host's long-running tasks (its listeners, the series sampler, the schedule runner, the
//! fan-out catch-up, the token watcher): all owned by one set, each named, and joined with a
//! deadline at shutdown. A task that fails, panics or ends before shutdown stops the whole host
//! with an error that says which task and what to do, instead of vanishing.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::Error;

/// The host's tasks, and the token that tells them to stop.
pub struct Tasks {
    set: JoinSet<Result<(), Error>>,
    names: HashMap<Id, &'static str>,
    shutdown: CancellationToken,
}

impl Tasks {
    pub fn new(shutdown: CancellationToken) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
            shutdown,
        }
    }

    /// Runs `task`, which only ends with the shutdown token, or with an error for the host.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), Error>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits until `signal` completes, the shutdown token is cancelled, or a task fails or
    /// ends; then cancels the token and joins every task for up to `deadline`, aborting those
    /// still running. Answers the first failure.
    pub async fn run(
        mut self,
        signal: impl Future<Output = ()>,
        deadline: Duration,
    ) -> Result<(), Error> {
        tokio::pin!(signal);
        let mut outcome = Ok(());
        while outcome.is_ok() {
            tokio::select! {
                () = &mut signal => break,
                () = self.shutdown.cancelled() => break,
                Some(joined) = self.set.join_next_with_id() => outcome = self.outcome(joined),
                else => break,
            }
        }
        self.shutdown.cancel();
        let joined = tokio::time::timeout(deadline, async {
            while let Some(joined) = self.set.join_next_with_id().await {
                if let Err(err) = self.outcome(joined) {
                    if outcome.is_ok() {
                        outcome = Err(err);
                    } else {
                        tracing::error!(%err, "during shutdown");
                    }
                }
            }
        })
        .await;
        if joined.is_err() {
            let mut running: Vec<&str> = self.names.values().copied().collect();
            running.sort_unstable();
            tracing::warn!(
                ?running,
                "tasks still running {}s after shutdown began; stopping them",
                deadline.as_secs()
            );
            self.set.shutdown().await;
        }
        outcome
    }

    /// What one joined task means for the host.
    fn outcome(&mut self, joined: Result<(Id, Result<(), Error>), JoinError>) -> Result<(), Error> {
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(err) => err.id(),
        };
        let task = self.names.remove(&id).unwrap_or("a host task");
        match joined {
            Ok((_, Ok(()))) if self.shutdown.is_cancelled() => Ok(()),
            Ok((_, Ok(()))) => Err(Error::TaskEnded { task }),
            Ok((_, Err(err))) => Err(err),
            Err(err) if err.is_panic() => {
                let panic = err.into_panic();
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                Err(Error::TaskPanicked { task, reason })
            }
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_millis(300);

    async fn until_shutdown(shutdown: CancellationToken) -> Result<(), Error> {
        shutdown.cancelled().await;
        Ok(())
    }

    #[tokio::test]
    async fn the_signal_stops_every_task_and_the_host_stops_cleanly() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        tasks.spawn("one", until_shutdown(shutdown.clone()));
        tasks.spawn("two", until_shutdown(shutdown.clone()));
        tasks
            .run(std::future::ready(()), DEADLINE)
            .await
            .expect("a clean stop");
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_its_error_is_the_hosts() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        tasks.spawn("steady", until_shutdown(shutdown.clone()));
        tasks.spawn("the SQS endpoint", async {
            Err(Error::Listener {
                listener: "the SQS endpoint",
                addr: "127.0.0.1:9324".parse().unwrap(),
                reason: std::io::Error::from_raw_os_error(libc::EBADF),
            })
        });
        let err = tasks
            .run(std::future::pending(), DEADLINE)
            .await
            .expect_err("the failure stops the host");
        let message = err.to_string();
        assert!(
            message.contains("the SQS endpoint on 127.0.0.1:9324") && !message.contains('\n'),
            "{message}"
        );
        assert!(shutdown.is_cancelled(), "the other tasks are told to stop");
    }

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_stops_the_host_naming_it() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        tasks.spawn("the schedule runner", async { panic!("boom") });
        let err = tasks
            .run(std::future::pending(), DEADLINE)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::TaskPanicked { task: "the schedule runner", reason } if reason == "boom"),
            "{err}"
        );

        let mut tasks = Tasks::new(CancellationToken::new());
        tasks.spawn("the series sampler", async { Ok(()) });
        let err = tasks
            .run(std::future::pending(), DEADLINE)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TaskEnded {
                    task: "the series sampler"
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_task_that_ignores_shutdown_is_stopped_at_the_deadline() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        tasks.spawn("stubborn", std::future::pending());
        tasks.spawn("polite", until_shutdown(shutdown.clone()));
        let started = tokio::time::Instant::now();
        tasks
            .run(std::future::ready(()), DEADLINE)
            .await
            .expect("stopping a stubborn task is not a failure");
        let waited = started.elapsed();
        assert!(
            waited >= DEADLINE && waited < DEADLINE * 10,
            "stopped at the deadline: {waited:?}"
        );
    }
}
