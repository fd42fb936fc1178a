//! The invocation log over HTTP: a page at a time (newest first, filtered by outcome), or live
//! as server-sent events that start with the newest entries and go on as invocations commit.

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
use crate::store::InvocationQuery;

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
