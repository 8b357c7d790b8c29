//! The async Rust client: fetch and put chunks through the CubeWalk API.

use crate::endpoint::parse_endpoint;
use crate::error::{Error, Result};
use crate::retry::{is_transient_status, parse_retry_after, RetryPolicy};
use cubewalk_protocol::codec::{blob_from_base64, decode_chunk_into, ChunkData};
use cubewalk_protocol::limits::{
    IDEMPOTENCY_WINDOW_SECS, MAX_CHUNKS_PER_FETCH, MAX_CHUNKS_PER_PUT, MAX_EDITS_PER_PUT,
};
use cubewalk_protocol::{
    ChunkEdit, ChunkKey, ErrorBody, FetchQuery, FetchResponse, IdempotencyKey, PutRequest,
    PutResponse, VersionEntry, WorldId, CHUNK_CUBES,
};
use futures_util::future::{join_all, FutureExt, Shared};
use rand::Rng;
use reqwest::header::{HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::Method;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;
use url::Url;

/// Longest `chunks` parameter the client puts in one URL; the server accepts 8192, and API
/// Gateway's URL limit is about 10 KB, so this leaves room for the rest of the URL.
const FETCH_PARAM_BUDGET: usize = 6000;
/// Largest response body read into memory; Lambda cannot answer more than 6 MB, so anything
/// larger is not our server and is refused before it exhausts memory.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Longest accepted token.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest `timeout` a client accepts, in milliseconds. A put is retried only within its
/// call's timeout, and the server remembers a put's idempotency key for longer than this, so
/// every retry is recognised.
pub const MAX_TIMEOUT_MS: u32 = 600_000;
const _: () = assert!((MAX_TIMEOUT_MS as u64) / 1000 < IDEMPOTENCY_WINDOW_SECS);

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest one call (fetch or put, all its requests and retries) may take.
    pub timeout: Duration,
    /// Longest wait for a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Most HTTP requests in flight at once across the client.
    pub max_in_flight: usize,
    /// Allow plain `http://` to a non-loopback host (sends the token in clear).
    pub allow_insecure_http: bool,
    /// Extra trusted root certificates (PEM), for a private CA or a test server.
    pub extra_root_ca_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            max_in_flight: 16,
            allow_insecure_http: false,
            extra_root_ca_pem: None,
        }
    }
}

/// One fetched chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedChunk {
    /// The chunk.
    pub key: ChunkKey,
    /// Its current version (0 for a chunk never written).
    pub version: u64,
    /// Its cubes, or `None` when the caller already held `version` (not modified).
    pub data: Option<Box<ChunkData>>,
}

/// One fetched chunk before decoding (see [`Client::fetch_blobs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBlob {
    /// The chunk.
    pub key: ChunkKey,
    /// Its current version (0 for a chunk never written).
    pub version: u64,
    /// Its encoded blob (base64 already removed), or `None` when not modified.
    pub blob: Option<Vec<u8>>,
}

impl FetchedBlob {
    /// Decodes the blob into `out` (the caller's 4096 cubes); returns whether it wrote `out`.
    pub fn decode_into(&self, out: &mut ChunkData) -> Result<bool> {
        match &self.blob {
            None => Ok(false),
            Some(blob) => {
                decode_chunk_into(blob, out)
                    .map_err(|e| Error::Protocol(format!("chunk {}: {e}", self.key)))?;
                Ok(true)
            }
        }
    }
}

/// A CubeWalk API client. Cheap to clone; clones share connections and the in-flight limit.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: Url,
    token: HeaderValue,
    options: ClientOptions,
    permits: Semaphore,
    /// For each chunk, the last put begun on it that has not finished: a later put of the
    /// same chunk waits for it, so puts apply in the order they were begun.
    put_tails: Mutex<HashMap<(WorldId, ChunkKey), (u64, PutDone)>>,
    next_put: AtomicU64,
}

