//! SQS requests signed by AWS's own Signature Version 4 signer (`aws-sigv4`, the one the AWS
//! SDK for Rust uses): what the bench's SQS client and the tests send, so the host's verifier
//! is held to the reference implementation rather than to a signer written beside it.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// Signs requests with one access key for one region, for the `sqs` service.
#[derive(Clone, Debug)]
pub struct Signer {
    credentials: Credentials,
    region: String,
}

impl Signer {
    pub fn new(access_key_id: &str, secret: &str, region: &str) -> Signer {
        Signer {
            credentials: Credentials::new(access_key_id, secret, None, None, "sluice"),
            region: region.to_owned(),
        }
    }

    /// The headers that sign `method url` with `headers` (all of them signed; `host` among
    /// them unless the URL's authority is meant) and `body` at `time`: `x-amz-date` and
    /// `authorization`, as (name, value) pairs to add to the request.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sqs")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing parameters: {e}"))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("cannot sign {method} {url}: {e}"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| format!("cannot sign {method} {url}: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }
}
