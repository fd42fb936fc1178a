//! Function routes: upload a component as a new version, list, show, delete, roll back, and
//! invoke the active version on a given batch without committing anything.
//!
//! A function's environment values are secrets: they go in with an upload and never come out.
//! Every answer shows a function through [`FunctionView`], which names the variables only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::messages::{decode_attributes, decode_body};
use super::model::{Trigger, TriggerView};
use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json, parse_optional_json};
use crate::functions::{FunctionConfig, InvocationRecord};
use crate::store::{FunctionRecord, FunctionVersion, Message, TriggerRecord};

/// The query of an upload: the new version's config. Documents `config_from_query`, which
/// reads it by hand because `env` may repeat.
#[allow(dead_code)]
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// Wall-clock limit of one invocation (default 30000).
    timeout_ms: Option<u64>,
    /// Memory limit of one instance, at most 1024 (default 128).
    memory_mb: Option<u64>,
    /// `NAME=VALUE`, an environment variable the handler sees; may repeat. Values are
    /// write-only: answers name the variables, never their values.
    env: Option<Vec<String>>,
    /// Where the handler may send HTTP requests, as Spin writes it (`https://api.example.com`,
    /// `https://*.example.com:443`, `http://127.0.0.1:8080`); may repeat. Nowhere by default.
    allowed_outbound_host: Option<Vec<String>>,
    /// A key-value bucket the handler may open; may repeat. None by default.
    kv_bucket: Option<Vec<String>>,
    /// Outbound HTTP requests one invocation may have in flight at once (default 16).
    max_outbound_requests: Option<usize>,
    /// Response body bytes one outbound request may read (default 16777216).
    max_outbound_response_bytes: Option<u64>,
    /// From sending an outbound request to its response head, connecting included (default
    /// 10000).
    outbound_timeout_ms: Option<u64>,
    /// `true`: when the component and config equal the active version's, add no version and
    /// answer 200 with the function as it is (how `sluice apply` stays idempotent without
    /// reading secrets back).
    if_changed: Option<bool>,
}

/// Upload a component (`application/wasm`) as a new, active version of the function.
#[utoipa::path(put, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name"), UploadQuery),
    request_body(content = String, content_type = "application/wasm",
        description = "The component's bytes (`application/octet-stream` is accepted too); at most 64 MiB"),
    responses(
        (status = 200, description = "`if_changed=true` and nothing changed: no new version", body = FunctionView),
        (status = 201, description = "Uploaded; the new version is active", body = FunctionView),
        (status = 400, description = "Empty body, invalid name or config", body = ErrorBody),
        (status = 413, description = "Component too large", body = ErrorBody),
        (status = 415, description = "Content type is not `application/wasm`", body = ErrorBody),
        (status = 422, description = "Not a valid component for this host", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Segment(name): Segment,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<FunctionView>), ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or_default();
        if !(content_type.starts_with("application/wasm")
            || content_type.starts_with("application/octet-stream"))
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "upload the component as `application/wasm`, not `{content_type}`"
            )));
        }
    }
    let body = body.map_err(body_error)?;
    if body.len() > state.limits.max_function_bytes {
        return Err(ApiError::TooLarge(super::body::too_large(
            state.limits.max_function_bytes,
            "--max-function-bytes",
            Some(body.len() as u64),
        )));
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "empty body: send the component's bytes".into(),
        ));
    }
    let (config, if_changed) = config_from_query(query.as_deref().unwrap_or(""))?;
    if if_changed {
        let current = match state.functions.get(&name).await {
            Ok(record) => Some(record),
            Err(crate::functions::Error::Store(crate::store::Error::FunctionNotFound(_))) => None,
            Err(err) => return Err(err.into()),
        };
        if let Some(record) = current
            && is_active(&record, &hex::encode(Sha256::digest(&body)), &config)
        {
            return Ok((StatusCode::OK, Json(FunctionView::from_record(record)?)));
        }
    }
    let record = state.functions.upload(&name, body.to_vec(), config).await?;
    state.dispatcher.refresh(&name).await;
    Ok((
        StatusCode::CREATED,
        Json(FunctionView::from_record(record)?),
    ))
}

