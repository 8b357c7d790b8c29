//! Requests to AWS service APIs without an AWS SDK client: each request is signed with SigV4
//! (the `aws-sigv4` crate, the SDKs' own signer) and sent over the [`crate::https`] client.
//! The functions make two kinds of call (Secrets Manager's `GetSecretValue` at start, the API
//! Gateway Management API's `@connections`): a whole SDK client for each would add most of a
//! megabyte to every zip that carries it, and cold starts grow with the zip.

pub use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use std::time::SystemTime;

/// The credentials Lambda gives a function in its environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: the function role's temporary keys).
pub fn credentials_from_env() -> Result<Credentials, String> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{k} is not set"))
    };
    Ok(Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN").ok(),
        None,
        "lambda-environment",
    ))
}

/// Signs requests for one service in one region as one identity.
#[derive(Clone)]
pub struct Signer {
    region: String,
    service: &'static str,
    credentials: Credentials,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Signer({}, {})", self.service, self.region)
    }
}

impl Signer {
    /// Signs for `service` (its SigV4 signing name, e.g. `secretsmanager`, `execute-api`) in
    /// `region` with `credentials`.
    pub fn new(region: impl Into<String>, service: &'static str, credentials: Credentials) -> Self {
        Self {
            region: region.into(),
            service,
            credentials,
        }
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// `method url` with `headers` and `body`, signed now: the `authorization`,
    /// `x-amz-date` and (with a session token) `x-amz-security-token` headers added. `url`
    /// must be sent exactly as given: its path, already percent-encoded, is what is signed.
    pub fn request(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<http::Request<Bytes>, String> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| format!("cannot sign: {e}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("cannot sign: {e}"))?
            .into_parts();
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        request.body(body).map_err(|e| format!("bad request: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_a_sigv4_authorization_for_the_service_and_never_show_the_secret() {
        let signer = Signer::new(
            "eu-west-1",
            "execute-api",
            Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI-SECRET",
                Some("tok".into()),
                None,
                "t",
            ),
        );
        let request = signer
            .request(
                http::Method::POST,
                "https://abc.execute-api.eu-west-1.amazonaws.com/prod/@connections/L0SM9cOFvHcCIhw%3D",
                &[("content-type", "text/plain")],
                Bytes::from_static(b"hello"),
            )
            .unwrap();
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(
            auth.contains("/eu-west-1/execute-api/aws4_request"),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"));
        assert_eq!(request.headers()["x-amz-security-token"], "tok");
        assert_eq!(
            request.uri().path(),
            "/prod/@connections/L0SM9cOFvHcCIhw%3D"
        );
        assert!(!format!("{signer:?}{request:?}").contains("wJalrXUtnFEMI"));
    }
}
