//! One HTTP request of the CubeWalk API and its retries: the reqwest client, the token
//! header (read afresh for every attempt, so a replaced token applies to the next one), the
//! in-flight limit, how each answer maps to an [`Error`], and the retry loop (which retries
//! only requests that are safe to repeat: fetches, and puts carrying an idempotency key).

use crate::batching::chunks_of;
use crate::client::FetchedBlob;
use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::retry::{is_transient_status, parse_retry_after, RetryPolicy};
use crate::token::{Credentials, Token};
use cubewalk_protocol::codec::blob_from_base64;
use cubewalk_protocol::{
    CancelRequest, CancelResponse, ChunkKey, ErrorBody, FetchQuery, FetchResponse, PutRequest,
    PutResponse, VersionEntry,
};
use reqwest::header::{HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

/// Largest response body read into memory; Lambda cannot answer more than 6 MB, so anything
/// larger is not our server and is refused before it exhausts memory.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The HTTP side of a client: shared by its clones through the client's `Arc`.
pub(crate) struct Transport {
    http: reqwest::Client,
    pub(crate) url: Url,
    /// `None` for the guest login, which sends no token.
    credentials: Option<Arc<Credentials>>,
    permits: Semaphore,
    retry: RetryPolicy,
    timeout: Duration,
}

impl Transport {
    /// The reqwest client for `options`, sending the current token of `credentials` (if any)
    /// to `url`.
    pub(crate) fn new(
        url: Url,
        credentials: Option<Arc<Credentials>>,
        options: &ClientOptions,
    ) -> Result<Self> {
        let http = http_client(options)?;
        Ok(Self {
            http,
            url,
            credentials,
            permits: Semaphore::new(options.max_in_flight),
            retry: options.retry,
            timeout: options.timeout,
        })
    }
}

/// A reqwest client with the SDK's TLS roots, timeouts and redirect rule, for `options`.
pub(crate) fn http_client(options: &ClientOptions) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        // Below the local gateway's 30 s idle limit (and common load balancers'), so an idle
        // connection is dropped here before a server closes it under a new request.
        .pool_idle_timeout(Duration::from_secs(20))
        .user_agent(concat!("cubewalk-sdk/", env!("CARGO_PKG_VERSION")))
        // A followed redirect would carry the token header to whatever host the answer
        // names, in clear if it says http://. The endpoint must be the final URL.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(pem) = &options.extra_root_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::InvalidArgument(format!("extra root CA is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::InvalidArgument(
                "extra root CA holds no PEM certificate".into(),
            ));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))
}

