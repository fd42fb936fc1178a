//! Schedule routes: put (create or replace), show, list and delete schedules that enqueue a
//! message on each tick of a cron expression.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json};
use crate::schedule::Ticks;
use crate::store::{self, ScheduleRecord};

/// The body of `PUT /v1/schedules/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSchedule {
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.
    cron: String,
    /// An IANA time zone the expression is read in (default `UTC`).
    #[serde(default = "utc")]
    timezone: String,
    /// The queue each tick enqueues into.
    queue: String,
    /// The message body as text; give at most one of `body` and `body_base64` (default empty).
    body: Option<String>,
    /// The message body as standard base64, for binary bodies.
    body_base64: Option<String>,
    /// Attributes of every message (names may not start with `sluice-`).
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// A schedule and its next tick.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    name: String,
    cron: String,
    timezone: String,
    queue: String,
    /// The body as text when it is UTF-8, else null.
    body: Option<String>,
    body_base64: String,
    attributes: BTreeMap<String, String>,
    /// When it fires next, ms since the epoch.
    next_tick_ms: u64,
    created_at_ms: u64,
}

impl From<ScheduleRecord> for ScheduleView {
    fn from(s: ScheduleRecord) -> Self {
        ScheduleView {
            body: std::str::from_utf8(&s.body).ok().map(str::to_owned),
            body_base64: BASE64.encode(&s.body),
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            queue: s.queue,
            attributes: s.attributes.into_iter().collect(),
            next_tick_ms: s.next_tick_ms,
            created_at_ms: s.created_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    schedules: Vec<ScheduleView>,
}

/// Names like queue names: 1 to 80 characters of `A-Z a-z 0-9 _ -`.
fn check_name(name: &str) -> Result<(), ApiError> {
    store::validate_queue_name(name).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid schedule name `{name}`: use 1 to 80 characters of A-Z a-z 0-9 _ -"
        ))
    })
}

/// Create or replace a schedule; its next tick is computed from now.
#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name", example = "nightly")),
    request_body(content = PutSchedule, content_type = "application/json"),
    responses(
        (status = 200, description = "The schedule and its next tick", body = ScheduleView),
        (status = 400, description = "Invalid JSON, name, cron expression, time zone or attributes", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "The message is larger than the queue allows", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<AppState>,
    Segment(name): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScheduleView>, ApiError> {
    check_name(&name)?;
    let request: PutSchedule = parse_json(&body.map_err(body_error)?)?;
    let ticks = Ticks::parse(&request.cron, &request.timezone)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let body = match (request.body, request.body_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `body` or `body_base64`, not both".into(),
            ));
        }
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .map_err(|e| ApiError::BadRequest(format!("`body_base64` is not base64: {e}")))?,
        (None, None) => Vec::new(),
    };
    if let Some(reserved) = request
        .attributes
        .keys()
        .find(|k| store::is_reserved_attribute(k))
    {
        return Err(ApiError::BadRequest(format!(
            "attribute `{reserved}` is reserved: names starting with `{}` are Sluice's",
            store::RESERVED_ATTRIBUTE_PREFIX
        )));
    }
    let now = state.store.now_ms();
    let next_tick_ms = ticks
        .next_after(now)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let record = ScheduleRecord {
        name,
        cron: request.cron,
        timezone: request.timezone,
        queue: request.queue,
        body,
        attributes: request.attributes.into_iter().collect(),
        next_tick_ms,
        created_at_ms: now,
    };
    Ok(Json(state.store.put_schedule(record).await?.into()))
}

/// List schedules with their next ticks.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses(
        (status = 200, description = "Every schedule", body = ScheduleList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = state.store.list_schedules().await?;
    Ok(Json(ScheduleList {
        schedules: schedules.into_iter().map(ScheduleView::from).collect(),
    }))
}

/// Show a schedule and its next tick.
#[utoipa::path(get, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name", example = "nightly")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(state.store.get_schedule(&name).await?.into()))
}

/// Delete a schedule; ticks not yet fired are not.
#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name", example = "nightly")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<StatusCode, ApiError> {
    state.store.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
