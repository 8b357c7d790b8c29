//! The realtime client: one WebSocket connection to the CubeWalk WebSocket API that follows a
//! set of chunks and queues what the server pushes, for the caller to drain when it likes.
//!
//! The connection is kept by a background task: it connects with the client's current token
//! (read afresh for every connect, so [`Client::set_token`] applies to the next one),
//! subscribes to the followed set (again after every reconnect), reconnects with exponential
//! backoff and full jitter when the connection drops, and pings so API Gateway's idle timeout
//! never closes a quiet connection. Nothing is ever called back: events wait in a bounded queue
//! until [`Realtime::drain`].
//!
//! What the caller does with events (the rule that keeps a copy right):
//! - [`RealtimeEvent::Subscribed`]: the subscription is active; fetch the followed chunks now
//!   (with the versions held, so unchanged ones cost nothing) and from here on every change
//!   of them arrives as an event.
//! - [`RealtimeEvent::Changed`]: when the copy held is at the change's `previous` version and
//!   the change carries edits, apply them (the copy is then at `version`); when the copy is
//!   already at `version`, nothing to do; otherwise refetch the chunk.
//! - [`RealtimeEvent::Gap`]: changes may have been missed (the connection was lost, or the
//!   queue overflowed because nobody drained it): refetch every followed chunk.

use crate::client::Client;
use crate::endpoint::parse_realtime_endpoint;
use crate::error::{Error, Result};
use crate::token::Credentials;
use cubewalk_protocol::realtime::{Change, ClientMessage, MAX_SUBSCRIBED_CHUNKS};
use cubewalk_protocol::{ChunkKey, WorldId};
use futures_util::StreamExt;
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use url::Url;

/// Most events queued before the oldest are dropped for one [`RealtimeEvent::Gap`].
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// How often a quiet connection pings (API Gateway closes a connection idle for 10 minutes).
pub const PING_INTERVAL: Duration = Duration::from_secs(300);
/// First reconnect delay (before jitter); doubles per failed attempt up to
/// [`RECONNECT_MAX_DELAY`].
pub const RECONNECT_BASE_DELAY: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(30);

/// What the server pushed, or what the connection went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeEvent {
    /// A followed chunk changed.
    Changed(Change),
    /// The server acknowledged the subscription: fetch the followed chunks now.
    Subscribed,
    /// Changes may have been missed: refetch every followed chunk.
    Gap,
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RealtimeState {
    /// Not started, or stopped.
    Off = 0,
    /// Connecting, or waiting to reconnect.
    Connecting = 1,
    /// Connected (and subscribed once the server acknowledged it).
    Connected = 2,
    /// The server refused the token (a 401 to a token that never worked, or a 403, at
    /// connect): no more attempts until a new token is set ([`Client::set_token`]).
    Refused = 3,
    /// The server answered 401 at connect to a token that had worked before or has expired:
    /// no more attempts until a new token is set, then they resume with it.
    TokenRefused = 4,
}

impl RealtimeState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Connecting,
            2 => Self::Connected,
            3 => Self::Refused,
            4 => Self::TokenRefused,
            _ => Self::Off,
        }
    }
}

/// Keeps out-of-order changes from being applied: per chunk, the highest write sequence seen
/// on this connection. A change at or below it (delivered late, or after the store lost the
/// chunk and started counting again) loses its edits, so the caller refetches instead of
/// applying them to a content that only looks like their "previous" (A → B → A).
#[derive(Debug, Default)]
struct Sequencer {
    last: HashMap<ChunkKey, u64>,
}

impl Sequencer {
    fn admit(&mut self, mut change: Change) -> Change {
        let last = self.last.entry(change.chunk).or_insert(0);
        if change.seq <= *last {
            change.edits = None;
        }
        *last = (*last).max(change.seq);
        change
    }

    /// Forgets chunks no longer followed (bounds the map by the followed set).
    fn keep_only(&mut self, chunks: &[ChunkKey]) {
        let followed: std::collections::HashSet<&ChunkKey> = chunks.iter().collect();
        self.last.retain(|k, _| followed.contains(k));
    }
}

/// The followed set as the caller last set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Followed {
    world: Option<WorldId>,
    chunks: Vec<ChunkKey>,
}

struct EventQueue {
    events: Mutex<VecDeque<RealtimeEvent>>,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

impl EventQueue {
    fn push(&self, event: RealtimeEvent) {
        let mut q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_QUEUED_EVENTS {
            // Nobody is draining: whatever is queued is stale; one gap says "refetch all".
            q.clear();
            q.push_back(RealtimeEvent::Gap);
            return;
        }
        q.push_back(event);
    }

