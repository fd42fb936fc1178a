//! One trigger's loop: wait for work (woken by enqueues, timers for delayed messages and
//! expiring leases, and freed concurrency slots), fill a batch within its window, lease it, run
//! the function, and settle the batch from the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::decide;
use super::window::{self, Window};
use crate::executor::Outcome;
use crate::functions::{Active, Functions, InvocationRecord, failure_name, outbox_check};
use crate::store::{Lease, LeaseRequest, QueueSettings, Settlement, Store, TriggerRecord};

/// After a storage error, wait this long before trying again (the store may be out of space).
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// Extra lease time beyond the function's time limit, so a batch that runs to its limit is
/// still held when it settles.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// Everything one trigger's loop needs.
pub struct Trigger {
    pub record: TriggerRecord,
    pub active: Active,
    pub settings: QueueSettings,
    pub store: Store,
    pub functions: Functions,
    pub in_flight: Arc<AtomicUsize>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    /// Failed invocations in a row, and when leasing may resume after them.
    pub failures: std::sync::Mutex<(u32, Option<Instant>)>,
}

impl Trigger {
    /// How long each lease lasts: the queue's visibility timeout, but never less than the
    /// function's time limit plus a margin.
    fn lease_for(&self) -> Duration {
        Duration::from_millis(self.settings.visibility_timeout_ms)
            .max(self.active.limits.timeout + LEASE_MARGIN)
    }

