//! When each message reached its handler, in this process: a tracing layer on the host's public
//! [`HANDLER_START`] event feeds the tracker of the event's queue. Drains need only the first
//! start and a count; latency needs each message's start, which the tracker keeps with the
//! batch's ids (one push per batch, so the dispatcher pays little more than it did for a
//! drain) and joins, once the load is over, to the send and 2xx times the producer recorded
//! for the ids its enqueues answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sluice::dispatch::HANDLER_START;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

use crate::load::histogram;

/// Per-queue record of handler starts: the first, how many messages, and (when asked for) each
/// message's first start and its request's send and 2xx times.
pub(crate) struct Tracker {
    queue: String,
    base: Instant,
    first_start: AtomicU64,
    pub(crate) started: AtomicU64,
    per_message: bool,
    /// (id, sent, answered) as the producer recorded them.
    sent: Mutex<Vec<(String, u64, u64)>>,
    /// Each batch's start and its ids, comma-separated.
    starts: Mutex<Vec<(u64, String)>>,
}

impl Tracker {
    /// Nanoseconds since `base`, never 0 (0 means "not yet").
    pub(crate) fn now(&self) -> u64 {
        (self.base.elapsed().as_nanos() as u64).max(1)
    }

    /// Records that the messages `ids` were sent at `sent` and answered (committed) at `acked`.
    pub(crate) fn sent(&self, ids: impl IntoIterator<Item = String>, sent: u64, acked: u64) {
        let mut all = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        all.extend(ids.into_iter().map(|id| (id, sent, acked)));
    }

    fn observe(&self, messages: u64, ids: Option<String>) {
        let now = self.now();
        let _ = self
            .first_start
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.started.fetch_add(messages, Ordering::Relaxed);
        if let Some(ids) = ids {
            let mut starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
            starts.push((now, ids));
        }
    }

    pub(crate) fn first_start(&self) -> Option<Instant> {
        match self.first_start.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n)),
        }
    }

    /// Histograms (µs) of start − 2xx and start − send over every message with all three times.
    pub(crate) fn latencies(&self) -> (Histogram<u64>, Histogram<u64>, u64) {
        let mut from_ack = histogram();
        let mut from_send = histogram();
        let mut n = 0;
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let batches = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut starts: HashMap<&str, u64> = HashMap::new();
        for (now, ids) in batches.iter() {
            for id in ids.split(',') {
                // The first delivery only: a retry's start is not this message's latency.
                let start = starts.entry(id).or_insert(*now);
                *start = (*start).min(*now);
            }
        }
        for (id, sent, acked) in sent.iter() {
            let Some(start) = starts.get(id.as_str()) else {
                continue;
            };
            n += 1;
            from_ack.saturating_record(start.saturating_sub(*acked) / 1000);
            from_send.saturating_record(start.saturating_sub(*sent) / 1000);
        }
        (from_ack, from_send, n)
    }
}

/// The trackers the layer feeds, as long as their phase holds them: what a tracker recorded is
/// freed with it, so it does not weigh on the resident memory later phases measure.
static TRACKERS: RwLock<Vec<Weak<Tracker>>> = RwLock::new(Vec::new());

/// A new tracker of `queue`'s handler starts (replacing any before it); `per_message` keeps
/// each message's start for [`Tracker::latencies`].
pub(crate) fn track(queue: &str, per_message: bool) -> Arc<Tracker> {
    let tracker = Arc::new(Tracker {
        queue: queue.to_owned(),
        base: Instant::now(),
        first_start: AtomicU64::new(0),
        started: AtomicU64::new(0),
        per_message,
        sent: Mutex::new(Vec::new()),
        starts: Mutex::new(Vec::new()),
    });
    let mut all = TRACKERS.write().unwrap_or_else(PoisonError::into_inner);
    all.retain(|t| t.upgrade().is_some_and(|t| t.queue != queue));
    all.push(Arc::downgrade(&tracker));
    tracker
}

/// Installs the layer as this process's subscriber, enabling the [`HANDLER_START`] event and
/// nothing else (the in-process host logs nothing, as before). Once; later calls do nothing.
pub(crate) fn subscribe() {
    let layer =
        Starts.with_filter(Targets::new().with_target(HANDLER_START, tracing::Level::TRACE));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

struct Starts;

impl<S: tracing::Subscriber> Layer<S> for Starts {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        for tracker in &fields.trackers {
            tracker.observe(fields.messages, fields.ids.clone());
        }
    }
}

/// The event's fields, in the order the host records them: `queue`, `messages`, `ids`.
#[derive(Default)]
struct Fields {
    trackers: Vec<Arc<Tracker>>,
    messages: u64,
    ids: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "queue" {
            let all = TRACKERS.read().unwrap_or_else(PoisonError::into_inner);
            self.trackers = all
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|t| t.queue == value)
                .collect();
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "messages" {
            self.messages = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // The ids are formatted only for a tracker that keeps them.
        if field.name() == "ids" && self.trackers.iter().any(|t| t.per_message) {
            self.ids = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch start as the host emits it (see `sluice::dispatch`'s test of the event).
    fn start(queue: &str, ids: &str) {
        let messages = ids.split(',').count();
        tracing::trace!(target: HANDLER_START, queue, messages, ids = %ids, "handler starting");
    }

    #[test]
    fn starts_are_joined_to_the_sends_by_id_and_a_retry_keeps_the_first() {
        let subscriber = tracing_subscriber::registry().with(Starts);
        let (drain, latency) = (track("starts-drain", false), track("starts-latency", true));
        latency.sent(["1".to_owned(), "2".to_owned(), "3".to_owned()], 1, 2);
        tracing::subscriber::with_default(subscriber, || {
            start("starts-drain", "10,11");
            start("starts-latency", "1,2");
            start("starts-latency", "1");
            start("starts-other", "3");
        });
        assert_eq!(drain.started.load(Ordering::Relaxed), 2);
        assert!(drain.first_start().is_some());
        assert_eq!(latency.started.load(Ordering::Relaxed), 3);
        let (_, from_send, n) = latency.latencies();
        // Message 3 never started on this queue; 1's retry is not its latency.
        assert_eq!(n, 2);
        assert_eq!(from_send.len(), 2);
        let batches = latency.starts.lock().unwrap();
        assert_eq!(batches.len(), 2);
        assert!(batches[0].0 <= batches[1].0);
    }
}
