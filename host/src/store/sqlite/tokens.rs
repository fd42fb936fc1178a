//! API tokens at rest: each token's id, name, scopes, the hash of its secret and, for tokens
//! issued with `sqs`, the SQS secret access key (kept as is: SigV4 verification needs it). What a scope
//! allows is decided by `auth`, not here.

use rusqlite::{Connection, params};

use super::writer::{Tx, int};
use super::{Error, Result, TokenRecord, sql};

pub fn insert(tx: &mut Tx<'_>, token: &TokenRecord) -> Result<()> {
    let scopes =
        serde_json::to_string(&token.scopes).map_err(|e| Error::Unavailable(e.to_string()))?;
    let inserted = tx.conn.prepare_cached(sql::INSERT_TOKEN)?.execute(params![
        token.id,
        token.name,
        token.hash,
        scopes,
        int(token.created_at_ms),
        token.sqs_secret
    ]);
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::InvalidSettings(format!(
                "a token with id `{}` already exists",
                token.id
            )))
        }
        other => other.map(|_| ()).map_err(Error::from),
    }
}

pub fn list(conn: &Connection) -> Result<Vec<TokenRecord>> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, String, String, String, i64, Option<String>)> = conn
        .prepare_cached(sql::ALL_TOKENS)?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(id, name, hash, scopes, created_at, sqs_secret)| {
            let scopes = serde_json::from_str(&scopes).map_err(|e| {
                Error::Unavailable(format!("scopes of token `{id}` are unreadable: {e}"))
            })?;
            Ok(TokenRecord {
                id,
                name,
                hash,
                scopes,
                created_at_ms: u64::try_from(created_at).unwrap_or(0),
                sqs_secret,
            })
        })
        .collect()
}

pub fn delete(tx: &mut Tx<'_>, id: &str) -> Result<()> {
    let deleted = tx
        .conn
        .prepare_cached(sql::DELETE_TOKEN)?
        .execute(params![id])?;
    if deleted == 0 {
        return Err(Error::TokenNotFound(id.to_owned()));
    }
    Ok(())
}
