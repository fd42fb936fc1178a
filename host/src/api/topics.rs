//! Topic routes: create, list, show and delete topics; subscribe a queue (with a filter, from
//! the latest message, the earliest kept, or a time) and unsubscribe it; publish one message
//! or a batch, copied into every subscribed queue whose filter it passes in the same commit.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::messages::{BatchRequest, batch_messages, single_message};
use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json, parse_optional_json};
use crate::store::{Published, ReplayFrom, SubscriptionRecord, TopicRecord};

/// The default retention of a topic's history: 1 day.
const DEFAULT_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// The body of `POST /v1/topics`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// 1 to 80 characters of `A-Z a-z 0-9 _ -`.
    name: String,
    /// How long published messages are kept for replay, 1 ms to 14 days (default 1 day).
    retention_ms: Option<u64>,
}

/// A topic, its history and its subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicView {
    name: String,
    retention_ms: u64,
    created_at_ms: u64,
    /// How many messages have been published (the newest one's sequence number).
    published: u64,
    subscriptions: Vec<SubscriptionView>,
}

/// A subscription: which of the topic's messages go into which queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    topic: String,
    queue: String,
    #[schema(value_type = Object)]
    filter: Value,
    /// The sequence number of the last message dealt with (copied, or passed over by the
    /// filter); it equals the topic's `published` once caught up.
    position: u64,
    /// Whether it is still replaying history.
    replaying: bool,
    created_at_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    topics: Vec<TopicView>,
}

impl From<TopicRecord> for TopicView {
    fn from(t: TopicRecord) -> Self {
        TopicView {
            subscriptions: t
                .subscriptions
                .into_iter()
                .map(|s| subscription_view(s, t.head))
                .collect(),
            name: t.name,
            retention_ms: t.retention_ms,
            created_at_ms: t.created_at_ms,
            published: t.head,
        }
    }
}

fn subscription_view(s: SubscriptionRecord, head: u64) -> SubscriptionView {
    SubscriptionView {
        replaying: s.cursor < head,
        topic: s.topic,
        queue: s.queue,
        filter: s.filter,
        position: s.cursor,
        created_at_ms: s.created_at_ms,
    }
}

/// Create a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics",
    request_body(content = CreateTopic, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = TopicView),
        (status = 400, description = "Invalid JSON, name or retention", body = ErrorBody),
        (status = 409, description = "A topic of that name exists", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TopicView>), ApiError> {
    let request: CreateTopic = parse_json(&body.map_err(body_error)?)?;
    let topic = state
        .store
        .create_topic(
            &request.name,
            request.retention_ms.unwrap_or(DEFAULT_RETENTION_MS),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(topic.into())))
}