    fn set_state(&self, s: RealtimeState) {
        self.state.store(s as u8, Ordering::Release);
    }

    fn fail(&self, why: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }
}

/// A running realtime connection; stops when dropped.
pub struct Realtime {
    shared: Arc<EventQueue>,
    followed: watch::Sender<Followed>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Drop for Realtime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Realtime {
    /// Starts following nothing on `endpoint` (`wss://...`, or `ws://` to loopback), with
    /// `client`'s token, CA and insecure-transport settings. Must be called inside a Tokio
    /// runtime, which runs the connection.
    pub fn start(client: &Client, endpoint: &str) -> Result<Self> {
        let options = client.options();
        let url = parse_realtime_endpoint(endpoint, options.allow_insecure_http)?;
        let tls = tls_config(options.extra_root_ca_pem.as_deref())?;
        let shared = Arc::new(EventQueue {
            events: Mutex::new(VecDeque::new()),
            state: AtomicU8::new(RealtimeState::Connecting as u8),
            last_error: Mutex::new(None),
        });
        let (followed, watch) = watch::channel(Followed::default());
        let credentials = client.credentials().clone();
        let connection = Connection {
            url,
            tokens: credentials.subscribe(),
            credentials,
            tls,
            connect_timeout: options.connect_timeout,
            shared: shared.clone(),
            followed: watch,
            ever_subscribed: false,
            gap_pending: false,
            resend_at: None,
            refusals: 0,
            sequencer: Sequencer::default(),
        };
        let task = tokio::spawn(connection.run());
        Ok(Self {
            shared,
            followed,
            task,
        })
    }

    /// Follows exactly `chunks` of `world` from now on (an empty set follows nothing). The
    /// server's acknowledgement arrives as [`RealtimeEvent::Subscribed`].
    pub fn follow(&self, world: &WorldId, chunks: &[ChunkKey]) -> Result<()> {
        if chunks.len() > MAX_SUBSCRIBED_CHUNKS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_SUBSCRIBED_CHUNKS} chunks can be followed, got {}",
                chunks.len()
            )));
        }
        self.followed.send_replace(Followed {
            world: Some(world.clone()),
            chunks: chunks.to_vec(),
        });
        Ok(())
    }

    /// Takes up to `max` queued events, oldest first, handing each to `take`; stops early
    /// (leaving the event queued) when `take` answers false.
    pub fn drain(&self, max: usize, mut take: impl FnMut(&RealtimeEvent) -> bool) -> usize {
        let mut q = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        while n < max {
            let Some(front) = q.front() else { break };
            if !take(front) {
                break;
            }
            q.pop_front();
            n += 1;
        }
        n
    }

    /// Where the connection stands.
    pub fn state(&self) -> RealtimeState {
        RealtimeState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// The last problem the connection met (a refused token, an unreachable endpoint, an
    /// error the server answered), if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// rustls with ring and the Mozilla roots (plus the client's extra CA), as the HTTP
/// transport trusts.
fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|e| Error::InvalidArgument(format!("extra CA is not valid PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::InvalidArgument(format!("extra CA refused: {e}")))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Internal(format!("TLS set-up: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Socket = tokio_tungstenite::WebSocketStream<Box<dyn Stream>>;

/// Why one connection ended.
enum Ended {
    /// It may work again later: reconnect.
    Retry,
    /// The token was refused: wait for another one, in this state.
    Refused(RealtimeState),
    /// The [`Realtime`] handle is gone.
    Stopped,
}

/// Why one connect failed.
enum Refusal {
    /// The token was refused: stop in this state until another is set.
    Refused(RealtimeState, String),
    /// Refused, but the token had been replaced meanwhile: try the new one.
    Stale,
    /// Anything else: retry later.
    Other(String),
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Self::Other(why)
    }
}

struct Connection {
    url: Url,
    /// The client's token holder, read at every connect.
    credentials: Arc<Credentials>,
    /// Tells a refused connection that a new token was set.
    tokens: watch::Receiver<u64>,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    shared: Arc<EventQueue>,
    followed: watch::Receiver<Followed>,
    /// A subscription was acknowledged on some connection before.
    ever_subscribed: bool,
    /// The next acknowledgement closes a window without delivery: report it as a gap.
    gap_pending: bool,
    /// When to send the subscription again after the server answered it with an error (its
    /// store unavailable, throttled), and how many times in a row that happened.
    resend_at: Option<tokio::time::Instant>,
    refusals: u32,
    /// Orders this connection's changes per chunk.
    sequencer: Sequencer,
}

impl Connection {
    async fn run(mut self) {
        let mut failures: u32 = 0;
        loop {
            self.shared.set_state(RealtimeState::Connecting);
            let started = tokio::time::Instant::now();
            match self.open().await {
                Ok(socket) => {
                    self.shared.set_state(RealtimeState::Connected);
                    self.gap_pending = self.ever_subscribed;
                    // A new connection: the caller refetches everything at its gap anyway.
                    self.sequencer = Sequencer::default();
                    match self.serve(socket).await {
                        Ended::Stopped => return,
                        Ended::Retry | Ended::Refused(_) => {}
                    }
                    // A connection that lived a while was healthy: start backing off afresh.
                    if started.elapsed() > Duration::from_secs(30) {
                        failures = 0;
                    }
                }
                Err(Ended::Refused(state)) => {
                    // Trying the same token again would only be refused again: wait for the
                    // game to set another (at once if it already did since this connect read
                    // the token), then start afresh with it.
                    self.shared.set_state(state);
                    if self.tokens.changed().await.is_err() {
                        return;
                    }
                    failures = 0;
                    continue;
                }
                Err(Ended::Stopped) => return,
                Err(Ended::Retry) => {}
            }
            failures = failures.saturating_add(1);
            let cap = RECONNECT_BASE_DELAY
                .saturating_mul(1 << failures.min(16))
                .min(RECONNECT_MAX_DELAY);
            let delay = rand::rng().random_range(Duration::ZERO..=cap);
            self.shared.set_state(RealtimeState::Connecting);
            tokio::time::sleep(delay).await;
        }
    }

    async fn open(&mut self) -> std::result::Result<Socket, Ended> {
        // Marks the current token seen: a replacement from here on wakes a refused wait.
        self.tokens.borrow_and_update();
        let token = self.credentials.current();
        let connect = async {
            let host = self.url.host_str().unwrap_or_default();
            let port = self.url.port_or_known_default().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Stream> = if self.url.scheme() == "wss" {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("bad host name: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}: {e}"))?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            let mut request = self
                .url
                .as_str()
                .into_client_request()
                .map_err(|e| format!("bad request: {e}"))?;
            request
                .headers_mut()
                .insert("token", token.header().clone());
            let config = WebSocketConfig::default()
                .max_message_size(Some(1 << 20))
                .max_frame_size(Some(1 << 20));
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map(|(socket, _)| socket)
                .map_err(|e| match e {
                    tungstenite::Error::Http(r) => match r.status().as_u16() {
                        401 if !self.credentials.is_current(&token) => {
                            // Replaced while connecting: the next attempt sends the new one.
                            Refusal::Stale
                        }
                        401 if token.refused_after_use() => Refusal::Refused(
                            RealtimeState::TokenRefused,
                            "token refused: HTTP 401 to a token that had worked or has \
                             expired; set a new token"
                                .into(),
                        ),
                        status @ (401 | 403) => Refusal::Refused(
                            RealtimeState::Refused,
                            format!("refused: HTTP {status} (is the token right?)"),
                        ),
                        status => Refusal::Other(format!("WebSocket handshake: HTTP {status}")),
                    },
                    other => Refusal::Other(format!("WebSocket handshake: {other}")),
                })
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(socket)) => {
                token.mark_worked();
                Ok(socket)
            }
            Ok(Err(Refusal::Refused(state, why))) => {
                self.shared.fail(why);
                Err(Ended::Refused(state))
            }
            Ok(Err(Refusal::Stale)) => Err(Ended::Retry),
            Ok(Err(Refusal::Other(why))) => {
                self.shared.fail(token.scrub(why));
                Err(Ended::Retry)
            }
            Err(_) => {
                self.shared.fail("realtime connect timed out".into());
                Err(Ended::Retry)
            }
        }
    }

    /// Runs one open connection until it ends.
    async fn serve(&mut self, mut socket: Socket) -> Ended {
        use futures_util::SinkExt;
        // Subscribe to the current set at once (the watch may not change again).
        self.followed.mark_changed();
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        self.resend_at = None;
        loop {
            let resend = self.resend_at;
            let resend_due = async move {
                match resend {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = self.followed.changed() => {
                    if changed.is_err() {
                        // The Realtime handle is gone.
                        let _ = socket.close(None).await;
                        return Ended::Stopped;
                    }
                    let followed = self.followed.borrow_and_update().chunks.clone();
                    self.sequencer.keep_only(&followed);
                    if !self.subscribe(&mut socket).await {
                        return Ended::Retry;
                    }
                }
                _ = resend_due => {
                    self.resend_at = None;
                    if !self.subscribe(&mut socket).await {
                        return Ended::Retry;
                    }
                }
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return Ended::Retry;
                    }
                }
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None => return Ended::Retry,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            self.shared.fail(format!("realtime connection lost: {e}"));
                            return Ended::Retry;
                        }
                    };
                    self.receive(text.as_str());
                }
            }
        }
    }

    /// Sends the followed set; false when the connection is gone.
    async fn subscribe(&mut self, socket: &mut Socket) -> bool {
        use futures_util::SinkExt;
        let followed = self.followed.borrow().clone();
        let Some(world) = followed.world else {
            return true;
        };
        let text = serde_json::to_string(&ClientMessage::Subscribe {
            world,
            chunks: followed.chunks,
        })
        .unwrap_or_default();
        socket.send(Message::text(text)).await.is_ok()
    }

    fn receive(&mut self, text: &str) {
        if text.starts_with('[') {
            match Change::parse(text) {
                Ok(change) => {
                    let change = self.sequencer.admit(change);
                    self.shared.push(RealtimeEvent::Changed(change));
                }
                Err(e) => self.shared.fail(format!("unreadable change message: {e}")),
            }
            return;
        }
        let answer: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        if answer.get("subscribed").is_some() {
            // The first acknowledgement of a connection after an earlier one was subscribed
            // closes a window in which changes were not delivered.
            let event = if self.gap_pending {
                RealtimeEvent::Gap
            } else {
                RealtimeEvent::Subscribed
            };
            self.gap_pending = false;
            self.ever_subscribed = true;
            self.refusals = 0;
            self.shared.push(event);
        } else if answer.get("unsubscribed").is_none() {
            // An error answer (ours, or API Gateway's own such as a throttled or failed
            // route): the subscription may not be in place, so send it again after a
            // backoff. No event until it is acknowledged, so the caller keeps polling.
            let answer = text.chars().take(300).collect::<String>();
            self.shared.fail(
                self.credentials
                    .current()
                    .scrub(format!("realtime server answered: {answer}")),
            );
            self.refusals = self.refusals.saturating_add(1);
            let delay = RECONNECT_BASE_DELAY
                .saturating_mul(1 << self.refusals.min(16))
                .min(RECONNECT_MAX_DELAY);
            self.resend_at = Some(tokio::time::Instant::now() + delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: u64, previous: u64, version: u64) -> Change {
        Change {
            chunk: ChunkKey::new(0, 0, 0),
            previous,
            version,
            seq,
            edits: Some(vec![(1, 1)]),
        }
    }

    #[test]
    fn changes_out_of_order_lose_their_edits_so_an_a_b_a_edit_cannot_mislead() {
        // A (version 1) -> B (2) -> A (1 again): the second change arrives first.
        let mut s = Sequencer::default();
        let late_first = s.admit(change(3, 2, 1));
        assert!(late_first.edits.is_some());
        // The earlier change names "previous" 1, which the follower (at A) seems to hold:
        // applying it would leave B on screen while the world holds A.
        let early_second = s.admit(change(2, 1, 2));
        assert_eq!(early_second.edits, None, "refetch, not apply");
        // In order again afterwards.
        assert!(s.admit(change(4, 1, 5)).edits.is_some());
        // A duplicate never applies twice.
        assert_eq!(s.admit(change(4, 1, 5)).edits, None);
        s.keep_only(&[]);
        assert!(s.last.is_empty());
    }

    #[test]
    fn a_queue_nobody_drains_keeps_one_gap_instead_of_growing() {
        let q = EventQueue {
            events: Mutex::new(VecDeque::new()),
            state: AtomicU8::new(0),
            last_error: Mutex::new(None),
        };
        for _ in 0..MAX_QUEUED_EVENTS + 10 {
            q.push(RealtimeEvent::Subscribed);
        }
        let events = q.events.lock().unwrap();
        assert!(events.len() <= MAX_QUEUED_EVENTS);
        assert_eq!(
            events.front(),
            Some(&RealtimeEvent::Gap),
            "the overflow is reported"
        );
    }
}