/// Whether the active version of `record` is the component `sha256` with `config`.
fn is_active(record: &FunctionRecord, sha256: &str, config: &FunctionConfig) -> bool {
    record.versions.iter().any(|version| {
        version.version == record.active_version
            && version.sha256 == sha256
            && serde_json::from_value::<FunctionConfig>(version.config.clone())
                .is_ok_and(|active| active == *config)
    })
}

/// Reads the function config and `if_changed` from the query string; `env` and
/// `allowed_outbound_host` and `kv_bucket` may repeat.
fn config_from_query(query: &str) -> Result<(FunctionConfig, bool), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let mut config = FunctionConfig::default();
    let mut if_changed = false;
    let number = |key: &str, value: &str| {
        value.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("`{key}` must be a whole number, got `{value}`"))
        })
    };
    for (key, value) in pairs {
        match key.as_str() {
            "timeout_ms" => config.timeout_ms = number(&key, &value)?,
            "memory_mb" => config.memory_mb = number(&key, &value)?,
            "max_sends" => config.max_sends = number(&key, &value)? as usize,
            "allowed_outbound_host" => config.allowed_outbound_hosts.push(value),
            "kv_bucket" => config.kv_buckets.push(value),
            "max_outbound_requests" => {
                config.max_outbound_requests = number(&key, &value)? as usize
            }
            "max_outbound_response_bytes" => {
                config.max_outbound_response_bytes = number(&key, &value)?
            }
            "outbound_timeout_ms" => config.outbound_timeout_ms = number(&key, &value)?,
            "env" => {
                let (name, value) = value.split_once('=').ok_or_else(|| {
                    ApiError::BadRequest(format!("`env` must be NAME=VALUE, got `{value}`"))
                })?;
                config.env.insert(name.to_owned(), value.to_owned());
            }
            "if_changed" => {
                if_changed = value.parse::<bool>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "`if_changed` must be true or false, got `{value}`"
                    ))
                })?;
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter `{other}`; expected timeout_ms, memory_mb, max_sends, env, \
                     allowed_outbound_host, kv_bucket, max_outbound_requests, \
                     max_outbound_response_bytes, outbound_timeout_ms or if_changed"
                )));
            }
        }
    }
    Ok((config, if_changed))
}

/// A function as every answer shows it: its versions and trigger, environment values left out.
#[derive(Serialize, ToSchema)]
pub struct FunctionView {
    name: String,
    active_version: u32,
    versions: Vec<VersionView>,
    trigger: Option<Trigger>,
}

/// One version of a function.
#[derive(Serialize, ToSchema)]
pub struct VersionView {
    version: u32,
    /// SHA-256 of the component's bytes, hex.
    sha256: String,
    size: u64,
    created_at_ms: u64,
    config: ConfigView,
}

/// A version's config. Environment values are secrets: only the names are shown.
#[derive(Serialize, ToSchema)]
pub struct ConfigView {
    /// The environment variables the handler sees, by name; their values are write-only.
    env_names: Vec<String>,
    timeout_ms: u64,
    memory_mb: u64,
    max_sends: usize,
    /// Where the handler may send HTTP requests; nowhere when empty.
    allowed_outbound_hosts: Vec<String>,
    max_outbound_requests: usize,
    max_outbound_response_bytes: u64,
    outbound_timeout_ms: u64,
    /// The key-value buckets the handler may open.
    kv_buckets: Vec<String>,
}

impl VersionView {
    fn from_version(version: FunctionVersion) -> Result<VersionView, ApiError> {
        let config: FunctionConfig = serde_json::from_value(version.config).map_err(|e| {
            ApiError::Internal(format!(
                "stored config of version {} is unreadable: {e}",
                version.version
            ))
        })?;
        Ok(VersionView {
            version: version.version,
            sha256: version.sha256,
            size: version.size,
            created_at_ms: version.created_at_ms,
            config: ConfigView {
                env_names: config.env.into_keys().collect(),
                timeout_ms: config.timeout_ms,
                memory_mb: config.memory_mb,
                max_sends: config.max_sends,
                allowed_outbound_hosts: config.allowed_outbound_hosts,
                max_outbound_requests: config.max_outbound_requests,
                max_outbound_response_bytes: config.max_outbound_response_bytes,
                outbound_timeout_ms: config.outbound_timeout_ms,
                kv_buckets: config.kv_buckets,
            },
        })
    }
}