/// Resolves when a put has finished (or was dropped).
type PutDone = Shared<oneshot::Receiver<()>>;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `endpoint` (the URL of `/cubewalkblocks`, stage included) sending `token`.
    pub fn new(endpoint: &str, token: &str, options: ClientOptions) -> Result<Self> {
        let url = parse_endpoint(endpoint, options.allow_insecure_http)?;
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(Error::InvalidArgument(format!(
                "token must be 1 to {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut token = HeaderValue::from_str(token).map_err(|_| {
            Error::InvalidArgument("token holds characters not allowed in an HTTP header".into())
        })?;
        token.set_sensitive(true);
        if options.max_in_flight == 0 || options.max_in_flight > 1024 {
            return Err(Error::InvalidArgument(
                "max_in_flight must be 1 to 1024".into(),
            ));
        }
        if options.timeout.is_zero()
            || options.timeout > Duration::from_millis(u64::from(MAX_TIMEOUT_MS))
        {
            return Err(Error::InvalidArgument(format!(
                "timeout must be 1 to {MAX_TIMEOUT_MS} ms"
            )));
        }
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
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::InvalidArgument(format!("extra root CA is not valid PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(Error::InvalidArgument(
                    "extra root CA holds no PEM certificate".into(),
                ));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                url,
                token,
                permits: Semaphore::new(options.max_in_flight),
                options,
                put_tails: Mutex::new(HashMap::new()),
                next_put: AtomicU64::new(0),
            }),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Fetches `chunks` of `world`, each with the version the caller already holds (if any).
    /// Answers in the order asked; a chunk whose held version is current comes back with
    /// `data: None`. More chunks than one request may carry are split into several requests,
    /// sent concurrently.
    pub async fn fetch(
        &self,
        world: &str,
        chunks: &[(ChunkKey, Option<u64>)],
    ) -> Result<Vec<FetchedChunk>> {
        self.fetch_blobs(world, chunks)
            .await?
            .into_iter()
            .map(|b| {
                let data = match &b.blob {
                    None => None,
                    Some(_) => {
                        let mut cubes = Box::new([0i32; CHUNK_CUBES]);
                        b.decode_into(&mut cubes)?;
                        Some(cubes)
                    }
                };
                Ok(FetchedChunk {
                    key: b.key,
                    version: b.version,
                    data,
                })
            })
            .collect()
    }

    /// As [`Client::fetch`], but leaves each chunk encoded so the caller can decode it straight
    /// into its own buffer ([`FetchedBlob::decode_into`]) without an intermediate copy.
    pub async fn fetch_blobs(
        &self,
        world: &str,
        chunks: &[(ChunkKey, Option<u64>)],
    ) -> Result<Vec<FetchedBlob>> {
        let world = parse_world(world)?;
        let mut seen = HashMap::with_capacity(chunks.len());
        for (i, (k, _)) in chunks.iter().enumerate() {
            if let Some(first) = seen.insert(*k, i) {
                return Err(Error::InvalidArgument(format!(
                    "chunk {k} appears twice (positions {first} and {i})"
                )));
            }
        }
        let deadline = Instant::now() + self.inner.options.timeout;
        let batches = fetch_batches(&world, chunks);
        run_batches(&self.inner, batches, move |inner, query| async move {
            inner.fetch_batch(query, deadline).await
        })
        .await
    }

    /// Applies `edits` in `world` and returns the revision of every touched chunk afterwards,
    /// in order of first appearance. All edits to one chunk travel in one request, so they
    /// apply atomically; a batch too big for one request is split by chunk.
    ///
    /// The put takes its place in line when this method is called, before the returned future
    /// is first polled: a later put of the same chunk through this client (or its clones)
    /// waits until this one has finished, so puts apply in the order they were begun. Each
    /// request carries its own idempotency key, reused by its retries, so a retry of a request
    /// the server already applied changes nothing. No edits: no request, an empty answer.
    ///
    /// A put split over several requests that fails part way answers
    /// [`Error::PartialPut`], listing the chunks confirmed applied.
    pub fn put(
        &self,
        world: &str,
        edits: &[ChunkEdit],
    ) -> impl Future<Output = Result<Vec<VersionEntry>>> + Send + 'static {
        let prepared = self.prepare_put(world, edits);
        let inner = self.inner.clone();
        async move {
            let Some((batches, turn, deadline)) = prepared? else {
                return Ok(Vec::new());
            };
            turn.wait().await;
            let result = run_put_batches(&inner, batches, deadline).await;
            drop(turn);
            result
        }
    }

    /// Validates and splits a put and takes its place in line for its chunks.
    fn prepare_put(
        &self,
        world: &str,
        edits: &[ChunkEdit],
    ) -> Result<Option<(Vec<PutRequest>, PutTurn, Instant)>> {
        let world = parse_world(world)?;
        let grouped = group_edits(edits)?;
        if grouped.is_empty() {
            return Ok(None);
        }
        let deadline = Instant::now() + self.inner.options.timeout;
        let turn = PutTurn::take(&self.inner, &world, grouped.iter().map(|(k, _)| *k));
        Ok(Some((put_batches(&world, grouped), turn, deadline)))
    }
}

