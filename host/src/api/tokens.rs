//! Authentication for every route (the bearer token and the scope the route needs) and the
//! token routes: create, list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::TokenInfo;
use super::{ApiError, AppState, ErrorBody, Segment, body_error, parse_json};
use crate::auth::{Denied, Identity, Need, NewToken, Scope};

/// Refuses requests without a valid token (401) or without the scope their route needs (403),
/// before routing, so neither answer reveals whether a queue or function exists.
pub async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let need = Need::of(request.method(), request.uri().path());
    match state.auth.check(bearer(request.headers()), &need) {
        Ok(()) => Ok(next.run(request).await),
        Err(Denied::Unauthenticated) => Err(ApiError::Unauthorized(
            "missing or invalid token: send `Authorization: Bearer TOKEN` (create one with `sluice token create`)".into(),
        )),
        Err(Denied::Forbidden) => Err(ApiError::Forbidden(format!(
            "this token lacks the scope this request needs ({})",
            match need {
                Need::Admin => "admin".to_owned(),
                Need::Deploy => "deploy".to_owned(),
                Need::Produce(queue) => format!("produce or produce:{queue}"),
                Need::Consume(queue) => format!("consume or consume:{queue}"),
                Need::Read => "read".to_owned(),
                Need::Nothing | Need::AnyToken => "any".to_owned(),
            }
        ))),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    /// For people; at most 200 bytes.
    #[serde(default)]
    name: String,
    /// `admin`, `deploy`, `read`, `produce`, `produce:QUEUE`, `consume` or `consume:QUEUE`; at
    /// least one.
    scopes: Vec<String>,
    /// Also issue an SQS access key pair (`sqs_access_key_id`, `sqs_secret_access_key`) for
    /// the SQS endpoint (`sluice serve --sqs-listen`), with the same scopes.
    #[serde(default)]
    sqs: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenInfo>,
}

/// Create a token: the secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    request_body(content = CreateToken, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `token` is the secret", body = NewToken),
        (status = 400, description = "Invalid JSON, name or scope", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let body = body.map_err(body_error)?;
    let request: CreateToken = parse_json(&body)?;
    if request.scopes.is_empty() {
        return Err(ApiError::BadRequest(
            "`scopes` is empty: give at least one".into(),
        ));
    }
    for scope in &request.scopes {
        Scope::parse(scope).map_err(ApiError::BadRequest)?;
    }
    if request.name.len() > 200 {
        return Err(ApiError::BadRequest(
            "`name` is longer than 200 bytes".into(),
        ));
    }
    let token = state
        .auth
        .create(&request.name, request.scopes, request.sqs)
        .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// List tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses(
        (status = 200, description = "Every token", body = TokenList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.auth.list().await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(TokenInfo::from).collect(),
    }))
}

/// The token this request carries: its id, name and scopes (never its secret).
#[utoipa::path(get, path = "/v1/tokens/self", tag = "tokens",
    responses(
        (status = 200, description = "The calling token", body = Identity),
        (status = 401, description = "No valid token", body = ErrorBody),
    ))]
pub async fn whoami(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Identity>, ApiError> {
    state
        .auth
        .identify(bearer(&headers))
        .map(Json)
        .ok_or_else(|| ApiError::Unauthorized("missing or invalid token".into()))
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Revoke a token; requests with it fail from now on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
