//! The invocation log over HTTP: a page at a time (newest first, filtered by outcome), live as
//! server-sent events that start with the newest entries and go on as invocations commit, or
//! summed up over time (counts, failures and duration percentiles per bucket).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState, ErrorBody, Segment};
use crate::functions::InvocationRecord;
use crate::store::{InvocationBucket, InvocationQuery, MIN_STATS_BUCKET_MS, StatsWindow};

/// Every outcome an invocation can have.
const OUTCOMES: [&str; 7] = [
    "ok",
    "error",
    "trap",
    "panic",
    "timeout",
    "out_of_memory",
    "stack_overflow",
];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvocationsQuery {
    /// At most this many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only invocations with a smaller id: the previous page's `next_before`.
    before: Option<u64>,
    /// Only these outcomes, comma-separated: `ok`, `error`, `trap`, `panic`, `timeout`,
    /// `out_of_memory`, `stack_overflow`.
    outcome: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InvocationList {
    /// Newest first.
    invocations: Vec<InvocationRecord>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<u64>,
}

fn outcomes(filter: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(filter) = filter else {
        return Ok(Vec::new());
    };
    filter
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            if OUTCOMES.contains(&o) {
                Ok(o.to_owned())
            } else {
                Err(ApiError::BadRequest(format!(
                    "unknown outcome `{o}`; use {}",
                    OUTCOMES.join(", ")
                )))
            }
        })
        .collect()
}

