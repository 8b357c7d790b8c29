//! The async Rust client: fetch and put chunks through the CubeWalk API.

use crate::batching::{fetch_batches, group_edits, put_batches, run_batches, run_put_batches};
use crate::endpoint::parse_endpoint;
use crate::error::{Error, Result};
pub use crate::options::ClientOptions;
use crate::token::{Credentials, Token};
use crate::transport::Transport;
use cubewalk_protocol::codec::{decode_chunk_into, ChunkData};
use cubewalk_protocol::{ChunkEdit, ChunkKey, PutRequest, VersionEntry, WorldId, CHUNK_CUBES};
use futures_util::future::{FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::time::Instant;

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
    /// Its write sequence (grows with every write the store applies; 0 for a chunk
    /// never written): orders this answer against realtime changes.
    pub seq: u64,
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
    transport: Transport,
    /// The token, shared with the transport and the realtime connections started from this
    /// client: one replacement reaches all of them.
    credentials: Arc<Credentials>,
    options: ClientOptions,
    /// For each chunk, the last put begun on it that has not finished: a later put of the
    /// same chunk waits for it, so puts apply in the order they were begun.
    put_tails: Mutex<HashMap<(WorldId, ChunkKey), (u64, PutDone)>>,
    next_put: AtomicU64,
    /// The realtime followers started from this client: each fetch tells them the write
    /// sequence each chunk was at.
    followers: Mutex<Vec<std::sync::Weak<crate::realtime::Floors>>>,
}

/// Resolves when a put has finished (or was dropped).
type PutDone = Shared<oneshot::Receiver<()>>;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.transport.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `endpoint` (the URL of `/cubewalkblocks`, stage included) sending `token`.
    pub fn new(endpoint: &str, token: &str, options: ClientOptions) -> Result<Self> {
        let url = parse_endpoint(endpoint, options.allow_insecure_http)?;
        let credentials = Arc::new(Credentials::new(Token::parse(token)?));
        options.validate()?;
        let transport = Transport::new(url, Some(credentials.clone()), &options)?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                credentials,
                options,
                put_tails: Mutex::new(HashMap::new()),
                next_put: AtomicU64::new(0),
                followers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Replaces the token this client (and its clones, and the realtime connections started
    /// from it) sends, without touching anything else: every HTTP attempt that starts from
    /// now on sends the new token, retries of requests already running included, and so does
    /// the next realtime connect or reconnect (an open WebSocket connection stays as it is:
    /// the server checked its token when it opened). A request that meets a 401 after its
    /// token was replaced is sent again at once with the new one. Thread-safe; the token is
    /// checked as [`Client::new`] checks it, and on error the old one stays.
    pub fn set_token(&self, token: &str) -> Result<()> {
        self.inner.credentials.replace(Token::parse(token)?);
        Ok(())
    }

    /// The token holder shared with the transport (for the realtime connection).
    pub(crate) fn credentials(&self) -> &Arc<Credentials> {
        &self.inner.credentials
    }

    /// Tells `floors` (a realtime follower's) what every fetch from now on answers.
    pub(crate) fn register_follower(&self, floors: &Arc<crate::realtime::Floors>) {
        let mut list = self
            .inner
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        list.retain(|f| f.strong_count() > 0);
        list.push(Arc::downgrade(floors));
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
        let fetched = run_batches(&self.inner, batches, move |inner, query| async move {
            inner.transport.fetch_batch(query, deadline).await
        })
        .await?;
        let followers: Vec<_> = self
            .inner
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        for floors in followers {
            floors.record(&world, &fetched);
        }
        Ok(fetched)
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
    ///
    /// A request whose answer never came (timeout, broken connection, 5xx) is **fenced**
    /// before the put answers: the SDK asks the server, within one more `timeout`, to cancel
    /// it on each of its chunks and learns where it had applied. So an error answer means
    /// the chunks not listed as applied were not changed and never will be by this put; a
    /// later put of the same chunks can never be overtaken by it. If the fence cannot reach
    /// the server either, the put answers its error and its chunks' later puts wait until
    /// [`FENCE_HORIZON_SECS`] after its last send, past which the server can no longer apply
    /// it. A put future dropped mid-flight is fenced the same way in the background.
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
            // The requests live in `in_flight` while they are sent: fenced from there if this
            // future is dropped half way.
            let in_flight = InFlight {
                inner: inner.clone(),
                batches,
                turn: Some(turn),
                deadline,
                runtime: tokio::runtime::Handle::current(),
            };
            let outcome = run_put_batches(
                &inner.transport,
                &in_flight.batches,
                deadline,
                inner.options.timeout,
            )
            .await;
            in_flight.settle(outcome.unsettled);
            outcome.result
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

/// How long, after its last possible send, a put whose fence could not be recorded holds its
/// chunks' place in line (see [`Client::put`]).
pub const FENCE_HORIZON_SECS: u64 = crate::batching::FENCE_HORIZON.as_secs();

/// A put's requests between their first send and their outcome: holds the put's place in line
/// and, when dropped before [`InFlight::settle`] (the caller gave up on the future), fences
/// the requests in the background before letting the next puts go.
struct InFlight {
    inner: Arc<Inner>,
    batches: Vec<PutRequest>,
    turn: Option<PutTurn>,
    deadline: Instant,
    runtime: tokio::runtime::Handle,
}

impl InFlight {
    /// The put has its outcome: the next puts may go now, or after the fence horizon when a
    /// request stayed `unsettled`.
    fn settle(mut self, unsettled: bool) {
        let turn = self.turn.take();
        if unsettled {
            let until = self.deadline + crate::batching::FENCE_HORIZON;
            self.runtime.spawn(async move {
                tokio::time::sleep_until(until).await;
                drop(turn);
            });
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        let inner = self.inner.clone();
        let batches = std::mem::take(&mut self.batches);
        let until = self.deadline + crate::batching::FENCE_HORIZON;
        // If the runtime is shutting down the task never runs: the turn is dropped with it,
        // and no later put of this client can run anyway.
        self.runtime.spawn(async move {
            let budget = Instant::now() + inner.options.timeout;
            let mut unsettled = false;
            for batch in &batches {
                unsettled |= inner.transport.cancel_put(batch, budget).await.is_err();
            }
            if unsettled {
                tokio::time::sleep_until(until).await;
            }
            drop(turn);
        });
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

fn parse_world(world: &str) -> Result<WorldId> {
    WorldId::new(world).map_err(|e| Error::InvalidArgument(e.to_string()))
}
