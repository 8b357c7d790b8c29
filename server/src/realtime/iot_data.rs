//! Publishing to AWS IoT Core's data endpoint over HTTPS (`POST /topics/<topic>?qos=0`), one
//! SigV4-signed request per message ([`crate::sigv4`], signing name `iotdevicegateway`) on
//! the HTTP client the functions already have: no AWS SDK client, and inside a VPC it goes
//! through the IoT data VPC endpoint, no NAT.

use super::publish::Publish;
use crate::https::HttpsClient;
use crate::sigv4::{credentials_from_env, Credentials, Signer};
use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::Duration;

/// IoT Core's data plane SigV4 signing name.
pub const SIGNING_NAME: &str = "iotdevicegateway";
/// Longest error answer read (the service's JSON error is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// What stays unencoded in the topic in the path: RFC 3986's unreserved characters (the topic
/// is one URL-encoded path segment, `/` included, as the SDKs send it).
const PATH_LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Publishes through IoT Core's HTTPS data endpoint.
#[derive(Clone, Debug)]
pub struct IotDataPublisher {
    http: HttpsClient,
    signer: Signer,
    /// `https://<prefix>-ats.iot.<region>.amazonaws.com` without a trailing `/`.
    endpoint: String,
}

/// Where and as whom to publish.
#[derive(Clone)]
pub struct IotDataConfig {
    /// The account's IoT data endpoint, `https://...-ats.iot.<region>.amazonaws.com` (or a
    /// local stand-in's `http://` URL in tests).
    pub endpoint: String,
    /// The AWS region (signs the requests).
    pub region: String,
    /// Access key, secret and session token.
    pub credentials: Credentials,
    /// Longest one publish may take; a slower one counts as failed.
    pub timeout: Duration,
}

impl std::fmt::Debug for IotDataConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotDataConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl IotDataConfig {
    /// The Lambda's configuration: `CUBEWALK_IOT_ENDPOINT` (set by the template), the region
    /// and the function's role credentials from the variables Lambda sets.
    pub fn from_env() -> Result<Self, String> {
        let endpoint = std::env::var("CUBEWALK_IOT_ENDPOINT")
            .map_err(|_| "CUBEWALK_IOT_ENDPOINT is not set")?;
        Ok(Self {
            endpoint,
            region: std::env::var("AWS_REGION").map_err(|_| "AWS_REGION is not set")?,
            credentials: credentials_from_env()?,
            timeout: Duration::from_secs(2),
        })
    }
}

impl IotDataPublisher {
    /// A publisher for `config`: rustls with ring, no retries (the next tick's message, or the
    /// follower's reconcile, covers a lost one). A machine without root certificates still
    /// reaches a plain `http://` stand-in.
    pub fn new(config: &IotDataConfig) -> Self {
        let http = HttpsClient::new(config.timeout)
            .unwrap_or_else(|_| HttpsClient::without_roots(config.timeout));
        let endpoint = config.endpoint.trim_end_matches('/');
        let endpoint = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("https://{endpoint}")
        };
        Self {
            http,
            signer: Signer::new(
                config.region.clone(),
                SIGNING_NAME,
                config.credentials.clone(),
            ),
            endpoint,
        }
    }

    /// The URL a message to `topic` is posted to.
    fn url(&self, topic: &str) -> String {
        format!(
            "{}/topics/{}?qos=0",
            self.endpoint,
            utf8_percent_encode(topic, PATH_LABEL)
        )
    }
}

#[async_trait]
impl Publish for IotDataPublisher {
    async fn publish(&self, topic: &str, payload: String) -> Result<(), String> {
        let request = self.signer.request(
            http::Method::POST,
            &self.url(topic),
            &[],
            Bytes::from(payload),
        )?;
        let answer = self.http.send(request, MAX_ANSWER_BYTES).await?;
        match answer.status {
            200..=299 => Ok(()),
            status => Err(failure(status, &answer.body)),
        }
    }
}

/// A failed publish: the status and the service's message (its JSON
/// `message`, or the start of the body), e.g. `429: Rate exceeded`.
fn failure(status: u16, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "Message"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    format!("{status}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_status_and_the_service_message() {
        assert_eq!(
            failure(429, br#"{"message":"Rate exceeded"}"#),
            "429: Rate exceeded"
        );
        assert_eq!(failure(403, br#"{"Message":"denied"}"#), "403: denied");
        assert_eq!(failure(502, b"bad gateway"), "502: bad gateway");
    }

    #[test]
    fn topics_are_posted_as_one_encoded_path_segment_and_signed_for_iot() {
        let publisher = IotDataPublisher::new(&IotDataConfig {
            endpoint: "abc-ats.iot.eu-west-1.amazonaws.com".into(),
            region: "eu-west-1".into(),
            credentials: Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"),
            timeout: Duration::from_secs(1),
        });
        assert_eq!(
            publisher.url("cw/w-1/-1/0/2"),
            "https://abc-ats.iot.eu-west-1.amazonaws.com/topics/cw%2Fw-1%2F-1%2F0%2F2?qos=0"
        );
        let request = publisher
            .signer
            .request(
                http::Method::POST,
                &publisher.url("cw/w/0/0/0"),
                &[],
                Bytes::from_static(b"[]"),
            )
            .unwrap();
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("/eu-west-1/iotdevicegateway/aws4_request"),
            "{auth}"
        );
        assert!(!auth.contains("secret"));
    }
}
