//! Who may do what: API tokens (generated, hashed, verified in constant time), their scopes, and
//! the scope each request needs. The tokens themselves are kept by the store; this module keeps
//! an in-memory copy so a request costs one hash, not a query.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{self, Store, TokenRecord};

/// What a token may do. `admin` may do everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything, including queues and tokens.
    Admin,
    /// Upload, invoke, roll back and delete functions; set triggers.
    Deploy,
    /// Enqueue, to every queue or only to the named ones.
    Produce(Option<String>),
    /// Stats, peek, invocations and logs, metrics.
    Read,
    /// Receive and settle by receipt (pull consumers), from every queue or only the named ones.
    Consume(Option<String>),
}

impl Scope {
    /// Parses `admin`, `deploy`, `read`, `produce`, `produce:QUEUE`, `consume` or
    /// `consume:QUEUE`.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let unknown = || {
            format!(
                "unknown scope `{text}`; use admin, deploy, read, produce, produce:QUEUE, \
                 consume or consume:QUEUE"
            )
        };
        let queue = |name: &str| {
            store::validate_queue_name(name)
                .map(|()| name.to_owned())
                .map_err(|_| unknown())
        };
        match text {
            "admin" => Ok(Scope::Admin),
            "deploy" => Ok(Scope::Deploy),
            "read" => Ok(Scope::Read),
            "produce" => Ok(Scope::Produce(None)),
            "consume" => Ok(Scope::Consume(None)),
            other => {
                if let Some(name) = other.strip_prefix("produce:") {
                    Ok(Scope::Produce(Some(queue(name)?)))
                } else if let Some(name) = other.strip_prefix("consume:") {
                    Ok(Scope::Consume(Some(queue(name)?)))
                } else {
                    Err(unknown())
                }
            }
        }
    }
}

/// What one request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing: liveness, readiness and the API description.
    Nothing,
    Admin,
    Deploy,
    Produce(String),
    Consume(String),
    Read,
    /// Any valid token (routes that do not exist, so their absence is not revealed).
    AnyToken,
}

