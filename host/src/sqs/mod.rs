//! The SQS-compatible endpoint (`sluice serve --sqs-listen`): a second listener of the same
//! host that speaks Amazon SQS's JSON and query protocols, so boto3, the AWS CLI and the AWS
//! SDKs work against Sluice queues. Requests are verified with AWS Signature Version 4 against
//! the SQS key pair of a Sluice token, whose scopes apply as on the main API. Queues are
//! ordinary Sluice queues; receives, deletes and visibility changes go through [`crate::pull`],
//! so receipt handles are Sluice receipts under the same delivery contract.

mod error;
pub(crate) mod meta;
mod ops;
mod sigv4;
mod wire;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::api::AppState;
use crate::auth::{Need, SqsCredential};
pub use error::{Code, SqsError};
use wire::Protocol;

/// The account id in queue URLs and ARNs (there is one account: the host).
pub const ACCOUNT: &str = "000000000000";

#[derive(Clone)]
struct Endpoint {
    app: AppState,
    /// The listener's address, for queue URLs when a request names no `Host`.
    addr: SocketAddr,
}

/// The whole SQS endpoint: every path and method reaches one handler, which reads the
/// operation from the request as SQS clients send it.
pub fn router(app: AppState, addr: SocketAddr) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Endpoint { app, addr })
}

/// What one request asked, once read and verified.
struct Call {
    op: String,
    params: Map<String, Value>,
    /// The request's path: the query protocol may address a queue by its URL's path.
    path: String,
    /// `http://HOST` for queue URLs.
    base: String,
    region: String,
    credential: SqsCredential,
}

async fn handle(State(endpoint): State<Endpoint>, request: Request) -> Response {
    let request_id = uuid::Uuid::now_v7().to_string();
    let protocol = if request.headers().contains_key("x-amz-target") {
        Protocol::Json
    } else {
        Protocol::Query
    };
    let answer = match read(&endpoint, request).await {
        Ok(call) => {
            let op = call.op.clone();
            ops::run(&endpoint.app, call)
                .await
                .map(|result| (op, result))
        }
        Err(err) => Err(err),
    };
    match answer {
        Ok((op, result)) => success(protocol, &op, result, &request_id),
        Err(err) => failure(protocol, &err, &request_id),
    }
}

/// Reads the body, verifies the signature and finds the operation and its parameters.
async fn read(endpoint: &Endpoint, request: Request) -> Result<Call, SqsError> {
    let (parts, body) = request.into_parts();
    // The front door's body guard limits, budgets and times the body as it is read here,
    // before the signature over it can be checked.
    let limit = endpoint.app.limits.max_body_bytes;
    let body = crate::api::read_to_bytes(body, limit)
        .await
        .map_err(|err| SqsError::unreadable_body(&err))?;
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let auth = endpoint.app.auth.clone();
    let mut credential = None;
    let signed = sigv4::verify(
        &sigv4::Request {
            method: parts.method.as_str(),
            path: &path,
            query: &query,
            headers: &parts.headers,
            body: &body,
        },
        endpoint.app.store.now_ms(),
        |key| {
            credential = auth.sqs_credential(key);
            credential.as_ref().map(|c| c.secret.clone())
        },
    )
    .map_err(|err| {
        let code = match err {
            sigv4::SigError::Missing(_) => Code::MissingAuthenticationToken,
            sigv4::SigError::Incomplete(_) => Code::IncompleteSignature,
            sigv4::SigError::UnknownKey(_) => Code::InvalidClientTokenId,
            sigv4::SigError::Mismatch(_) => Code::SignatureDoesNotMatch,
        };
        SqsError::new(code, err.to_string())
    })?;
    let credential = credential.ok_or_else(|| {
        SqsError::new(Code::InvalidClientTokenId, "the access key id is not known")
    })?;
    let (op, params) = if let Some(target) = parts.headers.get("x-amz-target") {
        let target = target.to_str().unwrap_or_default();
        let op = target.strip_prefix("AmazonSQS.").ok_or_else(|| {
            SqsError::new(
                Code::InvalidAction,
                format!("X-Amz-Target `{target}` is not an SQS operation (AmazonSQS.<Operation>)"),
            )
        })?;
        let params = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(SqsError::invalid(
                        "the body of a JSON-protocol request must be a JSON object",
                    ));
                }
            }
        };
        (op.to_owned(), params)
    } else {
        let form: &[u8] = if body.is_empty() {
            query.as_bytes()
        } else {
            &body
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(form).map_err(|_| {
            SqsError::invalid("the request is neither JSON (X-Amz-Target) nor a form of Action=...")
        })?;
        let mut params = wire::params_from_query(pairs);
        let op = match params.remove("Action") {
            Some(Value::String(op)) => op,
            _ => {
                return Err(SqsError::new(
                    Code::MissingParameter,
                    "The request must contain the parameter Action (or use the JSON protocol \
                     with X-Amz-Target: AmazonSQS.<Operation>).",
                ));
            }
        };
        params.remove("Version");
        (op, params)
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| endpoint.addr.to_string());
    Ok(Call {
        op,
        params,
        path,
        base: format!("http://{host}"),
        region: signed.region,
        credential,
    })
}

/// Refuses a call whose token lacks the scope `need`.
fn authorize(credential: &SqsCredential, need: &Need) -> Result<(), SqsError> {
    if need.satisfied_by(&credential.scopes) {
        return Ok(());
    }
    let scope = match need {
        Need::Admin => "admin".to_owned(),
        Need::Produce(q) => format!("produce or produce:{q}"),
        Need::Consume(q) => format!("consume or consume:{q}"),
        Need::Read => "read".to_owned(),
        _ => "admin".to_owned(),
    };
    Err(SqsError::new(
        Code::AccessDenied,
        format!(
            "token `{}` lacks the scope this operation needs ({scope})",
            credential.token_id
        ),
    ))
}

fn success(protocol: Protocol, op: &str, result: Map<String, Value>, request_id: &str) -> Response {
    let (content_type, body) = match protocol {
        Protocol::Json => (
            "application/x-amz-json-1.0",
            Value::Object(result).to_string(),
        ),
        Protocol::Query => ("text/xml", wire::xml_answer(op, &result, request_id)),
    };
    respond(StatusCode::OK, content_type, body, request_id, None)
}

fn failure(protocol: Protocol, err: &SqsError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match protocol {
        Protocol::Json => {
            let body = serde_json::json!({
                "__type": format!("com.amazonaws.sqs#{}", err.code.json_type()),
                "message": err.message,
            });
            let query_error = format!("{};{}", err.code.query_code(), err.code.fault());
            respond(
                status,
                "application/x-amz-json-1.0",
                body.to_string(),
                request_id,
                Some(query_error),
            )
        }
        Protocol::Query => respond(
            status,
            "text/xml",
            wire::xml_error(err.code, &err.message, request_id),
            request_id,
            None,
        ),
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    request_id: &str,
    query_error: Option<String>,
) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(value) = query_error.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert("x-amzn-query-error", value);
    }
    response
}
