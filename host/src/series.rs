//! The rolling per-queue series the console charts: every queue's depth, age and totals sampled
//! once an interval and kept in memory for the last hour, with enqueue, ack and dead-letter
//! rates worked out between samples. No time-series database: a restart starts a new hour.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::store::{QueueStats, Store};

/// How far back the series reach.
pub const WINDOW: Duration = Duration::from_secs(60 * 60);

/// One queue at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sample {
    pub at_ms: u64,
    pub visible: u64,
    pub delayed: u64,
    pub in_flight: u64,
    pub oldest_age_ms: Option<u64>,
    /// Messages per second since the previous sample; absent for the first.
    pub enqueued_per_s: Option<f64>,
    pub acked_per_s: Option<f64>,
    pub dead_lettered_per_s: Option<f64>,
    #[serde(skip)]
    totals: Totals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    enqueued: u64,
    acked: u64,
    dead_lettered: u64,
}

impl Sample {
    /// A sample of `stats` at `at_ms`, with rates against `previous`.
    pub fn new(at_ms: u64, stats: &QueueStats, previous: Option<&Sample>) -> Sample {
        let totals = Totals {
            enqueued: stats.enqueued_total,
            acked: stats.acked_total,
            dead_lettered: stats.dead_lettered_total,
        };
        let rate = |now: u64, before: fn(&Totals) -> u64| {
            let previous = previous?;
            let seconds = at_ms.checked_sub(previous.at_ms)? as f64 / 1000.0;
            // Totals only grow; a smaller one means the queue was deleted and created again.
            let grown = now.checked_sub(before(&previous.totals))?;
            (seconds > 0.0).then(|| grown as f64 / seconds)
        };
        Sample {
            at_ms,
            visible: stats.visible,
            delayed: stats.delayed,
            in_flight: stats.in_flight,
            oldest_age_ms: stats.oldest_age_ms,
            enqueued_per_s: rate(totals.enqueued, |t| t.enqueued),
            acked_per_s: rate(totals.acked, |t| t.acked),
            dead_lettered_per_s: rate(totals.dead_lettered, |t| t.dead_lettered),
            totals,
        }
    }
}

/// Every queue's samples; cheap to clone.
#[derive(Clone)]
pub struct Series {
    interval: Duration,
    capacity: usize,
    queues: Arc<Mutex<HashMap<String, VecDeque<Sample>>>>,
}

