//! Delivery through the API Gateway Management API (`POST` and `DELETE @connections/{id}`):
//! in AWS against the WebSocket API's stage endpoint, locally against the local gateway's
//! emulation of it, so the same signed requests run in both. Each call is one SigV4-signed
//! HTTPS request ([`crate::sigv4`]); no AWS SDK client.

use super::notify::{Delivery, DeliveryError};
use crate::https::HttpsClient;
use crate::sigv4::{credentials_from_env, Credentials, Signer};
use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::Duration;

/// The Management API's SigV4 signing name.
pub const SIGNING_NAME: &str = "execute-api";
/// Longest error answer read (the service's JSON error is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// What stays unencoded in a connection id in the path: RFC 3986's unreserved characters (AWS
/// connection ids end in `=`, which is encoded, as the SDKs encode a path label).
const PATH_LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Posts to connections through the Management API.
#[derive(Clone, Debug)]
pub struct ManagementApi {
    http: HttpsClient,
    signer: Signer,
    /// The stage URL without a trailing `/`.
    endpoint: String,
}

/// Where and as whom to call the Management API.
#[derive(Clone)]
pub struct ManagementConfig {
    /// The WebSocket stage's `https://` URL (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`),
    /// or the local gateway's `http://127.0.0.1:{port}/realtime`.
    pub endpoint: String,
    /// The AWS region (signs the requests).
    pub region: String,
    /// Access key, secret and session token.
    pub credentials: Credentials,
    /// Longest one post may take; a slower one counts as failed.
    pub post_timeout: Duration,
}

impl std::fmt::Debug for ManagementConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl ManagementConfig {
    /// The Lambda's configuration: `CUBEWALK_REALTIME_ENDPOINT` (set by the template), the
    /// region and the function's role credentials from the variables Lambda sets
    /// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    /// `Ok(None)` when no realtime endpoint is configured (notifications off).
    pub fn from_env() -> Result<Option<Self>, String> {
        let Ok(endpoint) = std::env::var("CUBEWALK_REALTIME_ENDPOINT") else {
            return Ok(None);
        };
        if endpoint.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            endpoint,
            region: std::env::var("AWS_REGION").map_err(|_| "AWS_REGION is not set")?,
            credentials: credentials_from_env()?,
            post_timeout: Duration::from_secs(1),
        }))
    }

    /// The local gateway's own endpoint, signing as `access_key_id` (the gateway accepts only
    /// requests signed with the key id it made for itself; there is no IAM to check more).
    pub fn local(endpoint: impl Into<String>, access_key_id: &str) -> Self {
        Self {
            endpoint: endpoint.into(),
            region: "local".into(),
            credentials: Credentials::new(access_key_id, "local", None, None, "local-gateway"),
            post_timeout: Duration::from_secs(1),
        }
    }
}

impl ManagementApi {
    /// A client for `config`: rustls with ring (no system OpenSSL, no C toolchain), no
    /// retries (a late notification is worth less than a prompt put; the notifier bounds the
    /// whole round), each call within `post_timeout`. A machine without root certificates
    /// still reaches a plain `http://` endpoint (the local gateway's).
    pub fn new(config: &ManagementConfig) -> Self {
        let http = HttpsClient::new(config.post_timeout)
            .unwrap_or_else(|_| HttpsClient::without_roots(config.post_timeout));
        Self {
            http,
            signer: Signer::new(
                config.region.clone(),
                SIGNING_NAME,
                config.credentials.clone(),
            ),
            endpoint: config.endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// One signed call to `@connections/{connection}`.
    async fn call(
        &self,
        method: http::Method,
        connection: &str,
        body: Bytes,
    ) -> Result<u16, DeliveryError> {
        let url = format!(
            "{}/@connections/{}",
            self.endpoint,
            utf8_percent_encode(connection, PATH_LABEL)
        );
        let request = self
            .signer
            .request(method, &url, &[], body)
            .map_err(DeliveryError::Failed)?;
        let answer = self
            .http
            .send(request, MAX_ANSWER_BYTES)
            .await
            .map_err(DeliveryError::Failed)?;
        match answer.status {
            200..=299 => Ok(answer.status),
            410 => Err(DeliveryError::Gone),
            status => Err(failure(status, &answer.body)),
        }
    }
}

#[async_trait]
impl Delivery for ManagementApi {
    async fn post(&self, connection: &str, data: &str) -> Result<(), DeliveryError> {
        self.call(
            http::Method::POST,
            connection,
            Bytes::copy_from_slice(data.as_bytes()),
        )
        .await
        .map(drop)
    }

    async fn close(&self, connection: &str) -> Result<(), DeliveryError> {
        match self
            .call(http::Method::DELETE, connection, Bytes::new())
            .await
        {
            Ok(_) | Err(DeliveryError::Gone) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A Management API failure other than Gone: the status and the service's message (its JSON
/// `message`, or the start of the body), e.g. `429: Rate exceeded`.
fn failure(status: u16, body: &[u8]) -> DeliveryError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "Message"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    DeliveryError::Failed(format!("{status}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_status_and_the_service_message() {
        assert_eq!(
            failure(429, br#"{"message":"Rate exceeded"}"#),
            DeliveryError::Failed("429: Rate exceeded".into())
        );
        assert_eq!(
            failure(403, br#"{"Message":"denied"}"#),
            DeliveryError::Failed("403: denied".into())
        );
        assert_eq!(
            failure(502, b"bad gateway"),
            DeliveryError::Failed("502: bad gateway".into())
        );
    }

    #[test]
    fn connection_ids_are_encoded_as_one_path_label() {
        assert_eq!(
            utf8_percent_encode("L0SM9cOFvHcCIhw=", PATH_LABEL).to_string(),
            "L0SM9cOFvHcCIhw%3D"
        );
        assert_eq!(
            utf8_percent_encode("a/b c_-.~", PATH_LABEL).to_string(),
            "a%2Fb%20c_-.~"
        );
    }
}
