//! Triggers: one dispatcher loop per function bound to a queue. This module starts, restarts
//! and stops those loops as triggers, functions and queues change, and drains them on shutdown.

pub(crate) mod decide;
mod trigger;
mod window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use decide::{backoff_delay_ms, settlement};

/// The target of the `TRACE` event a trigger emits right before it hands a batch to the
/// executor, with the fields `queue`, `messages` (how many) and `ids` (the batch's message ids,
/// comma-separated). A subscriber that enables it sees when each message reached its handler
/// (`RUST_LOG=sluice::dispatch::handler_start=trace` logs them; `sluice bench` times commit →
/// handler start with it). Disabled, as under `sluice serve`'s default filter, it costs the
/// cached check of a disabled event and formats nothing.
pub const HANDLER_START: &str = "sluice::dispatch::handler_start";

/// Emits the [`HANDLER_START`] event for `batch` of `queue`.
fn handler_starting(queue: &str, batch: &[crate::store::Message]) {
    tracing::trace!(
        target: HANDLER_START,
        queue,
        messages = batch.len(),
        ids = %Ids(batch),
        "handler starting"
    );
}

/// A batch's message ids, comma-separated; formatted only when a subscriber records them.
struct Ids<'a>(&'a [crate::store::Message]);

impl std::fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, message) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&message.id)?;
        }
        Ok(())
    }
}

use crate::functions::Functions;
use crate::store::{self, Store, TriggerRecord};
use trigger::Trigger;

/// A trigger's settings and what it is doing now.
#[derive(Debug, Clone)]
pub struct TriggerStatus {
    pub trigger: TriggerRecord,
    pub state: TriggerState,
    pub in_flight: usize,
    /// Why the trigger stopped, when it did.
    pub error: Option<String>,
}

/// Whether a trigger's loop is leasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerState {
    Running,
    Paused,
    /// Not running, with the reason in [`TriggerStatus::error`] (or being started).
    Stopped,
}

struct Running {
    cancel: CancellationToken,
    in_flight: Arc<AtomicUsize>,
    /// What the loop was started from; a refresh that finds the same leaves it running.
    started_from: (TriggerRecord, u32, store::QueueSettings),
}

/// Owns every trigger loop; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    functions: Functions,
    shutdown: CancellationToken,
    /// Every trigger loop and in-flight invocation, so shutdown can wait for them to settle.
    tracker: TaskTracker,
    running: Mutex<HashMap<String, Running>>,
    errors: Mutex<HashMap<String, String>>,
}

impl Dispatcher {
    pub fn new(store: Store, functions: Functions, shutdown: CancellationToken) -> Dispatcher {
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                functions,
                shutdown,
                tracker: TaskTracker::new(),
                running: Mutex::new(HashMap::new()),
                errors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts a loop for every stored trigger that is not paused.
    pub async fn start_all(&self) -> Result<(), store::Error> {
        for trigger in self.inner.store.list_triggers().await? {
            self.refresh(&trigger.function).await;
        }
        Ok(())
    }

    /// (Re)starts the loop of `function` from what is stored now: after its trigger, its active
    /// version or its queue's settings changed, on this host or another. A loop whose trigger,
    /// version and queue settings are unchanged keeps running. In-flight invocations of a
    /// replaced loop finish and settle on their own.
    pub async fn refresh(&self, function: &str) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let record = match self.inner.store.get_function(function).await {
            Ok(function) => function.trigger,
            Err(store::Error::FunctionNotFound(_)) => None,
            Err(err) => {
                self.set_error(function, format!("cannot read the trigger: {err}"));
                return;
            }
        };
        let Some(record) = record.filter(|r| !r.paused) else {
            self.stop(function);
            return;
        };
        let active = match self.inner.functions.active(function).await {
            Ok(active) => active,
            Err(err) => {
                self.stop(function);
                self.set_error(function, format!("cannot load the function: {err}"));
                return;
            }
        };
        let settings = match self.inner.store.queue_settings(&record.queue).await {
            Ok(settings) => settings,
            Err(err) => {
                self.stop(function);
                self.set_error(
                    function,
                    format!("cannot read queue `{}`: {err}", record.queue),
                );
                return;
            }
        };
        let started_from = (record.clone(), active.version, settings.clone());
        let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        if running
            .get(function)
            .is_some_and(|r| r.started_from == started_from && !r.cancel.is_cancelled())
        {
            return;
        }
        if let Some(old) = running.remove(function) {
            old.cancel.cancel();
        }
        self.inner
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(function);
        let cancel = self.inner.shutdown.child_token();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let trigger = Trigger {
            record,
            active,
            settings,
            store: self.inner.store.clone(),
            functions: self.inner.functions.clone(),
            in_flight: in_flight.clone(),
            cancel: cancel.clone(),
            tracker: self.inner.tracker.clone(),
            failures: std::sync::Mutex::new((0, None)),
        };
        self.inner.tracker.spawn(trigger.run());
        running.insert(
            function.to_owned(),
            Running {
                cancel,
                in_flight,
                started_from,
            },
        );
    }