/// A put's place in the per-chunk lines of its client: it waits for the puts begun before it
/// on any of its chunks, and lets the ones after it go when dropped.
struct PutTurn {
    inner: Arc<Inner>,
    id: u64,
    chunks: Vec<(WorldId, ChunkKey)>,
    before: Vec<PutDone>,
    _done: oneshot::Sender<()>,
}

impl PutTurn {
    fn take(inner: &Arc<Inner>, world: &WorldId, chunks: impl Iterator<Item = ChunkKey>) -> Self {
        let id = inner.next_put.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let done = rx.shared();
        let chunks: Vec<_> = chunks.map(|k| (world.clone(), k)).collect();
        let mut before = Vec::new();
        let mut tails = lock(&inner.put_tails);
        for c in &chunks {
            if let Some((_, prev)) = tails.insert(c.clone(), (id, done.clone())) {
                before.push(prev);
            }
        }
        Self {
            inner: inner.clone(),
            id,
            chunks,
            before,
            _done: tx,
        }
    }

    async fn wait(&self) {
        for prev in &self.before {
            // Finished or dropped: either way its turn is over.
            let _ = prev.clone().await;
        }
    }
}

impl Drop for PutTurn {
    fn drop(&mut self) {
        let mut tails = lock(&self.inner.put_tails);
        for c in &self.chunks {
            if tails.get(c).is_some_and(|(id, _)| *id == self.id) {
                tails.remove(c);
            }
        }
    }
}

/// Locks ignoring poison: the map stays consistent through every critical section.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends a put's requests (concurrently when several) and waits for all of them, so that a
/// failure can say which chunks were applied.
async fn run_put_batches(
    inner: &Arc<Inner>,
    batches: Vec<PutRequest>,
    deadline: Instant,
) -> Result<Vec<VersionEntry>> {
    if batches.len() == 1 {
        let only = batches.into_iter().next().expect("one batch");
        return inner.put_batch(only, deadline).await;
    }
    let total: usize = batches.iter().map(|b| chunks_of(b).len()).sum();
    // Concurrent within this task: each waits on the network, and every one is awaited (none
    // dropped half way) so the answer can say which were applied.
    let parts = join_all(
        batches
            .into_iter()
            .map(|batch| inner.put_batch(batch, deadline)),
    )
    .await;
    let mut applied = Vec::new();
    let mut cause = None;
    for part in parts {
        match part {
            Ok(entries) => applied.extend(entries),
            Err(e) => {
                cause.get_or_insert(e);
            }
        }
    }
    match cause {
        None => Ok(applied),
        Some(cause) => Err(Error::PartialPut {
            applied,
            total,
            cause: Box::new(cause),
        }),
    }
}

/// Sends every batch with `send` and concatenates the answers in batch order. A single batch
/// (the common case) runs in place, with no extra task and no hop to another worker thread;
/// several run concurrently.
async fn run_batches<B, T, F, Fut>(
    inner: &Arc<Inner>,
    mut batches: Vec<B>,
    send: F,
) -> Result<Vec<T>>
where
    B: Send + 'static,
    T: Send + 'static,
    F: Fn(Arc<Inner>, B) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>> + Send + 'static,
{
    if batches.len() == 1 {
        let only = batches.pop().expect("one batch");
        return send(inner.clone(), only).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, batch) in batches.into_iter().enumerate() {
        let run = send(inner.clone(), batch);
        tasks.spawn(async move { (n, run.await) });
    }
    let mut parts: Vec<Option<Vec<T>>> = (0..tasks.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.map_err(|e| Error::Internal(e.to_string()))?;
        parts[n] = Some(result?);
    }
    Ok(parts.into_iter().flatten().flatten().collect())
}