    pub async fn run(self) {
        let this = Arc::new(self);
        let queue = this.record.queue.clone();
        let notify = this.store.notifier(&queue);
        let slots = Arc::new(Semaphore::new(this.record.max_concurrency.max(1) as usize));
        let batch_size = this.record.batch_size.max(1);
        let max_wait = Duration::from_millis(this.record.max_wait_ms);
        let mut opened: Option<Instant> = None;
        tracing::info!(function = %this.record.function, %queue, batch_size, "trigger started");
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = this.cancel.cancelled() => return,
            };
            // A function failing batch after batch waits out its cooldown before leasing more.
            let resume_at = this.failures.lock().unwrap_or_else(|e| e.into_inner()).1;
            if let Some(resume_at) = resume_at
                && resume_at > Instant::now()
            {
                tokio::select! {
                    () = tokio::time::sleep_until(resume_at) => {}
                    () = this.cancel.cancelled() => return,
                }
            }
            // Register for wake-ups before looking, so an enqueue between the look and the wait
            // is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let visible = if max_wait.is_zero() {
                1
            } else {
                match this
                    .store
                    .visible_count(&queue, u64::from(batch_size))
                    .await
                {
                    Ok(visible) => visible,
                    Err(err) => {
                        tracing::warn!(%err, %queue, "cannot count visible messages");
                        if this.pause(STORAGE_RETRY).await {
                            return;
                        }
                        continue;
                    }
                }
            };
            let wait_until =
                match window::decide(visible, batch_size, max_wait, opened, Instant::now()) {
                    Window::Lease => match this.lease(batch_size as usize).await {
                        Ok(Some(lease)) => {
                            opened = None;
                            this.spawn_execute(lease, permit);
                            continue;
                        }
                        Ok(None) => {
                            opened = None;
                            this.after_empty_lease().await
                        }
                        Err(err) => {
                            tracing::warn!(%err, %queue, "cannot lease");
                            Some(Instant::now() + STORAGE_RETRY)
                        }
                    },
                    Window::WaitUntil(deadline) => {
                        opened.get_or_insert_with(Instant::now);
                        Some(deadline)
                    }
                    Window::Idle => {
                        opened = None;
                        this.next_visible().await
                    }
                };
            drop(permit);
            tokio::select! {
                () = &mut notified => {}
                () = sleep_until(wait_until) => {}
                () = this.cancel.cancelled() => return,
            }
        }
    }

    /// Leases a batch. On a store shared by several hosts the concurrency cap is counted by
    /// the database across all of them; alone, this loop's semaphore is the cap.
    async fn lease(&self, max: usize) -> Result<Option<Lease>, crate::store::Error> {
        let queue = &self.record.queue;
        if self.store.is_shared() {
            self.store
                .lease_capped(
                    queue,
                    max,
                    Some(self.lease_for()),
                    self.record.max_concurrency.max(1),
                )
                .await
        } else {
            self.store.lease(queue, max, Some(self.lease_for())).await
        }
    }

    /// When to look again after a lease came back empty. Messages visible now that it could
    /// not take are being leased by another consumer (whose transaction has not committed
    /// yet) or wait for a concurrency slot another host holds: that lease either settles,
    /// which wakes this loop, or ends with nobody told (its host died, or its settle failed),
    /// so look again at the latest when a lease taken now would expire. Otherwise, when the
    /// next delayed message, retry or lease comes due.
    ///
    /// Both are read in one snapshot ([`Store::lull`]), which is what makes this race-free: a
    /// lease that commits after it is seen as visible messages, and one that commits before it
    /// as a lease that comes due.
    async fn after_empty_lease(&self) -> Option<Instant> {
        let lull = match self.store.lull(&self.record.queue).await {
            Ok(lull) => lull,
            Err(err) => {
                tracing::warn!(%err, queue = %self.record.queue, "cannot read when messages come due");
                return Some(Instant::now() + STORAGE_RETRY);
            }
        };
        let due = lull.next_visible_at_ms.map(|at_ms| self.instant_of(at_ms));
        if !lull.visible_now {
            return due;
        }
        let taken_lease_ends = Instant::now() + self.lease_for();
        Some(due.map_or(taken_lease_ends, |due| due.min(taken_lease_ends)))
    }

    /// The instant the store's clock reads `at_ms`.
    fn instant_of(&self, at_ms: u64) -> Instant {
        let wait = at_ms.saturating_sub(self.store.now_ms());
        Instant::now() + Duration::from_millis(wait)
    }

    /// When the next delayed message, retry or expiring lease becomes visible.
    async fn next_visible(&self) -> Option<Instant> {
        match self.store.next_visible_at_ms(&self.record.queue).await {
            Ok(Some(at_ms)) => Some(self.instant_of(at_ms)),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(%err, queue = %self.record.queue, "cannot read the next visible time");
                Some(Instant::now() + STORAGE_RETRY)
            }
        }
    }

    /// Waits `duration` or until cancelled; true when cancelled.
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            () = self.cancel.cancelled() => true,
        }
    }

    fn spawn_execute(self: &Arc<Self>, lease: Lease, permit: OwnedSemaphorePermit) {
        let this = self.clone();
        this.in_flight.fetch_add(1, Ordering::Relaxed);
        self.tracker.spawn(async move {
            // Batch after batch, as long as each settle leases the next in its own commit.
            let mut next = Some(lease);
            while let Some(lease) = next {
                next = this.execute(lease).await;
            }
            this.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }

    /// Runs the function on a leased batch and settles it; returns the next batch when the
    /// settle leased one. Never fails: whatever goes wrong, the batch is either settled or its
    /// lease expires and it is delivered again.
    async fn execute(&self, lease: Lease) -> Option<Lease> {
        let function = &self.record.function;
        let queue = &self.record.queue;
        let size = lease.messages.len();
        metrics::counter!("sluice_delivered_total", "queue" => queue.clone())
            .increment(size as u64);
        let check = outbox_check(&self.store).await;
        let started_at_ms = self.store.now_ms();
        super::handler_starting(queue, &lease.messages);
        let invocation = self
            .functions
            .executor()
            .invoke(
                &self.active.handler,
                &self.active.limits,
                lease.messages.clone(),
                check,
            )
            .await;
        let outcome = match &invocation.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Error(_) => "error",
            Outcome::Failed { kind, .. } => failure_name(*kind),
        };
        metrics::histogram!("sluice_invocation_seconds", "function" => function.clone())
            .record(invocation.duration.as_secs_f64());
        metrics::counter!("sluice_invocations_total", "function" => function.clone(), "outcome" => outcome)
            .increment(1);
        if !invocation.logs.is_empty() {
            tracing::debug!(%function, logs = %invocation.logs, "handler output");
        }
        let record = InvocationRecord::new(
            function,
            self.active.version,
            size,
            started_at_ms,
            &invocation,
            false,
        );

        {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            failures.0 = if matches!(invocation.outcome, Outcome::Ok(_)) {
                0
            } else {
                failures.0.saturating_add(1)
            };
            let cooldown = decide::failure_cooldown(failures.0);
            failures.1 = (!cooldown.is_zero()).then(|| Instant::now() + cooldown);
        }
        let settlement = {
            let mut rng = rand::rng();
            decide::settlement(
                &lease.messages,
                invocation,
                &self.settings.backoff,
                &mut rng,
            )
        };
        self.settle(&lease, settlement, record).await
    }

    /// Whether the settle of a batch should lease the next one in its commit: the trigger
    /// leases as soon as a message is there (no batch window), still runs, and is not cooling
    /// down after failures. Otherwise the trigger's loop decides when to lease.
    fn chains(&self) -> bool {
        let cooling = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_some_and(|resume_at| resume_at > Instant::now());
        self.record.max_wait_ms == 0 && !cooling && !self.cancel.is_cancelled()
    }

    /// Settles the batch and records its invocation in the same commit and, when the trigger
    /// [chains](Self::chains), leases the next batch in it too; returns that batch.
    async fn settle(
        &self,
        lease: &Lease,
        settlement: Settlement,
        record: InvocationRecord,
    ) -> Option<Lease> {
        let queue = &self.record.queue;
        let log = self.functions.log();
        let (entry, retention) = log.entry(&record);
        let sends = !settlement.send.is_empty()
            || !settlement.publish.is_empty()
            || !settlement.state.is_empty();
        let mut settled = if self.chains() {
            // Under a cap shared across hosts the database counts the leases; alone, the
            // permit this batch's task holds is the cap.
            let cap = self
                .store
                .is_shared()
                .then(|| self.record.max_concurrency.max(1));
            self.store
                .settle_logged_then_lease(
                    lease,
                    settlement,
                    entry.clone(),
                    retention,
                    LeaseRequest::new(
                        self.record.batch_size.max(1) as usize,
                        Some(self.lease_for()),
                        cap,
                    ),
                )
                .await
        } else {
            self.store
                .settle_logged(lease, settlement, entry.clone(), retention)
                .await
        };
        // A send or publish target vanished between the handler's call and the settle, or its
        // state writes conflict (a key it swapped changed, a bucket was deleted): nothing was
        // applied, so the batch is retried without its sends, publishes and writes.
        let retry_reason = match &settled {
            Err(
                crate::store::Error::QueueNotFound(missing)
                | crate::store::Error::TopicNotFound(missing),
            ) => Some(format!(
                "a queue the handler sent to or a topic it published to was deleted before the \
                 batch settled (`{missing}`)"
            )),
            Err(crate::store::Error::StateConflict(why)) => Some(format!("state conflict: {why}")),
            Err(crate::store::Error::BucketNotFound(bucket)) => Some(format!(
                "state conflict: bucket `{bucket}` was deleted before the batch settled"
            )),
            _ => None,
        };
        if let Some(reason) = retry_reason
            && sends
        {
            tracing::warn!(%queue, %reason, "settle refused; retrying the batch");
            let retry = decide::retry_all(
                &lease.messages,
                &reason,
                &self.settings.backoff,
                &mut rand::rng(),
            );
            settled = self
                .store
                .settle_logged(lease, retry, entry, retention)
                .await;
        }
        match settled {
            Ok(settled) => {
                record_settled(queue, &settled);
                if let Some(committed) = settled.logged {
                    log.announce(committed);
                }
                settled.next
            }
            Err(err) => {
                tracing::error!(%err, %queue, "cannot settle; the lease will expire and redeliver");
                // The invocation happened all the same: keep it in the log if the store lets us.
                if let Err(err) = log.record(record).await {
                    tracing::warn!(%err, function = %self.record.function, "invocation left out of the log");
                    // Counted, so a gap in `sluice logs` shows on a dashboard too.
                    metrics::counter!(
                        "sluice_invocations_unlogged_total",
                        "function" => self.record.function.clone()
                    )
                    .increment(1);
                }
                None
            }
        }
    }
}

