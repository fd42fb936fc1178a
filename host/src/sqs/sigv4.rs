//! AWS Signature Version 4, verified: rebuilds the canonical request and the string to sign from
//! what arrived, derives the signing key from the secret the access key id names, and compares
//! signatures in constant time. Only the `Authorization` header form is accepted (no presigned
//! URLs), the payload must be signed, and the request time must be within 15 minutes of ours.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's time may be from ours (AWS's own limit).
const MAX_SKEW_MS: u64 = 15 * 60 * 1000;

/// Why a signature was refused; each maps to the SQS error code clients expect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    UnknownKey(String),
    #[error("{0}")]
    Mismatch(String),
}

/// What a verified request was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub region: String,
}

/// The parts of a request that the signature covers.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as it arrived (still percent-encoded).
    pub path: &'a str,
    /// The query string as it arrived, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let incomplete = |what: &str| {
        SigError::Incomplete(format!(
            "the Authorization header is not a Signature Version 4 header ({what}); sign \
             requests with an AWS SDK or CLI using the access key id and secret from \
             `sluice token create --sqs`"
        ))
    };
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| incomplete("it must start with AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("no Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("no Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(incomplete(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Verifies `request`'s signature at `now_ms`; `secret_of` gives the secret access key of an
/// access key id, if it is one.
pub fn verify(
    request: &Request<'_>,
    now_ms: u64,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<Signed, SigError> {
    let header = request
        .headers
        .get("authorization")
        .ok_or_else(|| {
            SigError::Missing(
                "the request is not signed: sign it (AWS Signature Version 4) with the access \
                 key id and secret from `sluice token create --sqs`"
                    .into(),
            )
        })?
        .to_str()
        .map_err(|_| SigError::Incomplete("the Authorization header is not ASCII".into()))?;
    let auth = parse_authorization(header)?;
    if auth.service != "sqs" {
        return Err(SigError::Mismatch(format!(
            "the credential scope names service `{}`; this endpoint is `sqs`",
            auth.service
        )));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(SigError::Incomplete(format!(
                "SignedHeaders must include `{required}`"
            )));
        }
    }
    let amz_date = header_text(request.headers, "x-amz-date")
        .ok_or_else(|| SigError::Incomplete("the X-Amz-Date header is missing".into()))?;
    let at_ms = parse_amz_date(&amz_date).ok_or_else(|| {
        SigError::Incomplete(format!(
            "X-Amz-Date `{amz_date}` is not a time like 20260101T120000Z"
        ))
    })?;
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(SigError::Mismatch(format!(
            "the credential scope's date `{}` is not the day of X-Amz-Date `{amz_date}`",
            auth.date
        )));
    }
    if at_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(SigError::Mismatch(format!(
            "Signature expired: the request was signed at {amz_date}, more than 15 minutes \
             from the server's time; check the client's clock"
        )));
    }
    let secret = secret_of(auth.access_key_id).ok_or_else(|| {
        SigError::UnknownKey(format!(
            "the access key id `{}` is not one this server issued (or its token was revoked); \
             create one with `sluice token create --sqs`",
            auth.access_key_id
        ))
    })?;
    let body_hash = hex::encode(Sha256::digest(request.body));
    if let Some(claimed) = header_text(request.headers, "x-amz-content-sha256")
        && claimed != body_hash
    {
        return Err(SigError::Mismatch(
            "X-Amz-Content-SHA256 is not the SHA-256 of the body (unsigned payloads are not \
             accepted)"
                .into(),
        ));
    }
    let canonical = canonical_request(request, &auth.signed_headers, &body_hash);
    let scope = format!("{}/{}/sqs/aws4_request", auth.date, auth.region);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&secret, auth.date, auth.region, "sqs");
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if !bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return Err(SigError::Mismatch(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .into(),
        ));
    }
    Ok(Signed {
        access_key_id: auth.access_key_id.to_owned(),
        region: auth.region.to_owned(),
    })
}