    /// Follows catalog changes (this host's and, with a shared store, every other host's):
    /// the loops of changed functions and queues are refreshed, and after a gap (a lost
    /// database connection, or a subscriber that fell behind) every loop is.
    pub fn watch_catalog(&self) {
        let mut changes = self.inner.store.events().subscribe();
        let this = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tracker.spawn(async move {
            loop {
                let change = tokio::select! {
                    change = changes.recv() => change,
                    () = shutdown.cancelled() => return,
                };
                match change {
                    Ok(store::CatalogChange::Function(name)) => this.refresh(&name).await,
                    Ok(store::CatalogChange::Queue(name)) => this.refresh_queue(&name).await,
                    Ok(
                        store::CatalogChange::Tokens
                        | store::CatalogChange::Schedules
                        | store::CatalogChange::Topics,
                    ) => {}
                    Ok(store::CatalogChange::Everything)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        this.resync().await
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Refreshes every stored trigger and stops loops whose trigger is gone.
    async fn resync(&self) {
        let Ok(triggers) = self.inner.store.list_triggers().await else {
            return;
        };
        let running: Vec<String> = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in running {
            if !triggers.iter().any(|t| t.function == name) {
                self.stop(&name);
            }
        }
        for trigger in triggers {
            self.refresh(&trigger.function).await;
        }
    }

    /// Restarts every trigger consuming `queue` (its settings changed).
    pub async fn refresh_queue(&self, queue: &str) {
        let Ok(triggers) = self.inner.store.list_triggers().await else {
            return;
        };
        for trigger in triggers.into_iter().filter(|t| t.queue == queue) {
            self.refresh(&trigger.function).await;
        }
    }

    /// Stops the loop of `function`, if any.
    pub fn stop(&self, function: &str) {
        if let Some(running) = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(function)
        {
            running.cancel.cancel();
        }
    }

    /// The live state of `trigger`.
    pub fn status(&self, trigger: TriggerRecord) -> TriggerStatus {
        let running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        let error = self
            .inner
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&trigger.function)
            .cloned();
        let (state, in_flight) = match running.get(&trigger.function) {
            Some(r) => (TriggerState::Running, r.in_flight.load(Ordering::Relaxed)),
            None if trigger.paused => (TriggerState::Paused, 0),
            None => (TriggerState::Stopped, 0),
        };
        TriggerStatus {
            trigger,
            state,
            in_flight,
            error,
        }
    }

    /// Stops leasing and waits up to `deadline` for in-flight invocations to settle. Batches
    /// still running then are abandoned; their leases expire and they are delivered again.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let in_flight: usize = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| r.in_flight.load(Ordering::Relaxed))
            .sum();
        tracing::info!(in_flight, "waiting for in-flight invocations to settle");
        if tokio::time::timeout(deadline, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "in-flight invocations did not finish in time; their messages will be redelivered"
            );
        }
    }

    fn set_error(&self, function: &str, error: String) {
        tracing::error!(%function, %error, "trigger not started");
        self.inner
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(function.to_owned(), error);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// Collects the fields of every event, as `name=value` strings.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<Vec<String>>>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let mut fields = self.0.lock().unwrap();
            fields.push(format!("{}={value:?}", field.name()));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Fields {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            assert_eq!(event.metadata().target(), HANDLER_START);
            assert_eq!(*event.metadata().level(), tracing::Level::TRACE);
            event.record(&mut self.clone());
        }
    }

    #[test]
    fn a_handler_start_is_a_trace_event_with_the_queue_and_the_ids() {
        let fields = Fields::default();
        let subscriber = tracing_subscriber::registry().with(fields.clone());
        let message = |id: &str| crate::store::Message {
            id: id.to_owned(),
            queue: "orders".to_owned(),
            body: Vec::new(),
            attributes: Vec::new(),
            attempt: 1,
            enqueued_at_ms: 0,
            priority: crate::store::DEFAULT_PRIORITY,
            group: None,
            first_leased_at_ms: None,
        };
        tracing::subscriber::with_default(subscriber, || {
            handler_starting("orders", &[message("7"), message("9")]);
        });
        assert_eq!(
            *fields.0.lock().unwrap(),
            [
                "message=handler starting",
                // In this order: a subscriber reads the queue before it decides to keep the ids.
                "queue=\"orders\"",
                "messages=2",
                "ids=7,9",
            ]
        );
    }
}