/// List topics with their subscriptions.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses(
        (status = 200, description = "Every topic", body = TopicList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<TopicList>, ApiError> {
    let topics = state.store.list_topics().await?;
    Ok(Json(TopicList {
        topics: topics.into_iter().map(TopicView::from).collect(),
    }))
}

/// Show a topic and its subscriptions.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name", example = "events")),
    responses(
        (status = 200, description = "The topic", body = TopicView),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Segment(topic): Segment,
) -> Result<Json<TopicView>, ApiError> {
    Ok(Json(state.store.get_topic(&topic).await?.into()))
}

/// Delete a topic, its history and its subscriptions (the queues and what they hold stay).
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name", example = "events")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Segment(topic): Segment,
) -> Result<StatusCode, ApiError> {
    state.store.delete_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `PUT /v1/topics/{topic}/subscriptions/{queue}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSubscription {
    /// Attribute conditions, all of which a message must pass: `"name": "value"` (exact),
    /// `{"prefix": "…"}`, `{"anything_but": ["…"]}` or `{"exists": true|false}`. Default `{}`:
    /// every message.
    #[schema(value_type = Object)]
    filter: Option<Value>,
    /// Where a new subscription starts: `"latest"` (default: the next message published),
    /// `"earliest"` (the oldest message kept) or a time in ms since the epoch. An existing
    /// subscription keeps its place.
    #[schema(value_type = Object)]
    from: Option<Value>,
}

fn replay_from(from: Option<Value>) -> Result<ReplayFrom, ApiError> {
    match from {
        None => Ok(ReplayFrom::Latest),
        Some(Value::String(s)) if s == "latest" => Ok(ReplayFrom::Latest),
        Some(Value::String(s)) if s == "earliest" => Ok(ReplayFrom::Earliest),
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            Ok(ReplayFrom::Time(n.as_u64().unwrap_or(0)))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "`from` must be \"latest\", \"earliest\" or a time in ms since the epoch, not {other}"
        ))),
    }
}

pub(super) async fn two_segments(
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let axum::extract::Path(pair) =
        path.map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))?;
    Ok(pair)
}

/// Subscribe a queue to a topic (or change its filter). With `from` before now, the topic's
/// history is replayed into the queue in order, then live messages follow with no gap and no
/// duplicate.
#[utoipa::path(put, path = "/v1/topics/{topic}/subscriptions/{queue}", tag = "topics",
    params(
        ("topic" = String, Path, description = "Topic name", example = "events"),
        ("queue" = String, Path, description = "Queue name", example = "fuzz"),
    ),
    request_body(content = PutSubscription, content_type = "application/json"),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 400, description = "Invalid JSON, filter or start", body = ErrorBody),
        (status = 404, description = "No such topic or queue", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn subscribe(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let (topic, queue) = two_segments(path).await?;
    let request: PutSubscription = parse_optional_json(&body.map_err(body_error)?)?;
    let from = replay_from(request.from)?;
    let filter = request
        .filter
        .unwrap_or_else(|| Value::Object(Default::default()));
    let record = state.store.subscribe(&topic, &queue, filter, from).await?;
    let head = state.store.get_topic(&topic).await?.head;
    Ok(Json(subscription_view(record, head)))
}

/// Unsubscribe a queue (what it already holds stays).
#[utoipa::path(delete, path = "/v1/topics/{topic}/subscriptions/{queue}", tag = "topics",
    params(
        ("topic" = String, Path, description = "Topic name", example = "events"),
        ("queue" = String, Path, description = "Queue name", example = "fuzz"),
    ),
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such topic or subscription", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (topic, queue) = two_segments(path).await?;
    state.store.unsubscribe(&topic, &queue).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a publish answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedView {
    /// The message's sequence number in the topic.
    seq: u64,
    /// How many queues it was copied into at once (subscriptions still replaying get it
    /// later).
    copies: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedBatch {
    /// One entry per message, in order.
    published: Vec<PublishedView>,
}

fn view(p: Published) -> PublishedView {
    PublishedView {
        seq: p.seq,
        copies: p.copies,
    }
}

/// Publish one message (the raw body; attributes, priority and group from the same headers as
/// a queue's enqueue). Answers after the message and every copy are committed.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages", tag = "topics",
    params(("topic" = String, Path, description = "Topic name", example = "events")),
    request_body(content = String, content_type = "application/octet-stream",
        description = "The message body, as is (any content type)"),
    responses(
        (status = 201, description = "Published", body = PublishedView),
        (status = 400, description = "Invalid header or attribute", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 413, description = "Larger than a subscribed queue's or the server's limit", body = ErrorBody),
        (status = 503, description = "Storage unavailable, or a subscribed queue is full", body = ErrorBody),
    ))]
pub async fn publish_one(
    State(state): State<AppState>,
    Segment(topic): Segment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PublishedView>), ApiError> {
    let message = single_message(&state.limits, &headers, body)?;
    let published = state
        .store
        .publish(&topic, vec![message])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("publish returned nothing".into()))?;
    Ok((StatusCode::CREATED, Json(view(published))))
}

/// Publish many messages, all or none, in order.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages/batch", tag = "topics",
    params(("topic" = String, Path, description = "Topic name", example = "events")),
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Published", body = PublishedBatch),
        (status = 400, description = "Invalid JSON, message or attribute", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 413, description = "A message or the body is too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable, or a subscribed queue is full", body = ErrorBody),
    ))]
pub async fn publish_batch(
    State(state): State<AppState>,
    Segment(topic): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PublishedBatch>), ApiError> {
    let messages = batch_messages(&state.limits, body)?;
    let published = state.store.publish(&topic, messages).await?;
    Ok((
        StatusCode::CREATED,
        Json(PublishedBatch {
            published: published.into_iter().map(view).collect(),
        }),
    ))
}
