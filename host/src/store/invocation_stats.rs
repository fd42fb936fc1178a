//! A function's invocations over time: the window and buckets a request may ask for (checked
//! once, here), and the arithmetic both backends share so they answer alike:
//! PostgreSQL's `percentile_cont` computed in Rust for SQLite, and the empty buckets filled in.

use super::{Error, Result};

/// The narrowest bucket: one second.
pub const MIN_STATS_BUCKET_MS: u64 = 1_000;
/// The most buckets one request may ask for.
pub const MAX_STATS_BUCKETS: u64 = 1_440;
/// The widest window one request may ask for: 31 days.
pub const MAX_STATS_WINDOW_MS: u64 = 31 * 24 * 60 * 60 * 1_000;

/// The percentiles of duration each bucket gives, as fractions.
pub const PERCENTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// A checked window: whole buckets of `bucket_ms` from `since_ms` (as Prometheus steps a range
/// query from its start; a client that wants buckets on round times asks from a round time),
/// through the one holding the last millisecond before `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsWindow {
    /// The start of the first bucket.
    pub start_ms: u64,
    /// The end of the last bucket (exclusive): `start_ms + buckets * bucket_ms`.
    pub end_ms: u64,
    pub bucket_ms: u64,
}

impl StatsWindow {
    /// The window from `since_ms` up to `until_ms` (exclusive) in buckets of `bucket_ms`, or
    /// why it cannot be given, with what to ask instead.
    pub fn new(since_ms: u64, until_ms: u64, bucket_ms: u64) -> Result<StatsWindow> {
        let invalid = |what: String| Err(Error::InvalidStatsQuery(what));
        if until_ms <= since_ms {
            return invalid(format!(
                "`until_ms` ({until_ms}) must be after `since_ms` ({since_ms})"
            ));
        }
        if until_ms - since_ms > MAX_STATS_WINDOW_MS {
            return invalid(format!(
                "a window of {} ms is wider than the {MAX_STATS_WINDOW_MS} ms (31 days) one \
                 request may span; ask for a later `since_ms`",
                until_ms - since_ms
            ));
        }
        if bucket_ms < MIN_STATS_BUCKET_MS {
            return invalid(format!(
                "`bucket_ms` {bucket_ms} is too narrow; ask for at least {MIN_STATS_BUCKET_MS} \
                 (one second)"
            ));
        }
        let start_ms = since_ms;
        let buckets = (until_ms - start_ms).div_ceil(bucket_ms);
        if buckets > MAX_STATS_BUCKETS {
            return invalid(format!(
                "{buckets} buckets of {bucket_ms} ms; at most {MAX_STATS_BUCKETS} are given: ask \
                 for a `bucket_ms` of at least {} or a shorter window",
                (until_ms - start_ms).div_ceil(MAX_STATS_BUCKETS)
            ));
        }
        Ok(StatsWindow {
            start_ms,
            end_ms: start_ms + buckets * bucket_ms,
            bucket_ms,
        })
    }

    /// How many buckets the window holds.
    pub fn buckets(&self) -> u64 {
        (self.end_ms - self.start_ms) / self.bucket_ms
    }

    /// Where bucket `index` (as the backends' SQL numbers them from `start_ms`) starts.
    pub fn bucket_start(&self, index: i64) -> u64 {
        self.start_ms + u64::try_from(index).unwrap_or(0) * self.bucket_ms
    }
}

/// One bucket of a function's invocations (dry runs left out).
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationBucket {
    /// When the bucket starts (ms since the epoch); it spans the window's `bucket_ms`.
    pub start_ms: u64,
    /// Invocations started in the bucket.
    pub invocations: u64,
    /// Those whose outcome was not `ok` (an error, a trap, a timeout...).
    pub errors: u64,
    /// The 50th, 95th and 99th percentiles of their durations (ms), interpolated between the
    /// nearest two as PostgreSQL's `percentile_cont` does; `None` in an empty bucket.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl InvocationBucket {
    fn empty(start_ms: u64) -> InvocationBucket {
        InvocationBucket {
            start_ms,
            invocations: 0,
            errors: 0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
        }
    }
}

