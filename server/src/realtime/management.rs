//! Delivery through the API Gateway Management API (`POST @connections/{id}`), with the AWS
//! SDK: in AWS against the WebSocket API's stage endpoint, locally against the local gateway's
//! emulation of it, so the same signed requests run in both.

use super::notify::{Delivery, DeliveryError};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement as mgmt;
use aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata;
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use mgmt::config::retry::RetryConfig;
use mgmt::config::timeout::TimeoutConfig;
use mgmt::config::{BehaviorVersion, Credentials, Region};
use std::time::Duration;

/// Posts to connections through the Management API.
#[derive(Clone, Debug)]
pub struct ManagementApi {
    client: mgmt::Client,
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
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Some(Self {
            endpoint,
            region: var("AWS_REGION")?,
            credentials: Credentials::new(
                var("AWS_ACCESS_KEY_ID")?,
                var("AWS_SECRET_ACCESS_KEY")?,
                std::env::var("AWS_SESSION_TOKEN").ok(),
                None,
                "lambda-environment",
            ),
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
    /// A client for `config`: rustls with ring (no system OpenSSL, no C toolchain), no SDK
    /// retries (a late notification is worth less than a prompt put; the notifier bounds the
    /// whole round).
    pub fn new(config: &ManagementConfig) -> Self {
        crate::store::redis::install_crypto_provider();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let conf = mgmt::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(config.credentials.clone())
            .endpoint_url(config.endpoint.trim_end_matches('/'))
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.post_timeout)
                    .connect_timeout(config.post_timeout)
                    .build(),
            )
            .build();
        Self {
            client: mgmt::Client::from_conf(conf),
        }
    }
}

#[async_trait]
impl Delivery for ManagementApi {
    async fn post(&self, connection: &str, data: &str) -> Result<(), DeliveryError> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection)
            .data(mgmt::primitives::Blob::new(data.as_bytes().to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Err(DeliveryError::Gone),
                other => Err(failure(other, &e)),
            },
        }
    }

    async fn close(&self, connection: &str) -> Result<(), DeliveryError> {
        let deleted = self
            .client
            .delete_connection()
            .connection_id(connection)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(DeleteConnectionError::GoneException(_)) => Ok(()),
                other => Err(failure(other, &e)),
            },
        }
    }
}

/// A Management API failure other than Gone: the service's code and message, or (when the call
/// never reached the service) the start of the transport error.
fn failure(service: Option<&impl ProvideErrorMetadata>, e: &impl std::fmt::Debug) -> DeliveryError {
    DeliveryError::Failed(match service {
        Some(other) => format!(
            "{}: {}",
            other.code().unwrap_or("error"),
            other.message().unwrap_or("")
        ),
        None => format!("{e:?}").chars().take(300).collect(),
    })
}