fn canonical_request(request: &Request<'_>, signed_headers: &[&str], body_hash: &str) -> String {
    let path = if request.path.is_empty() {
        "/".to_owned()
    } else {
        // SigV4 for services other than S3 encodes the (already encoded) path once more.
        uri_encode(request.path, false)
    };
    let mut canonical = format!(
        "{}\n{path}\n{}\n",
        request.method,
        canonical_query(request.query)
    );
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers.join(";"));
    canonical.push('\n');
    canonical.push_str(body_hash);
    canonical
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(k), true),
                uri_encode(&percent_decode(v), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` (and `/` unless `slash`).
fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !slash)
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `20260101T120000Z` as milliseconds since the Unix epoch.
fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    /// AWS's documented example (Signature Version 4 test suite, `get-vanilla`, service
    /// `service`), checked through the same key derivation and canonicalisation.
    #[test]
    fn derives_the_documented_signing_key() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn dates_parse_to_milliseconds_since_the_epoch() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400_000));
        assert_eq!(parse_amz_date("20260101T120000Z"), Some(1_767_268_800_000));
        assert!(parse_amz_date("2026-01-01").is_none());
    }

    /// `method url` with `given` headers, signed by AWS's own signer (`aws-sigv4`) at `now`:
    /// the request as it arrives, with its `x-amz-date` and `authorization`.
    fn signed_by_aws(
        method: &str,
        url: &str,
        given: &[(&str, &str)],
        body: &[u8],
        secret: &str,
        now: u64,
    ) -> HeaderMap {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now);
        let signed = sluice_test_support::sigv4::Signer::new("SLUICEKEY", secret, "eu-west-1")
            .sign(method, url, given, body, at)
            .unwrap();
        let mut map = headers(given);
        for (name, value) in &signed {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn requests_signed_by_aws_verify_and_tampered_ones_do_not() {
        let now = parse_amz_date("20260101T120000Z").unwrap();
        let body = b"Action=ListQueues&Version=2012-11-05";
        let given = [
            ("host", "127.0.0.1:9324"),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let map = signed_by_aws(
            "POST",
            "http://127.0.0.1:9324/",
            &given,
            body,
            "secret",
            now,
        );
        let secret = |key: &str| (key == "SLUICEKEY").then(|| "secret".to_owned());
        let ok = |body: &[u8], now: u64, map: &HeaderMap| {
            verify(
                &Request {
                    method: "POST",
                    path: "/",
                    query: "",
                    headers: map,
                    body,
                },
                now,
                secret,
            )
        };
        assert_eq!(
            ok(body, now, &map),
            Ok(Signed {
                access_key_id: "SLUICEKEY".into(),
                region: "eu-west-1".into()
            })
        );
        assert!(matches!(
            ok(b"Action=DeleteQueue", now, &map),
            Err(SigError::Mismatch(_))
        ));
        assert!(matches!(
            ok(body, now + 16 * 60 * 1000, &map),
            Err(SigError::Mismatch(m)) if m.contains("expired")
        ));
        let wrong = verify(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &map,
                body,
            },
            now,
            |_| Some("other".into()),
        );
        assert!(matches!(wrong, Err(SigError::Mismatch(_))));
        let mut unknown = map.clone();
        unknown.insert(
            "authorization",
            map["authorization"]
                .to_str()
                .unwrap()
                .replace("SLUICEKEY", "AKIAOTHER")
                .parse()
                .unwrap(),
        );
        assert!(matches!(
            ok(body, now, &unknown),
            Err(SigError::UnknownKey(_))
        ));
    }

    /// The query protocol's GET form: a path with an encoded character and an unsorted query
    /// string, canonicalised as AWS's signer does.
    #[test]
    fn a_get_with_a_query_string_signed_by_aws_verifies() {
        let now = parse_amz_date("20260101T120000Z").unwrap();
        let (path, query) = (
            "/000000000000/my%20queue",
            "Version=2012-11-05&Action=GetQueueUrl&QueueName=a%2Fb",
        );
        let url = format!("http://127.0.0.1:9324{path}?{query}");
        let map = signed_by_aws(
            "GET",
            &url,
            &[("host", "127.0.0.1:9324")],
            b"",
            "secret",
            now,
        );
        let request = Request {
            method: "GET",
            path,
            query,
            headers: &map,
            body: b"",
        };
        let secret = |key: &str| (key == "SLUICEKEY").then(|| "secret".to_owned());
        assert!(verify(&request, now, secret).is_ok(), "{map:?}");
    }

    #[test]
    fn query_strings_are_canonicalised_by_sorted_encoded_pairs() {
        assert_eq!(canonical_query("b=2&a=x%20y&a=1&c"), "a=1&a=x%20y&b=2&c=");
        assert_eq!(
            uri_encode("/000000000000/q%20", false),
            "/000000000000/q%2520"
        );
    }
}