/// The `p`-th quantile (0 to 1) of ascending `sorted`, interpolated linearly between the two
/// nearest values: exactly the arithmetic of PostgreSQL's `percentile_cont`, so both backends
/// give the same figures. `None` when `sorted` is empty.
pub fn percentile_cont(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = p.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (position.floor(), position.ceil());
    let (below, above) = (sorted[low as usize], sorted[high as usize]);
    Some(below + (above - below) * (position - low))
}

/// The bucket of `durations` (ascending) of which `errors` failed, starting at `start_ms`.
pub fn bucket_of(start_ms: u64, durations: &[f64], errors: u64) -> InvocationBucket {
    let [p50_ms, p95_ms, p99_ms] = PERCENTILES.map(|p| percentile_cont(durations, p));
    InvocationBucket {
        start_ms,
        invocations: durations.len() as u64,
        errors,
        p50_ms,
        p95_ms,
        p99_ms,
    }
}

/// Every bucket of the window, in order: those the backend found (non-empty, any order), the
/// others empty.
pub fn fill(window: &StatsWindow, found: Vec<InvocationBucket>) -> Vec<InvocationBucket> {
    let mut all: Vec<InvocationBucket> = (0..window.buckets())
        .map(|i| InvocationBucket::empty(window.start_ms + i * window.bucket_ms))
        .collect();
    for bucket in found {
        let index = bucket.start_ms.saturating_sub(window.start_ms) / window.bucket_ms;
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| all.get_mut(i)) {
            *slot = bucket;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_buckets_from_their_start_and_bounded() {
        let window = StatsWindow::new(61_500, 125_000, 60_000).unwrap();
        assert_eq!(
            window,
            StatsWindow {
                start_ms: 61_500,
                end_ms: 181_500,
                bucket_ms: 60_000
            }
        );
        assert_eq!(
            window.buckets(),
            2,
            "the last bucket whole, past `until_ms`"
        );
        // An end on a bucket's edge takes no bucket past it.
        assert_eq!(StatsWindow::new(0, 120_000, 60_000).unwrap().buckets(), 2);

        let refused = |since, until, bucket| match StatsWindow::new(since, until, bucket) {
            Err(Error::InvalidStatsQuery(why)) => why,
            other => panic!("accepted: {other:?}"),
        };
        assert!(refused(5_000, 5_000, 1_000).contains("must be after"));
        assert!(refused(0, 10_000, 999).contains("at least"));
        let too_many = refused(0, 3_600_000, 1_000);
        assert!(
            too_many.contains("3600 buckets") && too_many.contains("at least 2500"),
            "{too_many}"
        );
        assert!(refused(0, MAX_STATS_WINDOW_MS + 1, 3_600_000).contains("31 days"));
        assert!(StatsWindow::new(0, MAX_STATS_WINDOW_MS, 3_600_000).is_ok());
    }

    #[test]
    fn percentiles_interpolate_as_postgres_does() {
        assert_eq!(percentile_cont(&[], 0.5), None);
        assert_eq!(percentile_cont(&[7.0], 0.99), Some(7.0));
        let sorted = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile_cont(&sorted, 0.5), Some(3.0));
        // Position 0.95 * 4 = 3.8: 4 + (10 - 4) * 0.8.
        assert_eq!(
            percentile_cont(&sorted, 0.95),
            Some(4.0 + 6.0 * (3.8 - 3.0))
        );
        assert_eq!(percentile_cont(&sorted, 0.0), Some(1.0));
        assert_eq!(percentile_cont(&sorted, 1.0), Some(10.0));
        assert_eq!(percentile_cont(&[1.0, 2.0], 0.5), Some(1.5));
    }

    #[test]
    fn every_bucket_of_the_window_is_given_in_order() {
        let window = StatsWindow::new(0, 4_000, 1_000).unwrap();
        let found = vec![bucket_of(2_000, &[1.0, 3.0], 1), bucket_of(0, &[2.0], 0)];
        let all = fill(&window, found);
        assert_eq!(
            all.iter().map(|b| b.start_ms).collect::<Vec<_>>(),
            [0, 1_000, 2_000, 3_000]
        );
        assert_eq!(
            all.iter().map(|b| b.invocations).collect::<Vec<_>>(),
            [1, 0, 2, 0]
        );
        assert_eq!(all[2].errors, 1);
        assert_eq!(all[2].p50_ms, Some(2.0));
        assert_eq!(all[1], InvocationBucket::empty(1_000));
    }
}
