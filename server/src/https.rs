//! A small HTTPS client for the few outgoing calls the functions make (a Secrets Manager read,
//! an OpenID Connect issuer's discovery document and keys, the Management API's `@connections`): hyper's
//! HTTP/1 client, which the Lambda runtime already carries, with rustls on ring and the
//! system's root certificates (Lambda's /etc/pki; no OpenSSL, so it cross-compiles). Plain `http://` is allowed too, for local
//! stand-ins; callers that must not talk to a network peer in clear decide that themselves.
//!
//! reqwest (and the bundled Mozilla roots) would do the same in about 200 KB more of every zip
//! that carries it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::sync::Arc;
use std::time::Duration;

/// An answer: status and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body (at most the limit the caller gave).
    pub body: Bytes,
}

/// A client; cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct HttpsClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpsClient(timeout {:?})", self.timeout)
    }
}

impl HttpsClient {
    /// A client whose every call (connect, request and whole body) ends within `timeout`.
    /// Fails when the system has no root certificates.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("no TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self::with_connector(connector, timeout))
    }

    /// A client that trusts no certificate: it reaches plain `http://` endpoints (a local
    /// stand-in, the local gateway) on a machine without root certificates; every `https://`
    /// call fails.
    pub fn without_roots(timeout: Duration) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Self::with_connector(connector, timeout)
    }

    fn with_connector(connector: HttpsConnector<HttpConnector>, timeout: Duration) -> Self {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Self { client, timeout }
    }

    /// Sends `request` and reads the answer's body, refusing one longer than `max_body` bytes.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        max_body: usize,
    ) -> Result<Answer, String> {
        let call = async {
            let response = self
                .client
                .request(request.map(Full::new))
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// `GET url` (see [`HttpsClient::send`]).
    pub async fn get(&self, url: &str, max_body: usize) -> Result<Answer, String> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        self.send(request, max_body).await
    }
}