impl Transport {
    /// Sends one fetch request (with retries) and checks the answer against the query.
    pub(crate) async fn fetch_batch(
        &self,
        query: FetchQuery,
        deadline: Instant,
    ) -> Result<Vec<FetchedBlob>> {
        let mut url = self.url.clone();
        url.set_query(Some(&query.to_query_string()));
        // A GET changes nothing: always safe to repeat.
        let body = self.send(Method::GET, url, None, deadline, true).await?;
        let resp: FetchResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("fetch answer is not valid: {e}")))?;
        if resp.chunks.len() != query.chunks.len() {
            return Err(Error::Protocol(format!(
                "asked for {} chunks, got {}",
                query.chunks.len(),
                resp.chunks.len()
            )));
        }
        let mut out = Vec::with_capacity(resp.chunks.len());
        for ((key, held), entry) in query.chunks.iter().zip(resp.chunks) {
            if entry.key != *key {
                return Err(Error::Protocol(format!(
                    "asked for chunk {key}, got {}",
                    entry.key
                )));
            }
            let blob = match entry.data {
                Some(text) => Some(
                    blob_from_base64(&text)
                        .map_err(|e| Error::Protocol(format!("chunk {key}: {e}")))?,
                ),
                None if *held == Some(entry.version) => None,
                None => {
                    return Err(Error::Protocol(format!(
                        "chunk {key} came back without data at a version the caller does not hold"
                    )))
                }
            };
            out.push(FetchedBlob {
                key: *key,
                version: entry.version,
                seq: entry.seq,
                blob,
            });
        }
        Ok(out)
    }

    /// Sends one put request (with retries) and checks the answer lists the chunks sent.
    pub(crate) async fn put_batch(
        &self,
        request: &PutRequest,
        deadline: Instant,
    ) -> Result<Vec<VersionEntry>> {
        let body = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        // Repeated only with its idempotency key: the server then applies it at most once
        // (a retry of a put that was applied but whose answer was lost changes nothing).
        let repeatable = request.idempotency_key.is_some();
        let answer = self
            .send(
                Method::PUT,
                self.url.clone(),
                Some(body),
                deadline,
                repeatable,
            )
            .await?;
        let resp: PutResponse = serde_json::from_slice(&answer)
            .map_err(|e| Error::Protocol(format!("put answer is not valid: {e}")))?;
        let expected = chunks_of(request);
        let got: Vec<ChunkKey> = resp.chunks.iter().map(|c| c.key).collect();
        if got != expected {
            return Err(Error::Protocol(
                "put answer does not list the chunks sent".into(),
            ));
        }
        Ok(resp.chunks)
    }

    /// Fences off `request`, a put whose answer never came (see [`crate::batching`]): asks the
    /// server to record its idempotency key as cancelled on each of its chunks (retried until
    /// `deadline`: recording twice answers the same) and returns, per chunk, whether it had
    /// applied first.
    pub(crate) async fn cancel_put(
        &self,
        request: &PutRequest,
        deadline: Instant,
    ) -> Result<CancelResponse> {
        let key = request
            .idempotency_key
            .clone()
            .ok_or_else(|| Error::Internal("a put without a key cannot be fenced".into()))?;
        let chunks = chunks_of(request);
        let cancel = CancelRequest {
            world: request.world.clone(),
            cancel: key,
            chunks: chunks.clone(),
        };
        let body = serde_json::to_vec(&cancel).map_err(|e| Error::Internal(e.to_string()))?;
        let answer = self
            .send(Method::PUT, self.url.clone(), Some(body), deadline, true)
            .await?;
        let resp: CancelResponse = serde_json::from_slice(&answer)
            .map_err(|e| Error::Protocol(format!("cancel answer is not valid: {e}")))?;
        let mut answered: Vec<ChunkKey> = resp.applied.iter().map(|e| e.key).collect();
        answered.extend(&resp.cancelled);
        answered.sort_by_key(|k| (k.x, k.y, k.z));
        let mut sent = chunks;
        sent.sort_by_key(|k| (k.x, k.y, k.z));
        if answered != sent {
            return Err(Error::Protocol(
                "cancel answer does not list the chunks sent".into(),
            ));
        }
        Ok(resp)
    }

    /// Sends a JSON POST (with retries: the caller vouches that repeating it is harmless)
    /// and returns the answer's body.
    pub(crate) async fn post_json(&self, body: Vec<u8>, deadline: Instant) -> Result<Vec<u8>> {
        self.send(Method::POST, self.url.clone(), Some(body), deadline, true)
            .await
    }

    /// One logical request with retries of transient failures until `deadline`, when
    /// `repeatable` (sending it twice has the effect of sending it once). Every attempt sends
    /// the token current when it starts. A 401 to a token that was replaced meanwhile is
    /// sent again at once with the new one, repeatable or not: a 401 comes from the
    /// authorizer, so the request never reached the store.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        deadline: Instant,
        repeatable: bool,
    ) -> Result<Vec<u8>> {
        let policy = self.retry;
        let timeout_ms = self.timeout.as_millis() as u64;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout(timeout_ms));
            }
            let outcome = tokio::time::timeout(
                remaining,
                self.attempt(method.clone(), url.clone(), body.clone()),
            )
            .await
            .unwrap_or(Err(Failure::Timeout));
            let (failure, retry_after) = match outcome {
                Ok(bytes) => return Ok(bytes),
                Err(Failure::Status {
                    status: 401,
                    message,
                    token: Some(token),
                    ..
                }) if self
                    .credentials
                    .as_ref()
                    .is_some_and(|c| !c.is_current(&token)) =>
                {
                    // Sent with a token the game has replaced since: try the new one now.
                    if Instant::now() >= deadline {
                        return Err(token.unauthorized(message));
                    }
                    continue;
                }
                Err(Failure::Status {
                    status,
                    code,
                    message,
                    retry_after,
                    ..
                }) if is_transient_status(status) => (
                    if status == 429 && code.as_deref() == Some("rate_limited") {
                        Error::RateLimited {
                            message,
                            attempts: attempt,
                        }
                    } else {
                        Error::Server {
                            status,
                            message,
                            attempts: attempt,
                        }
                    },
                    retry_after,
                ),
                Err(Failure::Status {
                    status,
                    code,
                    message,
                    token,
                    ..
                }) => return Err(final_status_error(status, code, message, token.as_deref())),
                Err(Failure::Transport(message)) => (
                    Error::Network {
                        message,
                        attempts: attempt,
                    },
                    None,
                ),
                Err(Failure::Timeout) => return Err(Error::Timeout(timeout_ms)),
                Err(Failure::Fatal(e)) => return Err(e),
            };
            if !repeatable || attempt > policy.max_retries {
                return Err(failure);
            }
            let delay = policy.delay(attempt, retry_after);
            if Instant::now() + delay >= deadline {
                // Waiting would run past the deadline: report what failed, not a timeout.
                return Err(failure);
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Failure::Fatal(Error::Cancelled))?;
        // Read after the permit: an attempt that waited for one sends the newest token.
        let token = self.credentials.as_ref().map(|c| c.current());
        let mut req = self.http.request(method, url);
        if let Some(token) = &token {
            req = req.header("token", token.header().clone());
        }
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let mut resp = req.send().await.map_err(transport_failure)?;
        let status = resp.status().as_u16();
        let resp_location = resp.headers().get(LOCATION).cloned();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(Failure::Fatal(response_too_large()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_failure)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::Fatal(response_too_large()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let ours = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        // Our own answers (2xx, or an error body of ours) come from behind the authorizer:
        // the token was accepted. API Gateway's own errors prove nothing.
        if (200..300).contains(&status) || ours.is_some() {
            if let Some(token) = &token {
                token.mark_worked();
            }
        }
        if (200..300).contains(&status) {
            Ok(bytes)
        } else if (300..400).contains(&status) {
            Err(Failure::Fatal(redirect_refused(status, resp_location)))
        } else {
            Err(Failure::Status {
                status,
                code: ours.map(|b| b.error.code),
                message: match &token {
                    Some(token) => token.scrub(error_message(&bytes)),
                    None => error_message(&bytes),
                },
                retry_after,
                token,
            })
        }
    }
}