fn record_settled(queue: &str, settled: &crate::store::Settled) {
    let q = queue.to_owned();
    metrics::counter!("sluice_acked_total", "queue" => q.clone()).increment(settled.acked);
    metrics::counter!("sluice_retried_total", "queue" => q.clone()).increment(settled.retried);
    metrics::counter!("sluice_dead_lettered_total", "queue" => q.clone())
        .increment(settled.dead_lettered);
    metrics::counter!("sluice_dropped_total", "queue" => q.clone()).increment(settled.dropped);
    metrics::counter!("sluice_sent_total", "queue" => q).increment(settled.sent);
    if !settled.stale.is_empty() {
        tracing::warn!(%queue, stale = settled.stale.len(), "settled after the lease was lost; those messages were left to their new lease");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! The loop against a real PostgreSQL store (shared, so leases take concurrency slots) and
    //! a real component.

    use sluice_test_support::testdb::TestDatabase;

    use super::*;
    use crate::dispatch::Dispatcher;
    use crate::executor::{Compiler, Executor, ExecutorConfig, KEEP_RESIDENT_BYTES};
    use crate::functions::{FunctionConfig, LogRetention};
    use crate::store::{NewMessage, StoreOptions, SystemClock};

    fn message(body: &str) -> NewMessage {
        NewMessage {
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// A slot can stay taken with nothing of its lease left to come due: its messages were
    /// deleted, and its host died or its settle failed, so no commit will announce that it
    /// freed. The same holds for the moment another host's lease has taken messages but not
    /// yet committed. A loop refused by the cap while messages are visible must look again by
    /// itself once such a lease has ended, not wait for a wake-up that never comes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loop_refused_by_the_cap_looks_again_when_the_holding_lease_ends() {
        let db = TestDatabase::create().await;
        let store =
            Store::connect_postgres(&db.url, StoreOptions::default(), Arc::new(SystemClock))
                .await
                .unwrap();
        let settings = QueueSettings {
            visibility_timeout_ms: 1_000,
            ..Default::default()
        };
        store.create_queue("q", settings).await.unwrap();
        // Another host's lease takes the queue's only slot; its message is deleted under it.
        store.enqueue("q", vec![message("gone")]).await.unwrap();
        let held = store
            .lease_capped("q", 1, Some(Duration::from_millis(500)), 1)
            .await
            .unwrap()
            .expect("a lease");
        let gone = held.messages.iter().map(|m| m.id.clone()).collect();
        assert_eq!(store.delete_messages("q", gone).await.unwrap(), 1);
        store.enqueue("q", vec![message("waiting")]).await.unwrap();

        let cache = tempfile::tempdir().unwrap();
        let executor = Executor::new(ExecutorConfig {
            cache_dir: cache.path().to_owned(),
            max_memory_bytes: 64 << 20,
            max_instances: 2,
            keep_resident_bytes: KEEP_RESIDENT_BYTES,
            compiler: Compiler::InProcess,
        })
        .unwrap();
        let functions = Functions::new(store.clone(), executor, LogRetention::default());
        let guests = sluice_test_support::guests::build("tests/guests", None)
            .unwrap_or_else(|e| panic!("{e}"));
        let wasm = std::fs::read(guests.join("guest_ok.wasm")).unwrap();
        let config = FunctionConfig {
            timeout_ms: 1_000,
            ..Default::default()
        };
        functions.upload("f", wasm, config).await.unwrap();
        let trigger = TriggerRecord {
            function: "f".into(),
            queue: "q".into(),
            batch_size: 1,
            max_wait_ms: 0,
            max_concurrency: 1,
            paused: false,
        };
        store.put_trigger(trigger).await.unwrap();
        let dispatcher = Dispatcher::new(store.clone(), functions, CancellationToken::new());
        dispatcher.start_all().await.unwrap();

        // The held slot ends 500 ms in; the loop's own lease would last 3 s (the time limit
        // plus the margin), which bounds how long it waits before looking again.
        // The settle that acknowledges it frees the slot, which wakes the queue's consumers.
        let notify = store.notifier("q");
        let delivered = async {
            loop {
                let woken = notify.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if store.get_queue("q").await.unwrap().stats.acked_total >= 1 {
                    return;
                }
                woken.await;
            }
        };
        let in_time = tokio::time::timeout(Duration::from_secs(15), delivered)
            .await
            .is_ok();
        dispatcher.shutdown(Duration::from_secs(5)).await;
        assert!(in_time, "the waiting message was not delivered within 15 s");
    }
}
