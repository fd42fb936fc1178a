//! Authentication for every route (the bearer token and the scope the route needs) and the
//! token routes: create, list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, body_error, parse_json};
use crate::auth::{Denied, Need, NewToken, Scope};

/// Refuses requests without a valid token (401) or without the scope their route needs (403),
/// before routing, so neither answer reveals whether a queue or function exists.
pub async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let need = Need::of(request.method(), request.uri().path());
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match state.auth.check(bearer, &need) {
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
                Need::Read => "read".to_owned(),
                Need::Nothing | Need::AnyToken => "any".to_owned(),
            }
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    #[serde(default)]
    name: String,
    scopes: Vec<String>,
}

/// `POST /v1/tokens`: the secret is in this answer and nowhere else.
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
    let token = state.auth.create(&request.name, request.scopes).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "tokens": state.auth.list().await? })))
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