fn versions(versions: Vec<FunctionVersion>) -> Result<Vec<VersionView>, ApiError> {
    versions
        .into_iter()
        .map(VersionView::from_version)
        .collect()
}

impl FunctionView {
    fn from_record(record: FunctionRecord) -> Result<FunctionView, ApiError> {
        Ok(FunctionView {
            name: record.name,
            active_version: record.active_version,
            versions: versions(record.versions)?,
            trigger: record.trigger.map(Trigger::from),
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct FunctionList {
    functions: Vec<FunctionView>,
}

/// A function with its versions (environment values left out) and what its trigger is doing.
#[derive(Serialize, ToSchema)]
pub struct FunctionDetails {
    name: String,
    active_version: u32,
    versions: Vec<VersionView>,
    trigger: Option<TriggerView>,
}

/// List functions with their versions and triggers.
#[utoipa::path(get, path = "/v1/functions", tag = "functions",
    responses(
        (status = 200, description = "Every function", body = FunctionList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<FunctionList>, ApiError> {
    let functions = state
        .functions
        .list()
        .await?
        .into_iter()
        .map(FunctionView::from_record)
        .collect::<Result<_, _>>()?;
    Ok(Json(FunctionList { functions }))
}

/// Show a function: its versions and its trigger's state.
#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 200, description = "The function", body = FunctionDetails),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<Json<FunctionDetails>, ApiError> {
    let record = state.functions.get(&name).await?;
    Ok(Json(FunctionDetails {
        name: record.name,
        active_version: record.active_version,
        versions: versions(record.versions)?,
        trigger: record.trigger.map(|t| state.dispatcher.status(t).into()),
    }))
}

/// Delete a function, its versions and its trigger.
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<StatusCode, ApiError> {
    state.functions.delete(&name).await?;
    state.dispatcher.stop(&name);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    /// The version to make active; the one before the active one when absent.
    version: Option<u32>,
}

/// Roll back to an earlier version.
#[utoipa::path(post, path = "/v1/functions/{name}/rollback", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = Option<RollbackRequest>, content_type = "application/json",
        description = "Optional; an empty body rolls back one version"),
    responses(
        (status = 200, description = "Rolled back", body = FunctionView),
        (status = 400, description = "Invalid JSON or path", body = ErrorBody),
        (status = 404, description = "No such function or version", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn rollback(
    State(state): State<AppState>,
    Segment(name): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FunctionView>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: RollbackRequest = parse_optional_json(&body)?;
    let record = state.functions.rollback(&name, request.version).await?;
    state.dispatcher.refresh(&name).await;
    Ok(Json(FunctionView::from_record(record)?))
}

/// One message of a dry run: at most one of `body` and `body_base64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InvokeMessage {
    id: Option<String>,
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    attributes: serde_json::Map<String, Value>,
    #[serde(default)]
    attempt: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InvokeRequest {
    /// The queue the messages pretend to come from.
    #[serde(default)]
    queue: Option<String>,
    messages: Vec<InvokeMessage>,
}

/// Run the active version on the given batch: a dry run that commits nothing and returns the
/// outcome, logs and sends.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = InvokeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The invocation, whatever its outcome", body = InvocationRecord),
        (status = 400, description = "Invalid JSON, message or path", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn invoke(
    State(state): State<AppState>,
    Segment(name): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InvocationRecord>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: InvokeRequest = parse_json(&body)?;
    if request.messages.len() > state.limits.max_batch_messages {
        return Err(ApiError::BadRequest(format!(
            "at most {} messages per invocation",
            state.limits.max_batch_messages
        )));
    }
    let queue = request.queue.unwrap_or_else(|| "invoke".to_owned());
    let now = state.store.now_ms();
    let batch = request
        .messages
        .into_iter()
        .enumerate()
        .map(|(index, m)| {
            let place = format!("messages[{index}]");
            let body = decode_body(m.body, m.body_base64, &place)?.unwrap_or_default();
            let attributes = decode_attributes(m.attributes, &place)?;
            Ok(Message {
                id: m.id.unwrap_or_else(|| format!("invoke-{}", index + 1)),
                queue: queue.clone(),
                body,
                attributes,
                attempt: m.attempt.unwrap_or(1),
                enqueued_at_ms: now,
                priority: crate::store::DEFAULT_PRIORITY,
                group: None,
                first_leased_at_ms: None,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(state.functions.invoke(&name, batch).await?))
}

/// A trigger as a client sends it; every field but `queue` has a default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    queue: String,
    /// 1 to 1000 (default 10).
    #[serde(default = "default_batch_size")]
    batch_size: u32,
    /// At most 300000 (default 0: run as soon as a message is there).
    #[serde(default)]
    max_wait_ms: u64,
    /// 1 to 1000 (default 4).
    #[serde(default = "default_concurrency")]
    max_concurrency: u32,
    #[serde(default)]
    paused: bool,
}

fn default_batch_size() -> u32 {
    10
}

fn default_concurrency() -> u32 {
    4
}

/// Bind the function to the queue it consumes (replacing its trigger).
#[utoipa::path(put, path = "/v1/functions/{name}/trigger", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = TriggerRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The trigger and its state", body = TriggerView),
        (status = 400, description = "Invalid JSON, settings or path", body = ErrorBody),
        (status = 404, description = "No such function or queue", body = ErrorBody),
        (status = 409, description = "The queue already has a consumer", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn put_trigger(
    State(state): State<AppState>,
    Segment(name): Segment,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TriggerView>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: TriggerRequest = parse_json(&body)?;
    if !(1..=1000).contains(&request.batch_size) {
        return Err(ApiError::BadRequest(
            "`batch_size` must be between 1 and 1000".into(),
        ));
    }
    if request.max_wait_ms > 5 * 60 * 1000 {
        return Err(ApiError::BadRequest(
            "`max_wait_ms` must be at most 300000 (5 minutes)".into(),
        ));
    }
    if !(1..=1000).contains(&request.max_concurrency) {
        return Err(ApiError::BadRequest(
            "`max_concurrency` must be between 1 and 1000".into(),
        ));
    }
    // One kind of consumer per queue: messages pull consumers hold must be settled (or their
    // visibility timeout pass) before a trigger takes the queue over.
    let bound = state
        .store
        .list_triggers()
        .await?
        .into_iter()
        .any(|t| t.queue == request.queue);
    if !bound {
        let in_flight = state.store.get_queue(&request.queue).await?.stats.in_flight;
        if in_flight > 0 {
            return Err(ApiError::Conflict(format!(
                "queue `{}` has {in_flight} message(s) received by pull consumers and not yet \
                 settled; a queue has one kind of consumer at a time: ack them (or let their \
                 visibility timeout pass), then bind the trigger",
                request.queue
            )));
        }
    }
    let record = TriggerRecord {
        function: name.clone(),
        queue: request.queue,
        batch_size: request.batch_size,
        max_wait_ms: request.max_wait_ms,
        max_concurrency: request.max_concurrency,
        paused: request.paused,
    };
    let record = state.store.put_trigger(record).await?;
    state.dispatcher.refresh(&name).await;
    Ok(Json(state.dispatcher.status(record).into()))
}

/// Stop consuming; in-flight batches still settle.
#[utoipa::path(delete, path = "/v1/functions/{name}/trigger", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses(
        (status = 204, description = "Unbound"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such function or trigger", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn delete_trigger(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<StatusCode, ApiError> {
    state.store.delete_trigger(&name).await?;
    state.dispatcher.stop(&name);
    Ok(StatusCode::NO_CONTENT)
}