impl Need {
    /// The scope a request needs, from its method and path alone: SECURITY.md's table.
    ///
    /// Only `GET` and `HEAD` (which axum answers with the `GET` handler) read, and only on the
    /// routes that serve `GET`. Every other method, however it is spelled, and every path
    /// under a resource that matches no route, needs the resource's write scope, so nothing
    /// unserved is answered (405 or 404) to a token that could not write there.
    pub fn of(method: &axum::http::Method, path: &str) -> Need {
        use axum::http::Method;
        let reads = *method == Method::GET || *method == Method::HEAD;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["healthz"] | ["readyz"] | ["openapi.json"] => Need::Nothing,
            // The console's page and assets: its API calls carry the token.
            ["ui", ..] if reads => Need::Nothing,
            ["v1", "tokens", "self"] if reads => Need::AnyToken,
            ["metrics"] if reads => Need::Read,
            ["metrics"] => Need::Admin,
            ["v1", "tokens", ..] => Need::Admin,
            ["v1", "series"] if reads => Need::Read,
            ["v1", "series", ..] => Need::Admin,
            ["v1", "queues"]
            | ["v1", "queues", _]
            | [
                "v1",
                "queues",
                _,
                "messages" | "series" | "dead-letter-reasons",
            ] if reads => Need::Read,
            ["v1", "queues", queue, "messages"] | ["v1", "queues", queue, "messages", "batch"]
                if *method == Method::POST =>
            {
                Need::Produce((*queue).to_owned())
            }
            [
                "v1",
                "queues",
                queue,
                "messages",
                "receive" | "ack" | "retry" | "dead-letter" | "extend",
            ] if *method == Method::POST => Need::Consume((*queue).to_owned()),
            ["v1", "queues", ..] => Need::Admin,
            // The handler checks `read` or `produce` to the answered message's queue, which
            // only the reply names.
            ["v1", "replies", _] if reads => Need::AnyToken,
            ["v1", "replies", ..] => Need::Admin,
            ["v1", "functions"]
            | ["v1", "functions", _]
            | ["v1", "functions", _, "invocations"]
            | ["v1", "functions", _, "invocations", "stream" | "stats"]
                if reads =>
            {
                Need::Read
            }
            ["v1", "functions", ..] => Need::Deploy,
            ["v1", "schedules"] | ["v1", "schedules", _] if reads => Need::Read,
            ["v1", "schedules", ..] => Need::Admin,
            ["v1", "topics"] | ["v1", "topics", _] if reads => Need::Read,
            // `produce:NAME` covers the queue or the topic of that name.
            ["v1", "topics", topic, "messages"] | ["v1", "topics", topic, "messages", "batch"]
                if *method == Method::POST =>
            {
                Need::Produce((*topic).to_owned())
            }
            ["v1", "topics", ..] => Need::Admin,
            ["v1", "kv"]
            | ["v1", "kv", _]
            | ["v1", "kv", _, "keys"]
            | ["v1", "kv", _, "keys", _]
                if reads =>
            {
                Need::Read
            }
            ["v1", "kv", ..] => Need::Deploy,
            _ => Need::AnyToken,
        }
    }

    pub fn satisfied_by(&self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|scope| match (self, scope) {
            (_, Scope::Admin) => true,
            (Need::Nothing | Need::AnyToken, _) => true,
            (Need::Deploy, Scope::Deploy) => true,
            (Need::Read, Scope::Read | Scope::Deploy) => true,
            (Need::Produce(_), Scope::Produce(None)) => true,
            (Need::Produce(queue), Scope::Produce(Some(allowed))) => queue == allowed,
            (Need::Consume(_), Scope::Consume(None)) => true,
            (Need::Consume(queue), Scope::Consume(Some(allowed))) => queue == allowed,
            _ => false,
        })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not valid: 401.
    Unauthenticated,
    /// A valid token without the scope: 403.
    Forbidden,
}

/// A token as shown once, at creation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The secret: shown now and never again.
    pub token: String,
    /// With `sqs`: the access key id SQS clients sign with (AWS Signature Version 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqs_access_key_id: Option<String>,
    /// With `sqs`: the secret access key that goes with it, shown now and never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqs_secret_access_key: Option<String>,
}

/// What the SQS endpoint needs to verify a signature and authorize the request.
#[derive(Debug, Clone)]
pub struct SqsCredential {
    pub token_id: String,
    pub secret: String,
    pub scopes: Vec<Scope>,
}

/// Access key ids are the token's id behind this prefix, so a signed request names its token.
const SQS_KEY_PREFIX: &str = "SLUICE";

/// The SQS access key id of token `id`.
pub fn sqs_access_key_id(id: &str) -> String {
    format!("{SQS_KEY_PREFIX}{}", id.to_ascii_uppercase())
}

struct Known {
    hash: [u8; 32],
    name: String,
    scope_names: Vec<String>,
    scopes: Vec<Scope>,
    sqs_secret: Option<String>,
}

/// Who a valid token is: what `GET /v1/tokens/self` answers, so a client (the console) can
/// offer only what the token may do.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
}

/// Verifies tokens against the stored ones; cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    store: Store,
    tokens: Arc<RwLock<HashMap<String, Known>>>,
}

/// Id of the token given through `SLUICE_ADMIN_TOKEN`, whatever its shape.
const BOOTSTRAP_ID: &str = "bootstrap";