/// What one attempt ended in, before the retry decision.
enum Failure {
    Status {
        status: u16,
        /// The `code` of our error body, when the answer carried one.
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
        /// The token the attempt sent, if any.
        token: Option<Arc<Token>>,
    },
    Transport(String),
    Timeout,
    Fatal(Error),
}

fn transport_failure(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout;
    }
    // The full source chain says what really failed (refused, reset, certificate, ...).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Failure::Transport(message)
}

/// A redirect is never followed (the token would go with it); the error names where it
/// pointed so the caller can fix the endpoint.
fn redirect_refused(status: u16, location: Option<HeaderValue>) -> Error {
    let target = location
        .as_ref()
        .and_then(|l| l.to_str().ok())
        .map(|l| match Url::parse(l) {
            Ok(u) => format!(
                "host {}",
                u.host_str().map_or_else(|| "(none)".into(), str::to_owned)
            ),
            // A relative Location stays on the endpoint's own host.
            Err(_) => "a path on the same host".into(),
        })
        .unwrap_or_else(|| "no Location".into());
    Error::Protocol(format!(
        "the server answered {status} redirecting to {target}; redirects are never followed \
         (the token would be sent along): give the final URL as the endpoint"
    ))
}

fn response_too_large() -> Error {
    Error::Protocol(format!(
        "response larger than {MAX_RESPONSE_BYTES} bytes refused"
    ))
}