/// A page of the function's invocations, newest first, with outcome, duration and logs.
#[utoipa::path(get, path = "/v1/functions/{name}/invocations", tag = "functions",
    params(("name" = String, Path, description = "Function name"), InvocationsQuery),
    responses(
        (status = 200, description = "Invocations, newest first", body = InvocationList),
        (status = 400, description = "Invalid query or path", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Segment(name): Segment,
    query: Result<Query<InvocationsQuery>, QueryRejection>,
) -> Result<Json<InvocationList>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit` must be between 1 and 1000".into(),
        ));
    }
    let outcomes = outcomes(query.outcome.as_deref())?;
    state.functions.get(&name).await?;
    let invocations = state
        .functions
        .log()
        .page(
            &name,
            InvocationQuery {
                before: query.before,
                outcomes,
                limit,
            },
        )
        .await?;
    let next_before = (invocations.len() == limit)
        .then(|| invocations.last().map(|i| i.id))
        .flatten();
    Ok(Json(InvocationList {
        invocations,
        next_before,
    }))
}

/// The window stats cover when the request names none: the last hour.
const DEFAULT_STATS_WINDOW_MS: u64 = 60 * 60 * 1000;
/// How many buckets the default width gives a window: a chart's worth.
const DEFAULT_STATS_BUCKETS: u64 = 60;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The window's start, in ms since the Unix epoch (default: an hour before `until_ms`).
    since_ms: Option<u64>,
    /// The window's end (exclusive), in ms since the Unix epoch (default: now). At most 31
    /// days after `since_ms`.
    until_ms: Option<u64>,
    /// Each bucket's width in ms, at least 1000; at most 1440 buckets (default: the window
    /// over 60, rounded up to a whole second). Buckets are whole, from `since_ms` on: the
    /// last one ends at or after `until_ms`.
    #[param(minimum = 1000)]
    bucket_ms: Option<u64>,
}

/// A function's invocations over time, in whole buckets.
#[derive(Serialize, ToSchema)]
pub struct InvocationStats {
    /// The start of the first bucket (ms since the Unix epoch): `since_ms`.
    start_ms: u64,
    /// The end of the last bucket (exclusive).
    end_ms: u64,
    bucket_ms: u64,
    /// Every bucket of the window, oldest first, empty ones included.
    buckets: Vec<StatsBucket>,
}

/// One bucket of a function's invocations; dry runs (`invoke`) are left out.
#[derive(Serialize, ToSchema)]
pub struct StatsBucket {
    /// When the bucket starts (ms since the Unix epoch); it spans `bucket_ms`.
    start_ms: u64,
    /// Invocations started in the bucket.
    invocations: u64,
    /// Those whose outcome was not `ok` (error, trap, panic, timeout, out of memory...).
    errors: u64,
    /// Duration percentiles (ms), interpolated between the nearest two durations; null when
    /// the bucket is empty.
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl From<InvocationBucket> for StatsBucket {
    fn from(b: InvocationBucket) -> Self {
        StatsBucket {
            start_ms: b.start_ms,
            invocations: b.invocations,
            errors: b.errors,
            p50_ms: b.p50_ms,
            p95_ms: b.p95_ms,
            p99_ms: b.p99_ms,
        }
    }
}

/// The window a stats request asks for, with the defaults filled in: `now` is the server's
/// time. Bounds are checked by [`StatsWindow::new`].
fn stats_window(query: &StatsQuery, now: u64) -> Result<StatsWindow, ApiError> {
    let until = query.until_ms.unwrap_or(now);
    let since = match query.since_ms {
        Some(since) => since,
        None => until.saturating_sub(DEFAULT_STATS_WINDOW_MS),
    };
    let bucket = match query.bucket_ms {
        Some(bucket) => bucket,
        None => until
            .saturating_sub(since)
            .div_ceil(DEFAULT_STATS_BUCKETS)
            .div_ceil(MIN_STATS_BUCKET_MS)
            .max(1)
            .saturating_mul(MIN_STATS_BUCKET_MS),
    };
    Ok(StatsWindow::new(since, until, bucket)?)
}

/// The function's invocations over time: per bucket, how many, how many failed, and their
/// duration percentiles, computed by the store over the whole log (not a sample of it).
#[utoipa::path(get, path = "/v1/functions/{name}/invocations/stats", tag = "functions",
    params(("name" = String, Path, description = "Function name"), StatsQuery),
    responses(
        (status = 200, description = "Every bucket of the window, oldest first", body = InvocationStats),
        (status = 400, description = "Invalid query or path, or a window or bucket out of bounds", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn stats(
    State(state): State<AppState>,
    Segment(name): Segment,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<InvocationStats>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let window = stats_window(&query, state.store.now_ms())?;
    state.functions.get(&name).await?;
    let buckets = state.store.invocation_stats(&name, window).await?;
    Ok(Json(InvocationStats {
        start_ms: window.start_ms,
        end_ms: window.end_ms,
        bucket_ms: window.bucket_ms,
        buckets: buckets.into_iter().map(StatsBucket::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start with this many of the newest invocations, 0 to 1000 (default 0).
    #[param(minimum = 0, maximum = 1000)]
    backlog: Option<usize>,
    /// Only these outcomes, comma-separated (as for the list).
    outcome: Option<String>,
}

/// The function's invocations as server-sent events (`event: invocation`, `id`, JSON data):
/// the newest `backlog` first, oldest of them first, then each new one as it commits.
#[utoipa::path(get, path = "/v1/functions/{name}/invocations/stream", tag = "functions",
    params(("name" = String, Path, description = "Function name"), StreamQuery),
    responses(
        (status = 200, description = "An event stream of invocations", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Invalid query or path", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Segment(name): Segment,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let backlog = query.backlog.unwrap_or(0);
    if backlog > 1000 {
        return Err(ApiError::BadRequest(
            "`backlog` must be between 0 and 1000".into(),
        ));
    }
    let outcomes = outcomes(query.outcome.as_deref())?;
    state.functions.get(&name).await?;
    // Subscribe before reading the backlog, so nothing committed in between is missed; what
    // arrives twice is skipped by id.
    let live = state.functions.log().follow();
    let mut first: Vec<InvocationRecord> = if backlog == 0 {
        Vec::new()
    } else {
        state
            .functions
            .log()
            .page(
                &name,
                InvocationQuery {
                    before: None,
                    outcomes: outcomes.clone(),
                    limit: backlog,
                },
            )
            .await?
    };
    first.reverse();
    let shown = first.last().map(|i| i.id).unwrap_or(0);
    let backlog = stream::iter(first.into_iter().map(|i| Ok(event(&i))));
    let live = stream::unfold((live, shown), move |(mut live, mut shown)| {
        let name = name.clone();
        let outcomes = outcomes.clone();
        async move {
            loop {
                match live.recv().await {
                    Ok(record) => {
                        if record.function != name
                            || record.id <= shown
                            || (!outcomes.is_empty() && !outcomes.contains(&record.outcome))
                        {
                            continue;
                        }
                        shown = record.id;
                        return Some((Ok(event(&record)), (live, shown)));
                    }
                    // A follower too slow for the log's pace misses some; say so and go on.
                    Err(RecvError::Lagged(missed)) => {
                        let note = Event::default()
                            .event("lagged")
                            .data(format!("{{\"missed\":{missed}}}"));
                        return Some((Ok(note), (live, shown)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let shutdown = state.shutdown.clone();
    let events = backlog
        .chain(live)
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn event(record: &InvocationRecord) -> Event {
    Event::default()
        .event("invocation")
        .id(record.id.to_string())
        .json_data(record)
        .unwrap_or_else(|_| Event::default().event("invocation").data("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(since_ms: Option<u64>, until_ms: Option<u64>, bucket_ms: Option<u64>) -> StatsQuery {
        StatsQuery {
            since_ms,
            until_ms,
            bucket_ms,
        }
    }

    const NOW: u64 = 1_700_000_123_456;

    #[test]
    fn the_default_window_is_the_last_hour_in_minutes() {
        let window = stats_window(&query(None, None, None), NOW).unwrap();
        assert_eq!(window.bucket_ms, 60_000);
        assert_eq!(window.start_ms, NOW - DEFAULT_STATS_WINDOW_MS);
        assert_eq!((window.buckets(), window.end_ms), (60, NOW));
    }

    #[test]
    fn a_default_bucket_is_whole_seconds_and_within_the_cap() {
        let window = stats_window(&query(Some(NOW - 90_000), None, None), NOW).unwrap();
        assert_eq!(window.bucket_ms, 2_000);
        let tiny = stats_window(&query(Some(NOW - 10), None, None), NOW).unwrap();
        assert_eq!(tiny.bucket_ms, 1_000);
        // The widest window the store takes, with no bucket named, is given in the fewest
        // buckets that fit.
        let wide = stats_window(
            &query(Some(NOW - crate::store::MAX_STATS_WINDOW_MS), None, None),
            NOW,
        )
        .unwrap();
        assert!(wide.buckets() <= DEFAULT_STATS_BUCKETS, "{wide:?}");
    }

    #[test]
    fn bad_windows_say_what_to_ask_instead() {
        let message = |q: StatsQuery| stats_window(&q, NOW).unwrap_err().to_string();
        assert!(message(query(Some(NOW), Some(NOW - 1), None)).contains("must be after"));
        assert!(message(query(None, None, Some(10))).contains("at least"));
        let too_many = message(query(Some(NOW - 86_400_000), None, Some(1_000)));
        assert!(too_many.contains("`bucket_ms` of at least"), "{too_many}");
    }
}
