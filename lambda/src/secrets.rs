//! Reading a secret from AWS Secrets Manager (`GetSecretValue`) at a function's start: one
//! HTTPS POST signed with SigV4 ([`cubewalk_server::sigv4`]) using the credentials Lambda puts
//! in the environment. Any function can use it (the login function for its signing key; the
//! blocks and realtime functions could read the Redis password the same way); the IAM policy
//! decides which secret each may read.
//!
//! A whole AWS SDK client would do the same for much more in every zip that carries it; this
//! is the one call they need.

use cubewalk_server::https::HttpsClient;
use cubewalk_server::sigv4::{credentials_from_env, Credentials, Signer};
use std::time::Duration;

/// Overrides the endpoint (the AWS SDKs' variable of the same name), for tests and for
/// endpoints such as a VPC interface endpoint's DNS name.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
/// The SigV4 signing name of Secrets Manager.
pub const SIGNING_NAME: &str = "secretsmanager";
/// The `X-Amz-Target` of the call.
pub const TARGET: &str = "secretsmanager.GetSecretValue";
/// Content type of the AWS JSON 1.1 protocol Secrets Manager speaks.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Longest the call may take: a function start is waiting for it.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Longest answer read: a secret holds at most 64 KB, and its JSON envelope little more.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A required environment variable is missing.
    #[error("{0}")]
    MissingEnv(String),
    /// The endpoint is not an http(s) URL.
    #[error("bad Secrets Manager endpoint '{0}'")]
    BadEndpoint(String),
    /// The request could not be signed.
    #[error("cannot sign the request: {0}")]
    Signing(String),
    /// No answer (network, TLS or timeout).
    #[error("Secrets Manager unreachable: {0}")]
    Unreachable(String),
    /// Secrets Manager refused (for example `AccessDeniedException`,
    /// `ResourceNotFoundException`).
    #[error("Secrets Manager answered {status} {kind}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error type (`__type`), without its namespace.
        kind: String,
        /// Its message.
        message: String,
    },
    /// The secret holds no `SecretString` (binary, or no value put yet).
    #[error("the secret holds no SecretString")]
    NoString,
    /// An answer that is not Secrets Manager's JSON.
    #[error("unexpected answer: {0}")]
    BadAnswer(String),
}

/// A Secrets Manager client for one region and one set of credentials.
pub struct SecretsManager {
    http: HttpsClient,
    endpoint: String,
    signer: Signer,
}

impl std::fmt::Debug for SecretsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(
            f,
            "SecretsManager({}, {})",
            self.endpoint,
            self.signer.region()
        )
    }
}

impl SecretsManager {
    /// A client for `region` signing with `credentials`, at `endpoint` or the region's public
    /// endpoint (`https://secretsmanager.<region>.amazonaws.com`).
    pub fn new(
        region: &str,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Result<Self, SecretsError> {
        let endpoint =
            endpoint.unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| SecretsError::BadEndpoint(endpoint.clone()))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(SecretsError::BadEndpoint(endpoint));
        }
        Ok(Self {
            http: HttpsClient::new(TIMEOUT).map_err(SecretsError::Unreachable)?,
            // `http://host:port` and `http://host:port/` are the same request, signed as `/`.
            endpoint: format!("{}/", endpoint.trim_end_matches('/')),
            signer: Signer::new(region, SIGNING_NAME, credentials),
        })
    }

    /// A client configured as Lambda configures a function: `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (the function role's
    /// temporary credentials) and optionally [`ENDPOINT_ENV`].
    pub fn from_env() -> Result<Self, SecretsError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let credentials = credentials_from_env().map_err(SecretsError::MissingEnv)?;
        let region = var("AWS_REGION")
            .ok_or_else(|| SecretsError::MissingEnv("AWS_REGION is not set".into()))?;
        Self::new(&region, credentials, var(ENDPOINT_ENV))
    }

    /// The current `SecretString` of `secret_id` (a name or ARN).
    pub async fn secret_string(&self, secret_id: &str) -> Result<String, SecretsError> {
        let body = serde_json::json!({ "SecretId": secret_id }).to_string();
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
        let request = self
            .signer
            .request(http::Method::POST, &self.endpoint, &headers, body.into())
            .map_err(SecretsError::Signing)?;
        let answer = self
            .http
            .send(request, MAX_ANSWER_BYTES)
            .await
            .map_err(SecretsError::Unreachable)?;
        parse_answer(answer.status, &answer.body)
    }
}

/// Reads `GetSecretValue`'s answer: the `SecretString` on 200, else the error's type and
/// message (the AWS JSON protocol's `__type`, `message` or `Message`).
fn parse_answer(status: u16, body: &[u8]) -> Result<String, SecretsError> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        SecretsError::BadAnswer(format!("status {status}, {} bytes, not JSON", body.len()))
    })?;
    if status != 200 {
        let text = |k: &str| json.get(k).and_then(|v| v.as_str());
        let kind = text("__type").unwrap_or("unknown");
        return Err(SecretsError::Refused {
            status,
            // `com.amazonaws.secretsmanager#ResourceNotFoundException` names the same type.
            kind: kind.rsplit('#').next().unwrap_or(kind).to_owned(),
            message: text("message").or(text("Message")).unwrap_or("").to_owned(),
        });
    }
    json.get("SecretString")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or(SecretsError::NoString)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_aws_json_protocol_writes_them() {
        let ok = br#"{"ARN":"arn:x","Name":"k","SecretString":"pem","VersionId":"v","VersionStages":["AWSCURRENT"],"CreatedDate":1.7E9}"#;
        assert_eq!(parse_answer(200, ok).unwrap(), "pem");
        let binary = br#"{"ARN":"arn:x","SecretBinary":"AAAA"}"#;
        assert!(matches!(
            parse_answer(200, binary),
            Err(SecretsError::NoString)
        ));
        let denied =
            br#"{"__type":"com.amazonaws.secretsmanager#AccessDeniedException","Message":"no"}"#;
        match parse_answer(400, denied) {
            Err(SecretsError::Refused {
                status,
                kind,
                message,
            }) => assert_eq!(
                (status, kind.as_str(), message.as_str()),
                (400, "AccessDeniedException", "no")
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_answer(502, b"<html>"),
            Err(SecretsError::BadAnswer(_))
        ));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        let creds = || Credentials::new("AKID", "wJalrXUtnFEMI-SECRET", None, None, "test");
        let default = SecretsManager::new("eu-west-1", creds(), None).unwrap();
        assert_eq!(
            default.endpoint,
            "https://secretsmanager.eu-west-1.amazonaws.com/"
        );
        assert!(!format!("{default:?}").contains("wJalrXUtnFEMI"));
        for bad in ["ftp://x", "not a url", "file:///etc/passwd"] {
            assert!(SecretsManager::new("eu-west-1", creds(), Some(bad.into())).is_err());
        }
    }
}