/// The error of an answer that is not retried.
pub(crate) fn final_status_error(
    status: u16,
    code: Option<String>,
    message: String,
    token: Option<&Token>,
) -> Error {
    match status {
        401 => match token {
            Some(token) => token.unauthorized(message),
            None => Error::Unauthorized(message),
        },
        403 if code.as_deref() == Some("banned") => Error::Banned(message),
        403 => Error::Forbidden(message),
        400..=499 => Error::BadRequest { status, message },
        _ => Error::Server {
            status,
            message,
            attempts: 1,
        },
    }
}

/// The human part of an error body: our `{"error":{...}}`, API Gateway's `{"message":...}`,
/// or the start of whatever else came back.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return format!("{}: {}", e.error.code, e.error.message);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message") {
            return match m.as_str() {
                Some(s) => s.to_owned(),
                None => m.to_string(),
            };
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cubewalk_protocol::{ChunkEdit, IdempotencyKey, WorldId};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn transport(server: &MockServer, token: &str, timeout_ms: u64) -> Transport {
        let options = ClientOptions {
            timeout: Duration::from_millis(timeout_ms),
            retry: RetryPolicy {
                max_retries: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            ..ClientOptions::default()
        };
        let url = Url::parse(&format!("{}/prod/cubewalkblocks", server.uri())).unwrap();
        let credentials = Arc::new(Credentials::new(Token::parse(token).unwrap()));
        Transport::new(url, Some(credentials), &options).unwrap()
    }

    fn put(key: Option<&str>) -> PutRequest {
        PutRequest {
            world: WorldId::default(),
            idempotency_key: key.map(|k| IdempotencyKey::new(k).unwrap()),
            edits: vec![ChunkEdit::at_index(ChunkKey::new(0, 0, 0), 1, 1)],
        }
    }

    fn answer(status: u16, code: &str) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .insert_header("retry-after", "1")
            .set_body_string(format!(
                r#"{{"error":{{"code":"{code}","message":"m","request_id":"r"}}}}"#
            ))
    }

    #[tokio::test]
    async fn only_puts_with_an_idempotency_key_are_retried() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let t = transport(&server, "tok-0123456789", 3000);
        let deadline = Instant::now() + Duration::from_secs(3);
        let unkeyed = t.put_batch(&put(None), deadline).await.unwrap_err();
        assert!(
            matches!(unkeyed, Error::Server { attempts: 1, .. }),
            "{unkeyed:?}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        // The same put with a key is retried (503 is transient).
        let keyed = t
            .put_batch(&put(Some("0123456789abcdef0123456789abcdef")), deadline)
            .await
            .unwrap_err();
        assert!(matches!(keyed, Error::Server { .. }), "{keyed:?}");
        assert!(server.received_requests().await.unwrap().len() > 2);
    }

    #[tokio::test]
    async fn banned_and_rate_limited_answers() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(answer(403, "banned"))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .respond_with(answer(429, "rate_limited"))
            .mount(&server)
            .await;
        let t = transport(&server, "tok-0123456789", 500);
        let query = FetchQuery {
            world: WorldId::default(),
            chunks: vec![(ChunkKey::new(0, 0, 0), None)],
        };
        let deadline = Instant::now() + Duration::from_millis(500);
        let e = t.fetch_batch(query, deadline).await.unwrap_err();
        assert_eq!(e.status(), crate::Status::Banned, "{e}");
        // Retry-After 1 s does not fit in the 500 ms deadline: refused at once, one request.
        let start = Instant::now();
        let e = t
            .put_batch(&put(Some("0123456789abcdef0123456789abcdef")), deadline)
            .await
            .unwrap_err();
        assert_eq!(e.status(), crate::Status::RateLimited, "{e}");
        assert!(start.elapsed() < Duration::from_millis(400));
        let puts = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "PUT")
            .count();
        assert_eq!(puts, 1);
    }

    #[test]
    fn error_messages_from_bodies() {
        assert_eq!(
            error_message(br#"{"error":{"code":"x","message":"y"}}"#),
            "x: y"
        );
        assert_eq!(
            error_message(br#"{"message":"Unauthorized"}"#),
            "Unauthorized"
        );
        assert_eq!(error_message(br#"{"message": null}"#), "null");
        assert_eq!(error_message(b"plain"), "plain");
    }
}