impl Inner {
    async fn fetch_batch(&self, query: FetchQuery, deadline: Instant) -> Result<Vec<FetchedBlob>> {
        let mut url = self.url.clone();
        url.set_query(Some(&query.to_query_string()));
        let body = self.send(Method::GET, url, None, deadline).await?;
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
                blob,
            });
        }
        Ok(out)
    }

    async fn put_batch(&self, request: PutRequest, deadline: Instant) -> Result<Vec<VersionEntry>> {
        let body = serde_json::to_vec(&request).map_err(|e| Error::Internal(e.to_string()))?;
        let answer = self
            .send(Method::PUT, self.url.clone(), Some(body), deadline)
            .await?;
        let resp: PutResponse = serde_json::from_slice(&answer)
            .map_err(|e| Error::Protocol(format!("put answer is not valid: {e}")))?;
        let expected = chunks_of(&request);
        let got: Vec<ChunkKey> = resp.chunks.iter().map(|c| c.key).collect();
        if got != expected {
            return Err(Error::Protocol(
                "put answer does not list the chunks sent".into(),
            ));
        }
        Ok(resp.chunks)
    }

    /// One logical request with retries of transient failures until `deadline`.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Vec<u8>> {
        let policy = self.options.retry;
        let timeout_ms = self.options.timeout.as_millis() as u64;
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
                    status,
                    message,
                    retry_after,
                }) if is_transient_status(status) => (
                    Error::Server {
                        status,
                        message,
                        attempts: attempt,
                    },
                    retry_after,
                ),
                Err(Failure::Status {
                    status, message, ..
                }) => return Err(final_status_error(status, message)),
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
            if attempt > policy.max_retries {
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
        let mut req = self
            .http
            .request(method, url)
            .header("token", self.token.clone());
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
        if (200..300).contains(&status) {
            Ok(bytes)
        } else if (300..400).contains(&status) {
            Err(Failure::Fatal(redirect_refused(status, resp_location)))
        } else {
            Err(Failure::Status {
                status,
                message: error_message(&bytes),
                retry_after,
            })
        }
    }
}

/// The chunks a put request touches, in order (its edits are grouped by chunk).
fn chunks_of(request: &PutRequest) -> Vec<ChunkKey> {
    let mut chunks: Vec<ChunkKey> = Vec::new();
    for e in &request.edits {
        if chunks.last() != Some(&e.chunk) {
            chunks.push(e.chunk);
        }
    }
    chunks
}

