//! Key-value routes: create (or change the expiry of), show, list and delete buckets; read, write and
//! delete one key, and list a bucket's keys by prefix, a page at a time. An operator's write
//! commits at once, by the rules a handler's writes follow at their settle.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::topics::two_segments;
use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_optional_json};
use crate::store::{BucketRecord, KeyPage, StateOp, StateWrite};

/// The header that carries a key's version (changed by every write).
const VERSION_HEADER: &str = "sluice-kv-version";

/// The body of `PUT /v1/kv/{bucket}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBucket {
    /// Keys expire this long after their last write; never when left out. A change applies
    /// to writes from then on.
    ttl_ms: Option<u64>,
}

/// A bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    name: String,
    ttl_ms: Option<u64>,
    created_at_ms: u64,
}

impl From<BucketRecord> for BucketView {
    fn from(b: BucketRecord) -> Self {
        BucketView {
            name: b.name,
            ttl_ms: b.ttl_ms,
            created_at_ms: b.created_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketList {
    buckets: Vec<BucketView>,
}

/// One page of a bucket's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// In byte order.
    keys: Vec<String>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    cursor: Option<String>,
}

impl From<KeyPage> for KeyList {
    fn from(page: KeyPage) -> Self {
        KeyList {
            keys: page.keys,
            cursor: page.cursor,
        }
    }
}

/// The query of `GET /v1/kv/{bucket}/keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KeysQuery {
    /// Only keys starting with this.
    prefix: Option<String>,
    /// The previous page's `cursor`.
    cursor: Option<String>,
    /// At most this many keys (1 to 1000, default 100).
    limit: Option<usize>,
}

/// Create a bucket, or change its expiry.
#[utoipa::path(put, path = "/v1/kv/{bucket}", tag = "kv",
    params(("bucket" = String, Path, description = "Bucket name", example = "counts")),
    request_body(content = PutBucket, content_type = "application/json"),
    responses(
        (status = 200, description = "The bucket", body = BucketView),
        (status = 400, description = "Invalid JSON, name or expiry", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn put_bucket(
    State(state): State<AppState>,
    Segment(bucket): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BucketView>, ApiError> {
    let request: PutBucket = parse_optional_json(&body.map_err(body_error)?)?;
    let record = state.store.put_bucket(&bucket, request.ttl_ms).await?;
    Ok(Json(record.into()))
}

/// List buckets.
#[utoipa::path(get, path = "/v1/kv", tag = "kv",
    responses(
        (status = 200, description = "Every bucket", body = BucketList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list_buckets(State(state): State<AppState>) -> Result<Json<BucketList>, ApiError> {
    let buckets = state.store.list_buckets().await?;
    Ok(Json(BucketList {
        buckets: buckets.into_iter().map(Into::into).collect(),
    }))
}

/// Show a bucket.
#[utoipa::path(get, path = "/v1/kv/{bucket}", tag = "kv",
    params(("bucket" = String, Path, description = "Bucket name", example = "counts")),
    responses(
        (status = 400, description = "Invalid bucket name or key", body = ErrorBody),
        (status = 200, description = "The bucket", body = BucketView),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn get_bucket(
    State(state): State<AppState>,
    Segment(bucket): Segment,
) -> Result<Json<BucketView>, ApiError> {
    Ok(Json(state.store.get_bucket(&bucket).await?.into()))
}

/// Delete a bucket and every key in it.
#[utoipa::path(delete, path = "/v1/kv/{bucket}", tag = "kv",
    params(("bucket" = String, Path, description = "Bucket name", example = "counts")),
    responses(
        (status = 400, description = "Invalid bucket name or key", body = ErrorBody),
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete_bucket(
    State(state): State<AppState>,
    Segment(bucket): Segment,
) -> Result<StatusCode, ApiError> {
    state.store.delete_bucket(&bucket).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a bucket's keys, by prefix, a page at a time.
#[utoipa::path(get, path = "/v1/kv/{bucket}/keys", tag = "kv",
    params(("bucket" = String, Path, description = "Bucket name", example = "counts"), KeysQuery),
    responses(
        (status = 200, description = "One page of keys", body = KeyList),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list_keys(
    State(state): State<AppState>,
    Segment(bucket): Segment,
    query: Result<Query<KeysQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<KeyList>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let page = state
        .store
        .kv_keys(
            &bucket,
            query.prefix.as_deref().unwrap_or(""),
            query.cursor.as_deref(),
            query.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(page.into()))
}

/// Read a key: its value as the body, its version in `Sluice-Kv-Version`.
#[utoipa::path(get, path = "/v1/kv/{bucket}/keys/{key}", tag = "kv",
    params(
        ("bucket" = String, Path, description = "Bucket name", example = "counts"),
        ("key" = String, Path, description = "Key (percent-encoded)", example = "count:acme"),
    ),
    responses(
        (status = 400, description = "Invalid bucket name or key", body = ErrorBody),
        (status = 200, description = "The value", body = Vec<u8>, content_type = "application/octet-stream",
            headers(("sluice-kv-version" = u64, description = "The key's version"))),
        (status = 404, description = "No such bucket, or the key has no value", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn get_key(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (bucket, key) = two_segments(path).await?;
    let entry = state.store.kv_get(&bucket, &key).await?.ok_or_else(|| {
        ApiError::NotFound(format!("key `{key}` of bucket `{bucket}` has no value"))
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(VERSION_HEADER, HeaderValue::from(entry.version));
    Ok((headers, entry.value).into_response())
}

/// Write a key: the body is its value, committed at once.
#[utoipa::path(put, path = "/v1/kv/{bucket}/keys/{key}", tag = "kv",
    params(
        ("bucket" = String, Path, description = "Bucket name", example = "counts"),
        ("key" = String, Path, description = "Key (percent-encoded)", example = "count:acme"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 204, description = "Written"),
        (status = 400, description = "Key or value too large", body = ErrorBody),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn put_key(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (bucket, key) = two_segments(path).await?;
    let value = body.map_err(body_error)?.to_vec();
    write(&state, bucket, key, StateOp::Set(value)).await
}

/// Delete a key, committed at once (nothing happens when it has no value).
#[utoipa::path(delete, path = "/v1/kv/{bucket}/keys/{key}", tag = "kv",
    params(
        ("bucket" = String, Path, description = "Bucket name", example = "counts"),
        ("key" = String, Path, description = "Key (percent-encoded)", example = "count:acme"),
    ),
    responses(
        (status = 400, description = "Invalid bucket name or key", body = ErrorBody),
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete_key(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (bucket, key) = two_segments(path).await?;
    write(&state, bucket, key, StateOp::Delete).await
}

async fn write(
    state: &AppState,
    bucket: String,
    key: String,
    op: StateOp,
) -> Result<StatusCode, ApiError> {
    let write = StateWrite {
        bucket,
        key,
        op,
        expect: None,
    };
    state.store.kv_write(vec![write]).await?;
    Ok(StatusCode::NO_CONTENT)
}