impl Authorizer {
    /// Loads the stored tokens. With `admin_token`, makes sure it is a valid admin token; with
    /// none and no token stored, creates an admin token and returns it to be shown once.
    pub async fn load(
        store: Store,
        admin_token: Option<&str>,
    ) -> Result<(Authorizer, Option<NewToken>), store::Error> {
        let auth = Authorizer {
            store,
            tokens: Arc::new(RwLock::new(HashMap::new())),
        };
        let mut stored = auth.store.list_tokens().await?;
        let mut created = None;
        if let Some(secret) = admin_token {
            let hash = hex::encode(Sha256::digest(secret.as_bytes()));
            if let Some(old) = stored.iter().find(|t| t.id == BOOTSTRAP_ID)
                && old.hash != hash
            {
                auth.store.delete_token(BOOTSTRAP_ID).await?;
                stored.retain(|t| t.id != BOOTSTRAP_ID);
            }
            if !stored.iter().any(|t| t.id == BOOTSTRAP_ID) {
                let record = TokenRecord {
                    id: BOOTSTRAP_ID.to_owned(),
                    name: "from SLUICE_ADMIN_TOKEN".to_owned(),
                    hash,
                    scopes: vec!["admin".to_owned()],
                    created_at_ms: auth.store.now_ms(),
                    sqs_secret: None,
                };
                match auth.store.add_token(record.clone()).await {
                    Ok(()) => stored.push(record),
                    // Another host sharing the store added it at the same moment.
                    Err(store::Error::InvalidSettings(_)) => {
                        stored = auth.store.list_tokens().await?;
                    }
                    Err(e) => return Err(e),
                }
            }
        } else if stored.is_empty() {
            created = Some(
                auth.create("initial admin", vec!["admin".to_owned()], false)
                    .await?,
            );
            stored = auth.store.list_tokens().await?;
        }
        for record in stored {
            auth.remember(&record);
        }
        Ok((auth, created))
    }

    /// Creates a token with `scopes` (already validated with [`Scope::parse`]); with `sqs`, an
    /// SQS access key pair too.
    pub async fn create(
        &self,
        name: &str,
        scopes: Vec<String>,
        sqs: bool,
    ) -> Result<NewToken, store::Error> {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        let id = hex::encode(id);
        let token = format!("sluice_{id}_{}", hex::encode(secret));
        let sqs_secret = sqs.then(|| {
            let mut key = [0u8; 30];
            rand::rng().fill_bytes(&mut key);
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
        });
        let record = TokenRecord {
            id: id.clone(),
            name: name.to_owned(),
            hash: hex::encode(Sha256::digest(token.as_bytes())),
            scopes: scopes.clone(),
            created_at_ms: self.store.now_ms(),
            sqs_secret: sqs_secret.clone(),
        };
        self.store.add_token(record.clone()).await?;
        self.remember(&record);
        Ok(NewToken {
            sqs_access_key_id: sqs.then(|| sqs_access_key_id(&id)),
            sqs_secret_access_key: sqs_secret,
            id,
            name: name.to_owned(),
            scopes,
            token,
        })
    }

    pub async fn list(&self) -> Result<Vec<TokenRecord>, store::Error> {
        self.store.list_tokens().await
    }

    pub async fn revoke(&self, id: &str) -> Result<(), store::Error> {
        self.store.delete_token(id).await?;
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(())
    }

    /// The valid token `bearer` is, if it is one.
    pub fn identify(&self, bearer: Option<&str>) -> Option<Identity> {
        let token = bearer?;
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let (id, known) = find(&tokens, token)?;
        Some(Identity {
            id: id.to_owned(),
            name: known.name.clone(),
            scopes: known.scope_names.clone(),
        })
    }