impl Series {
    /// Series sampled every `interval` (at least 100 ms).
    pub fn new(interval: Duration) -> Series {
        let interval = interval.max(Duration::from_millis(100));
        let capacity = (WINDOW.as_millis() / interval.as_millis()).clamp(1, 36_000) as usize;
        Series {
            interval,
            capacity,
            queues: Arc::default(),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Adds one sample per queue in `stats` and forgets queues that are gone.
    pub fn add(&self, at_ms: u64, stats: &[(String, QueueStats)]) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.retain(|name, _| stats.iter().any(|(n, _)| n == name));
        let window = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
        for (name, stats) in stats {
            let samples = queues.entry(name.clone()).or_default();
            let sample = Sample::new(at_ms, stats, samples.back());
            // Samples further apart than the interval (a slow store) still reach back only
            // the window.
            while samples.len() == self.capacity
                || samples
                    .front()
                    .is_some_and(|s| at_ms.saturating_sub(s.at_ms) > window)
            {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// `queue`'s samples, oldest first, followed by `now` (live stats) when given. The live
    /// sample's rates span at least one interval, so a sample taken a moment ago does not make
    /// them read as zero.
    pub fn get(&self, queue: &str, now: Option<(u64, &QueueStats)>) -> Vec<Sample> {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let mut samples: Vec<Sample> = queues
            .get(queue)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        if let Some((at_ms, stats)) = now {
            let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
            let reference = samples
                .iter()
                .rev()
                .find(|s| at_ms.saturating_sub(s.at_ms) >= interval)
                .or(samples.first());
            let live = Sample::new(at_ms, stats, reference);
            samples.push(live);
        }
        samples
    }

    /// Samples every queue each interval until `shutdown`, or less often when sampling is
    /// slow (see [`next_sample_in`]).
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = shutdown.cancelled() => return,
            }
            let started = tokio::time::Instant::now();
            match store.list_queues().await {
                Ok(queues) => {
                    let stats: Vec<(String, QueueStats)> =
                        queues.into_iter().map(|q| (q.name, q.stats)).collect();
                    self.add(store.now_ms(), &stats);
                }
                Err(err) => tracing::warn!(%err, "queue series sample skipped"),
            }
            next = started + next_sample_in(self.interval, started.elapsed());
        }
    }
}

/// The console's series must not load the store it watches: sampling takes at most one part
/// in [`SAMPLING_SHARE`] of the time. A queue's live counts are cheap on SQLite (counters)
/// but on PostgreSQL read every row of the queue (57 ms at 200,000 messages, measured with
/// `pg_stat_statements`), which every host did every 10 s however long the queue.
const SAMPLING_SHARE: u32 = 50;

/// How long after the start of a sample that took `took` the next one starts.
fn next_sample_in(interval: Duration, took: Duration) -> Duration {
    interval.max(took.saturating_mul(SAMPLING_SHARE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(visible: u64, enqueued: u64, acked: u64) -> QueueStats {
        QueueStats {
            visible,
            enqueued_total: enqueued,
            acked_total: acked,
            ..QueueStats::default()
        }
    }

    #[test]
    fn rates_come_from_the_growth_of_totals_between_samples() {
        let series = Series::new(Duration::from_secs(10));
        series.add(0, &[("q".into(), stats(0, 0, 0))]);
        series.add(10_000, &[("q".into(), stats(50, 100, 50))]);
        let samples = series.get("q", Some((20_000, &stats(40, 120, 70))));
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].enqueued_per_s, None);
        assert_eq!(samples[1].enqueued_per_s, Some(10.0));
        assert_eq!(samples[1].acked_per_s, Some(5.0));
        assert_eq!(samples[2].enqueued_per_s, Some(2.0));
        assert_eq!(samples[2].acked_per_s, Some(2.0));
        assert_eq!(samples[2].visible, 40);
        // Right after a sample, the live rates reach back a whole interval.
        let soon = series.get("q", Some((10_500, &stats(50, 101, 50))));
        assert_eq!(soon[2].enqueued_per_s, Some(101.0 / 10.5));
    }

    #[test]
    fn an_hour_is_kept_and_deleted_queues_are_forgotten() {
        let series = Series::new(Duration::from_secs(60));
        for minute in 0..100u64 {
            series.add(minute * 60_000, &[("q".into(), stats(minute, minute, 0))]);
        }
        let samples = series.get("q", None);
        assert_eq!(samples.len(), 60);
        assert_eq!(samples[0].visible, 40);
        series.add(100 * 60_000, &[]);
        assert!(series.get("q", None).is_empty());
    }

    #[test]
    fn a_slow_sample_spaces_out_the_next() {
        let interval = Duration::from_secs(10);
        assert_eq!(next_sample_in(interval, Duration::from_millis(5)), interval);
        assert_eq!(
            next_sample_in(interval, Duration::from_millis(300)),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn samples_spaced_out_reach_back_only_the_window() {
        let series = Series::new(Duration::from_secs(10));
        for minute in 0..100u64 {
            series.add(minute * 60_000, &[("q".into(), stats(minute, minute, 0))]);
        }
        let samples = series.get("q", None);
        assert_eq!(samples.len(), 61);
        assert_eq!(samples[0].visible, 39);
    }

    #[test]
    fn a_recreated_queue_has_no_negative_rate() {
        let series = Series::new(Duration::from_secs(10));
        series.add(0, &[("q".into(), stats(0, 100, 0))]);
        series.add(10_000, &[("q".into(), stats(0, 3, 0))]);
        assert_eq!(series.get("q", None)[1].enqueued_per_s, None);
    }
}