/// What one attempt ended in, before the retry decision.
enum Failure {
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
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

fn final_status_error(status: u16, message: String) -> Error {
    match status {
        401 => Error::Unauthorized(message),
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
fn error_message(body: &[u8]) -> String {
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

fn parse_world(world: &str) -> Result<WorldId> {
    WorldId::new(world).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Splits a fetch into queries within the per-request chunk and URL limits.
fn fetch_batches(world: &WorldId, chunks: &[(ChunkKey, Option<u64>)]) -> Vec<FetchQuery> {
    let mut batches = Vec::new();
    let mut current = FetchQuery {
        world: world.clone(),
        chunks: Vec::new(),
    };
    let mut param_len = 0;
    for &(key, held) in chunks {
        // Upper bound of one entry: three i32, two commas, '@', a u64 and ';'.
        let entry_len = key.to_string().len() + held.map_or(0, |v| 1 + v.to_string().len()) + 1;
        if current.chunks.len() == MAX_CHUNKS_PER_FETCH
            || (param_len + entry_len > FETCH_PARAM_BUDGET && !current.chunks.is_empty())
        {
            batches.push(std::mem::replace(
                &mut current,
                FetchQuery {
                    world: world.clone(),
                    chunks: Vec::new(),
                },
            ));
            param_len = 0;
        }
        current.chunks.push((key, held));
        param_len += entry_len;
    }
    if !current.chunks.is_empty() {
        batches.push(current);
    }
    batches
}

/// A chunk and its (index, value) edits.
type ChunkCubes = (ChunkKey, Vec<(u16, i32)>);

/// Validates edits and groups them per chunk (chunks in first-appearance order), keeping only
/// the last edit of each cube so no chunk carries more than 4096 edits.
fn group_edits(edits: &[ChunkEdit]) -> Result<Vec<ChunkCubes>> {
    let mut order: Vec<ChunkCubes> = Vec::new();
    let mut slot: HashMap<ChunkKey, usize> = HashMap::new();
    for (i, e) in edits.iter().enumerate() {
        let cube = e
            .resolve()
            .map_err(|err| Error::InvalidArgument(format!("edit {i}: {err}")))?;
        let s = *slot.entry(e.chunk).or_insert_with(|| {
            order.push((e.chunk, Vec::new()));
            order.len() - 1
        });
        order[s].1.push((cube.index, cube.value));
    }
    for (_, cubes) in &mut order {
        let mut seen = [false; CHUNK_CUBES];
        let mut kept: Vec<(u16, i32)> = cubes
            .iter()
            .rev()
            .filter(|(i, _)| !std::mem::replace(&mut seen[usize::from(*i)], true))
            .copied()
            .collect();
        kept.reverse();
        *cubes = kept;
    }
    Ok(order)
}

/// Packs grouped edits into requests within the per-request edit and chunk limits, never
/// splitting one chunk's edits across requests.
fn put_batches(world: &WorldId, grouped: Vec<ChunkCubes>) -> Vec<PutRequest> {
    let request = |edits| PutRequest {
        world: world.clone(),
        idempotency_key: Some(new_idempotency_key()),
        edits,
    };
    let mut batches = Vec::new();
    let mut current: Vec<ChunkEdit> = Vec::new();
    let mut chunks = 0;
    for (key, cubes) in grouped {
        if chunks == MAX_CHUNKS_PER_PUT || current.len() + cubes.len() > MAX_EDITS_PER_PUT {
            batches.push(request(std::mem::take(&mut current)));
            chunks = 0;
        }
        current.extend(
            cubes
                .into_iter()
                .map(|(i, v)| ChunkEdit::at_index(key, i, v)),
        );
        chunks += 1;
    }
    if !current.is_empty() {
        batches.push(request(current));
    }
    batches
}

/// 128 random bits: a fresh key for each request of each logical put.
fn new_idempotency_key() -> IdempotencyKey {
    let bits: u128 = rand::rng().random();
    IdempotencyKey::new(&format!("{bits:032x}")).expect("32 hex digits make a valid key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_splits_by_count_and_url_length() {
        let w = WorldId::default();
        let small: Vec<_> = (0..729)
            .map(|i| (ChunkKey::new(i % 9, i / 81, (i / 9) % 9), None))
            .collect();
        let b = fetch_batches(&w, &small);
        assert_eq!(
            b.iter().map(|q| q.chunks.len()).collect::<Vec<_>>(),
            vec![256, 256, 217]
        );
        let wide: Vec<_> = (0..256)
            .map(|i| {
                (
                    ChunkKey::new(i32::MIN + i, i32::MIN, i32::MIN),
                    Some(u64::MAX),
                )
            })
            .collect();
        let b = fetch_batches(&w, &wide);
        assert!(b.len() > 1);
        for q in &b {
            let qs = q.to_query_string();
            let param = qs.split("chunks=").nth(1).unwrap();
            assert!(param.len() <= FETCH_PARAM_BUDGET, "{}", param.len());
        }
        assert_eq!(b.iter().map(|q| q.chunks.len()).sum::<usize>(), 256);
    }

    #[test]
    fn put_groups_dedupes_and_splits_by_chunk() {
        let k = ChunkKey::new(0, 0, 0);
        let mut edits: Vec<ChunkEdit> = (0..20_000)
            .map(|i| ChunkEdit::at_index(k, (i % 4096) as u16, i))
            .collect();
        edits.push(ChunkEdit::at_index(ChunkKey::new(1, 0, 0), 0, 1));
        let g = group_edits(&edits).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].1.len(), 4096);
        // The last edit of cube 0 wins: 16384 + ... the largest i with i % 4096 == 0 below 20000.
        assert!(g[0].1.contains(&(0, 16384)));
        let many: Vec<ChunkEdit> = (0..600)
            .flat_map(|c| (0..40).map(move |i| ChunkEdit::at_index(ChunkKey::new(c, 0, 0), i, 1)))
            .collect();
        let batches = put_batches(&WorldId::default(), group_edits(&many).unwrap());
        for b in &batches {
            assert!(b.edits.len() <= MAX_EDITS_PER_PUT);
            let mut keys: Vec<_> = b.edits.iter().map(|e| e.chunk).collect();
            keys.dedup();
            assert!(keys.len() <= MAX_CHUNKS_PER_PUT);
        }
        assert_eq!(batches.iter().map(|b| b.edits.len()).sum::<usize>(), 24_000);
        let bad = [ChunkEdit {
            chunk: k,
            index: Some(4096),
            local: None,
            value: 1,
        }];
        assert!(matches!(group_edits(&bad), Err(Error::InvalidArgument(_))));
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