    /// Keeps the known tokens in step with the store: tokens created or revoked through any
    /// host sharing it take effect here too. The host runs it as one of its tasks; it ends
    /// with `shutdown`.
    pub fn watch(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut changes = self.store.events().subscribe();
        let this = self.clone();
        async move {
            loop {
                let change = tokio::select! {
                    change = changes.recv() => change,
                    () = shutdown.cancelled() => return,
                };
                match change {
                    Ok(store::CatalogChange::Tokens | store::CatalogChange::Everything)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(err) = this.reload().await {
                            tracing::warn!(%err, "cannot reload tokens");
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }

    /// Replaces the known tokens with the stored ones.
    async fn reload(&self) -> Result<(), store::Error> {
        let stored = self.store.list_tokens().await?;
        let fresh: HashMap<String, Known> = stored.iter().filter_map(known).collect();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Checks a bearer token (if any) against what the request needs.
    pub fn check(&self, bearer: Option<&str>, need: &Need) -> Result<(), Denied> {
        if *need == Need::Nothing {
            return Ok(());
        }
        let token = bearer.ok_or(Denied::Unauthenticated)?;
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let (_, known) = find(&tokens, token).ok_or(Denied::Unauthenticated)?;
        if need.satisfied_by(&known.scopes) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }

    /// The token an SQS access key id names, if it is a token issued with `sqs`.
    pub fn sqs_credential(&self, access_key_id: &str) -> Option<SqsCredential> {
        let id = access_key_id
            .strip_prefix(SQS_KEY_PREFIX)?
            .to_ascii_lowercase();
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let known = tokens.get(&id)?;
        Some(SqsCredential {
            token_id: id,
            secret: known.sqs_secret.clone()?,
            scopes: known.scopes.clone(),
        })
    }

    fn remember(&self, record: &TokenRecord) {
        if let Some((id, known)) = known(record) {
            self.tokens
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, known);
        }
    }
}

/// The known token `token` is, if it is one (its hash compared in constant time).
fn find<'a>(tokens: &'a HashMap<String, Known>, token: &str) -> Option<(&'a str, &'a Known)> {
    // Tokens we issue carry their id (`sluice_<id>_<secret>`); any other shape can only be the
    // bootstrap token.
    let id = token
        .strip_prefix("sluice_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .unwrap_or(BOOTSTRAP_ID);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let (id, known) = tokens.get_key_value(id)?;
    bool::from(known.hash.ct_eq(&hash)).then_some((id.as_str(), known))
}

/// A stored token as checked: its hash as bytes, its name and its scopes (as given and parsed).
fn known(record: &TokenRecord) -> Option<(String, Known)> {
    let Ok(bytes) = hex::decode(&record.hash) else {
        tracing::warn!(id = %record.id, "token with an unreadable hash ignored");
        return None;
    };
    let hash = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
    let scopes = record
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .collect();
    Some((
        record.id.clone(),
        Known {
            hash,
            name: record.name.clone(),
            scope_names: record.scopes.clone(),
            scopes,
            sqs_secret: record.sqs_secret.clone(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn scopes_parse_and_reject_unknown_ones() {
        assert_eq!(Scope::parse("admin"), Ok(Scope::Admin));
        assert_eq!(
            Scope::parse("produce:orders"),
            Ok(Scope::Produce(Some("orders".into())))
        );
        assert!(Scope::parse("produce:bad name").is_err());
        assert!(Scope::parse("root").unwrap_err().contains("admin, deploy"));
    }

    #[test]
    fn routes_need_the_documented_scopes() {
        assert_eq!(Need::of(&Method::GET, "/healthz"), Need::Nothing);
        assert_eq!(Need::of(&Method::GET, "/metrics"), Need::Read);
        assert_eq!(Need::of(&Method::HEAD, "/metrics"), Need::Read);
        assert_eq!(Need::of(&Method::POST, "/metrics"), Need::Admin);
        let lower_get = Method::from_bytes(b"get").unwrap();
        assert_eq!(Need::of(&lower_get, "/metrics"), Need::Admin);
        assert_eq!(Need::of(&lower_get, "/v1/queues"), Need::Admin);
        assert_eq!(Need::of(&Method::HEAD, "/v1/queues/q/messages"), Need::Read);
        assert_eq!(Need::of(&Method::OPTIONS, "/v1/functions"), Need::Deploy);
        assert_eq!(Need::of(&Method::GET, "/v1/tokens"), Need::Admin);
        assert_eq!(
            Need::of(&Method::GET, "/v1/functions/f/rollback"),
            Need::Deploy
        );
        assert_eq!(
            Need::of(&Method::HEAD, "/v1/queues/q/messages/batch"),
            Need::Admin
        );
        assert_eq!(
            Need::of(&Method::POST, "/v1/queues/q/messages"),
            Need::Produce("q".into())
        );
        assert_eq!(
            Need::of(&Method::POST, "/v1/queues/q/messages/batch"),
            Need::Produce("q".into())
        );
        assert_eq!(Need::of(&Method::GET, "/v1/queues/q/messages"), Need::Read);
        assert_eq!(
            Need::of(&Method::GET, "/v1/queues/q/dead-letter-reasons"),
            Need::Read
        );
        assert_eq!(
            Need::of(&Method::POST, "/v1/queues/q/dead-letter-reasons"),
            Need::Admin
        );
        assert_eq!(Need::of(&Method::GET, "/v1/series"), Need::Read);
        assert_eq!(Need::of(&Method::POST, "/v1/series"), Need::Admin);
        assert_eq!(Need::of(&Method::POST, "/v1/queues"), Need::Admin);
        assert_eq!(Need::of(&Method::POST, "/v1/queues/q/purge"), Need::Admin);
        assert_eq!(Need::of(&Method::PUT, "/v1/functions/f"), Need::Deploy);
        assert_eq!(
            Need::of(&Method::POST, "/v1/functions/f/invoke"),
            Need::Deploy
        );
        assert_eq!(
            Need::of(&Method::GET, "/v1/functions/f/invocations"),
            Need::Read
        );
        assert_eq!(
            Need::of(&Method::GET, "/v1/functions/f/invocations/stats"),
            Need::Read
        );
        assert_eq!(Need::of(&Method::POST, "/v1/tokens"), Need::Admin);
        assert_eq!(Need::of(&Method::GET, "/v1/tokens/self"), Need::AnyToken);
        assert_eq!(Need::of(&Method::GET, "/ui"), Need::Nothing);
        assert_eq!(Need::of(&Method::GET, "/ui/app.js"), Need::Nothing);
        assert_eq!(Need::of(&Method::POST, "/ui"), Need::AnyToken);
        assert_eq!(Need::of(&Method::GET, "/nope"), Need::AnyToken);
        assert_eq!(Need::of(&Method::GET, "/v1/kv"), Need::Read);
        assert_eq!(Need::of(&Method::GET, "/v1/kv/b/keys"), Need::Read);
        assert_eq!(Need::of(&Method::HEAD, "/v1/kv/b/keys/k"), Need::Read);
        assert_eq!(Need::of(&Method::PUT, "/v1/kv/b/keys/k"), Need::Deploy);
        assert_eq!(Need::of(&Method::GET, "/v1/kv/b"), Need::Read);
        // No route serves a GET deeper than a key: a token that could not change it learns
        // nothing.
        assert_eq!(Need::of(&Method::GET, "/v1/kv/b/keys/k/more"), Need::Deploy);
        assert_eq!(Need::of(&lower_get, "/v1/kv"), Need::Deploy);
    }

    #[test]
    fn scopes_satisfy_needs() {
        let produce_orders = [Scope::Produce(Some("orders".into()))];
        assert!(Need::Produce("orders".into()).satisfied_by(&produce_orders));
        assert!(!Need::Produce("other".into()).satisfied_by(&produce_orders));
        assert!(!Need::Read.satisfied_by(&produce_orders));
        assert!(Need::Read.satisfied_by(&[Scope::Deploy]));
        assert!(!Need::Deploy.satisfied_by(&[Scope::Read]));
        assert!(!Need::Admin.satisfied_by(&[Scope::Deploy, Scope::Read, Scope::Produce(None)]));
        assert!(Need::Admin.satisfied_by(&[Scope::Admin]));
    }
}
