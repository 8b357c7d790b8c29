//! The realtime client: one MQTT connection (MQTT 3.1.1 over WebSocket) to the CubeWalk
//! broker (AWS IoT Core, or the local gate of `cubewalk-server serve`) that follows a set of
//! chunks and queues the changes published for them, for the caller to drain when it likes.
//!
//! The connection is kept by a background task: it connects with the client's current token
//! (the `token` header of the WebSocket upgrade, read afresh for every connect, so
//! [`Client::set_token`] applies to the next one), subscribes to the region topics covering the
//! followed chunks (again after every reconnect), keeps the session alive with MQTT PINGREQ
//! (which the broker counts) and reconnects with exponential backoff and full jitter when the
//! connection drops. Nothing is ever called back: events wait in a bounded queue until
//! [`Realtime::drain`].
//!
//! What the caller does with events (the rule that keeps a copy right):
//! - [`RealtimeEvent::Subscribed`]: the subscription is active; fetch the followed chunks now
//!   (with the versions held, so unchanged ones cost nothing) and from here on every change
//!   of them arrives as an event.
//! - [`RealtimeEvent::Changed`]: when the copy held is at the change's `previous` version and
//!   the change carries edits, apply them (the copy is then at `version`); when the copy is
//!   already at `version`, nothing to do; otherwise refetch the chunk.
//! - [`RealtimeEvent::Gap`]: changes may have been missed (the connection was lost, or the
//!   queue overflowed because nobody drained it), or it is time to reconcile (every
//!   [`RECONCILE_INTERVAL`]): refetch every followed chunk with the versions held.
//!
//! Ordering is by each chunk's write sequence, which fetch answers carry too: the client
//! remembers the sequence of what it last fetched or saw applied for each chunk, drops a change
//! at or below it (old news, whatever was followed before), keeps a change's edits only when
//! it starts exactly there, and strips them (refetch) after a gap.

use crate::client::Client;
use crate::endpoint::parse_realtime_endpoint;
use crate::error::{Error, Result};
use crate::token::Credentials;
use bytes::BytesMut;
use cubewalk_protocol::realtime::{
    parse_region_message, parse_region_topic, region_topic, regions_covering, Change, Region,
    MAX_FOLLOWED_REGIONS, MAX_SUBSCRIBED_CHUNKS,
};
use cubewalk_protocol::{ChunkKey, WorldId};
use futures_util::StreamExt;
use rand::Rng;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, Subscribe, SubscribeFilter, SubscribeReasonCode, Unsubscribe,
};
use rumqttc::mqttbytes::QoS;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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
/// The MQTT keepalive: a PINGREQ goes out every this long, and a connection from which
/// nothing (not even the PINGRESP) arrived for one and a half times it is given up (IoT Core
/// allows 30 to 1200 s).
pub const KEEPALIVE: Duration = Duration::from_secs(60);
/// How often the connection checks that the broker still answers.
const SILENCE_CHECK: Duration = Duration::from_secs(5);
/// How often a follower reconciles: one [`RealtimeEvent::Gap`], so the caller refetches the
/// followed chunks with the versions held (unchanged ones cost a few bytes each).
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(60);
/// Most topic filters in one SUBSCRIBE (AWS IoT Core's limit).
const FILTERS_PER_SUBSCRIBE: usize = 8;
/// Largest MQTT packet accepted from the broker (IoT Core's message limit is 128 KB).
const MAX_PACKET_BYTES: usize = 256 * 1024;
/// Most chunks whose write sequence is remembered; past it, those no longer followed are
/// forgotten.
const MAX_FLOORS: usize = 65_536;
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

/// Per chunk, what one follower knows of the write sequence of the copy the caller holds:
/// `fetched`, set exactly by every fetch answer of its client (a store that lost the chunk
/// starts counting again, and the fetch says so), and `admitted`, moved on by every change let
/// through since.
pub struct Floors {
    seqs: Mutex<HashMap<(WorldId, ChunkKey), Floor>>,
    /// Where a refetch is asked for when a fetch answers older than a change already handed
    /// out.
    events: Arc<EventQueue>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Floor {
    fetched: u64,
    admitted: u64,
}

impl std::fmt::Debug for Floors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Floors").finish_non_exhaustive()
    }
}

impl Floors {
    fn new(events: Arc<EventQueue>) -> Self {
        Self {
            seqs: Mutex::new(HashMap::new()),
            events,
        }
    }

    /// Records what a fetch of `world` answered. A chunk answered at a sequence below a
    /// change already handed out (the fetch read it before that write, or the store lost the
    /// chunk) gets a refetch event: the caller may have applied that change and then written
    /// this older answer over its version.
    pub(crate) fn record(&self, world: &WorldId, fetched: &[crate::client::FetchedBlob]) {
        let mut seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        for f in fetched {
            let floor = seqs.entry((world.clone(), f.key)).or_default();
            if f.seq < floor.admitted {
                self.events.push(RealtimeEvent::Changed(Change {
                    chunk: f.key,
                    previous: cubewalk_protocol::NO_REVISION,
                    version: cubewalk_protocol::NO_REVISION,
                    from_seq: f.seq,
                    seq: floor.admitted,
                    edits: None,
                }));
            }
            *floor = Floor {
                fetched: f.seq,
                admitted: f.seq,
            };
        }
    }

    /// What to do with `change` of `world`: `None` to drop it (at or below what is held),
    /// else the change, with its edits only when it starts exactly at what is held (or
    /// nothing is known). Moves the floor on to the change's sequence.
    fn admit(&self, world: &WorldId, mut change: Change) -> Option<Change> {
        let mut seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        let floor = seqs.entry((world.clone(), change.chunk)).or_default();
        if floor.admitted != 0 {
            if change.seq <= floor.admitted {
                return None;
            }
            if change.from_seq != floor.admitted {
                change.edits = None;
            }
        }
        floor.admitted = change.seq;
        Some(change)
    }

    /// Whether `change` is still news when the caller drains it: a fetch answered since it
    /// was queued may hold its write already.
    fn still_news(&self, world: &WorldId, change: &Change) -> bool {
        let seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        seqs.get(&(world.clone(), change.chunk))
            .is_none_or(|floor| change.seq > floor.fetched)
    }

    /// Bounds the map: past [`MAX_FLOORS`], forgets the chunks not in `followed`.
    fn prune(&self, world: &WorldId, followed: &HashSet<ChunkKey>) {
        let mut seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        if seqs.len() > MAX_FLOORS {
            seqs.retain(|(w, k), _| w == world && followed.contains(k));
        }
    }
}

/// The followed set as the caller last set it (a set: each message's changes are looked up
/// in it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Followed {
    world: Option<WorldId>,
    chunks: Arc<HashSet<ChunkKey>>,
}

struct EventQueue {
    events: Mutex<VecDeque<RealtimeEvent>>,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
    /// The broker refused the followed set's subscription and it is not in place yet: a
    /// problem to report even while connected.
    subscription_refused: AtomicBool,
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
    floors: Arc<Floors>,
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
            subscription_refused: AtomicBool::new(false),
        });
        let (followed, watch) = watch::channel(Followed::default());
        let credentials = client.credentials().clone();
        let floors = Arc::new(Floors::new(shared.clone()));
        client.register_follower(&floors);
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
            floors: floors.clone(),
            subscribed: BTreeSet::new(),
            pending_acks: HashSet::new(),
            acked_target: false,
            next_pkid: 1,
            inbound: BytesMut::new(),
        };
        let task = tokio::spawn(connection.run());
        Ok(Self {
            shared,
            followed,
            task,
            floors,
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
        let regions = regions_covering(chunks).len();
        if regions > MAX_FOLLOWED_REGIONS {
            return Err(Error::InvalidArgument(format!(
                "the chunks span {regions} regions of {r}x{r}x{r} chunks; at most \
                 {MAX_FOLLOWED_REGIONS} can be followed (follow a compact neighbourhood)",
                r = cubewalk_protocol::realtime::REGION_CHUNKS
            )));
        }
        let previous = self.followed.send_replace(Followed {
            world: Some(world.clone()),
            chunks: Arc::new(chunks.iter().copied().collect()),
        });
        if previous.world.as_ref().is_some_and(|w| w != world) {
            // The other world's changes still queued name chunks of that world; the caller
            // would apply them to this one's (a change carries no world).
            let mut q = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
            q.retain(|e| !matches!(e, RealtimeEvent::Changed(_)));
        }
        Ok(())
    }

    /// Takes up to `max` queued events, oldest first, handing each to `take`; stops early
    /// (leaving the event queued) when `take` answers false.
    pub fn drain(&self, max: usize, mut take: impl FnMut(&RealtimeEvent) -> bool) -> usize {
        let world = self.followed.borrow().world.clone();
        let mut q = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        while n < max {
            let Some(front) = q.front() else { break };
            // A fetch answered since this change was queued may hold a newer copy already.
            if let (RealtimeEvent::Changed(change), Some(world)) = (front, &world) {
                if !self.floors.still_news(world, change) {
                    q.pop_front();
                    continue;
                }
            }
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

    /// What keeps the followed chunks from being delivered now, if anything: the last problem
    /// the connection met while it is not connected, or, while connected, the broker's refusal
    /// of the subscription (a token without the world) until it is in place.
    pub fn problem(&self) -> Option<String> {
        let refused = self.shared.subscription_refused.load(Ordering::Acquire);
        if self.state() == RealtimeState::Connected && !refused {
            return None;
        }
        self.last_error()
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

/// The next packet id (never 0).
fn bump(pkid: &mut u16) -> u16 {
    let id = *pkid;
    *pkid = pkid.wrapping_add(1).max(1);
    id
}

async fn send_packet(socket: &mut Socket, packet: Packet) -> bool {
    use futures_util::SinkExt;
    let mut out = BytesMut::new();
    if packet.write(&mut out, MAX_PACKET_BYTES).is_err() {
        return false;
    }
    socket.send(Message::binary(out.freeze())).await.is_ok()
}

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
    /// The write sequences held, shared with the client's fetches.
    floors: Arc<Floors>,
    /// The region topics subscribed on this connection (acknowledged or not).
    subscribed: BTreeSet<String>,
    /// Packet ids of SUBSCRIBEs not yet acknowledged.
    pending_acks: HashSet<u16>,
    /// Whether the current followed set was acknowledged (and announced).
    acked_target: bool,
    next_pkid: u16,
    /// Bytes of a partly received packet.
    inbound: BytesMut,
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
                    self.subscribed.clear();
                    self.pending_acks.clear();
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
        // What a previous connection left half read; what follows CONNACK on this one stays.
        self.inbound.clear();
        // Marks the current token seen: a replacement from here on wakes a refused wait.
        self.tokens.borrow_and_update();
        let token = self.credentials.current();
        let (url, tls, credentials) =
            (self.url.clone(), self.tls.clone(), self.credentials.clone());
        let timeout = self.connect_timeout;
        let connect = async {
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Stream> = if url.scheme() == "wss" {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("bad host name: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}: {e}"))?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            let mut request = url
                .as_str()
                .into_client_request()
                .map_err(|e| format!("bad request: {e}"))?;
            request
                .headers_mut()
                .insert("token", token.header().clone());
            request.headers_mut().insert(
                "sec-websocket-protocol",
                http::HeaderValue::from_static("mqtt"),
            );
            let config = WebSocketConfig::default()
                .max_message_size(Some(1 << 20))
                .max_frame_size(Some(1 << 20));
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map(|(socket, _)| socket)
                .map_err(|e| match e {
                    tungstenite::Error::Http(r) => match r.status().as_u16() {
                        401 if !credentials.is_current(&token) => {
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
        let connect = async {
            let mut socket = connect.await?;
            self.mqtt_connect(&mut socket).await?;
            Ok(socket)
        };
        match tokio::time::timeout(timeout, connect).await {
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

    /// Sends CONNECT and reads CONNACK (a refusal there is a refused token).
    async fn mqtt_connect(&mut self, socket: &mut Socket) -> std::result::Result<(), Refusal> {
        let id = format!(
            "cw-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let mut connect = rumqttc::mqttbytes::v4::Connect::new(id);
        connect.keep_alive = KEEPALIVE.as_secs() as u16;
        connect.clean_session = true;
        if !send_packet(socket, Packet::Connect(connect)).await {
            return Err(Refusal::Other("MQTT connect: connection lost".into()));
        }
        match self.next_packet(socket).await {
            Some(Packet::ConnAck(ack)) => match ack.code {
                ConnectReturnCode::Success => Ok(()),
                ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword => {
                    Err(Refusal::Refused(
                        RealtimeState::Refused,
                        "refused: the broker did not authorize the token".into(),
                    ))
                }
                other => Err(Refusal::Other(format!("MQTT connect refused: {other:?}"))),
            },
            Some(other) => Err(Refusal::Other(format!(
                "MQTT: expected CONNACK, got {other:?}"
            ))),
            None => Err(Refusal::Other("MQTT connect: connection lost".into())),
        }
    }

    /// The next whole packet from the broker; `None` when the connection ended or sent
    /// something that is not MQTT.
    async fn next_packet(&mut self, socket: &mut Socket) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.inbound, MAX_PACKET_BYTES) {
                Ok(p) => return Some(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => {
                    self.shared
                        .fail(format!("realtime: unreadable packet: {e}"));
                    return None;
                }
            }
            match socket.next().await {
                Some(Ok(Message::Binary(b))) => self.inbound.extend_from_slice(&b),
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.shared.fail(format!("realtime connection lost: {e}"));
                    return None;
                }
            }
        }
    }

    /// Runs one open connection until it ends.
    async fn serve(&mut self, mut socket: Socket) -> Ended {
        // Subscribe to the current set at once (the watch may not change again).
        self.followed.mark_changed();
        let mut ping = tokio::time::interval(KEEPALIVE);
        ping.tick().await;
        let mut reconcile = tokio::time::interval(RECONCILE_INTERVAL);
        reconcile.tick().await;
        let mut silence = tokio::time::interval(SILENCE_CHECK);
        silence.tick().await;
        let mut heard = tokio::time::Instant::now();
        self.resend_at = None;
        loop {
            let resend = self.resend_at;
            let resend_due = async move {
                match resend {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Whole packets already buffered go first.
            loop {
                match Packet::read(&mut self.inbound, MAX_PACKET_BYTES) {
                    Ok(packet) => self.receive(packet),
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                    Err(e) => {
                        self.shared
                            .fail(format!("realtime: unreadable packet: {e}"));
                        return Ended::Retry;
                    }
                }
            }
            tokio::select! {
                changed = self.followed.changed() => {
                    if changed.is_err() {
                        // The Realtime handle is gone.
                        let _ = send_packet(&mut socket, Packet::Disconnect).await;
                        let _ = socket.close(None).await;
                        return Ended::Stopped;
                    }
                    self.followed.borrow_and_update();
                    self.acked_target = false;
                    if !self.subscribe(&mut socket).await {
                        return Ended::Retry;
                    }
                }
                _ = resend_due => {
                    self.resend_at = None;
                    self.subscribed.clear();
                    if !self.subscribe(&mut socket).await {
                        return Ended::Retry;
                    }
                }
                _ = ping.tick() => {
                    if !send_packet(&mut socket, Packet::PingReq).await {
                        return Ended::Retry;
                    }
                }
                _ = silence.tick() => {
                    if heard.elapsed() > KEEPALIVE.mul_f32(1.5) {
                        self.shared.fail("realtime: the broker stopped answering".into());
                        return Ended::Retry;
                    }
                }
                _ = reconcile.tick() => {
                    if self.acked_target {
                        self.shared.push(RealtimeEvent::Gap);
                    }
                }
                frame = socket.next() => {
                    heard = tokio::time::Instant::now();
                    match frame {
                        Some(Ok(Message::Binary(b))) => {
                            if self.inbound.len() + b.len() > 2 * MAX_PACKET_BYTES {
                                self.shared.fail("realtime: packet too large".into());
                                return Ended::Retry;
                            }
                            self.inbound.extend_from_slice(&b);
                        }
                        Some(Ok(Message::Close(_))) | None => return Ended::Retry,
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            self.shared.fail(format!("realtime connection lost: {e}"));
                            return Ended::Retry;
                        }
                    }
                }
            }
        }
    }

    /// Brings the subscriptions to the followed set's regions: UNSUBSCRIBE what is no longer
    /// needed, SUBSCRIBE (8 filters at a time) what is new; when nothing is left to
    /// acknowledge, the set is announced. False when the connection is gone.
    async fn subscribe(&mut self, socket: &mut Socket) -> bool {
        let followed = self.followed.borrow().clone();
        let Some(world) = followed.world else {
            return true;
        };
        let chunks: Vec<ChunkKey> = followed.chunks.iter().copied().collect();
        let wanted: BTreeSet<String> = regions_covering(&chunks)
            .into_iter()
            .map(|r: Region| region_topic(&world, r))
            .collect();
        self.floors.prune(&world, &followed.chunks);
        let gone: Vec<String> = self.subscribed.difference(&wanted).cloned().collect();
        let new: Vec<String> = wanted.difference(&self.subscribed).cloned().collect();
        if !gone.is_empty() {
            let packet = Unsubscribe {
                pkid: bump(&mut self.next_pkid),
                topics: gone,
            };
            if !send_packet(socket, Packet::Unsubscribe(packet)).await {
                return false;
            }
        }
        for batch in new.chunks(FILTERS_PER_SUBSCRIBE) {
            let filters = batch
                .iter()
                .map(|t| SubscribeFilter::new(t.clone(), QoS::AtMostOnce))
                .collect();
            let pkid = bump(&mut self.next_pkid);
            let packet = Subscribe { pkid, filters };
            self.pending_acks.insert(pkid);
            if !send_packet(socket, Packet::Subscribe(packet)).await {
                return false;
            }
        }
        self.subscribed = wanted;
        self.announce_if_acked();
        true
    }

    /// Once every SUBSCRIBE was acknowledged: the subscription is in place.
    fn announce_if_acked(&mut self) {
        if !self.pending_acks.is_empty() || self.acked_target {
            return;
        }
        // The first acknowledgement of a connection after an earlier one was subscribed
        // closes a window in which changes were not delivered.
        let event = if self.gap_pending {
            RealtimeEvent::Gap
        } else {
            RealtimeEvent::Subscribed
        };
        self.gap_pending = false;
        self.ever_subscribed = true;
        self.acked_target = true;
        self.refusals = 0;
        self.shared
            .subscription_refused
            .store(false, Ordering::Release);
        self.shared.push(event);
    }

    fn receive(&mut self, packet: Packet) {
        match packet {
            Packet::Publish(publish) => {
                let Some((world, _)) = parse_region_topic(&publish.topic) else {
                    return;
                };
                let chunks = {
                    let followed = self.followed.borrow();
                    if followed.world.as_ref() != Some(&world) {
                        return;
                    }
                    followed.chunks.clone()
                };
                let changes = match parse_region_message(&publish.payload) {
                    Ok(c) => c,
                    Err(e) => {
                        self.shared.fail(format!("unreadable change message: {e}"));
                        return;
                    }
                };
                for change in changes {
                    if !chunks.contains(&change.chunk) {
                        continue;
                    }
                    if let Some(change) = self.floors.admit(&world, change) {
                        self.shared.push(RealtimeEvent::Changed(change));
                    }
                }
            }
            Packet::SubAck(ack) => {
                if !self.pending_acks.remove(&ack.pkid) {
                    return;
                }
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    // Not allowed (a token without the world), or the broker could not: try
                    // again after a backoff; no event until it is in place.
                    self.shared.fail(
                        "realtime: the broker refused the subscription (does the token allow \
                         this world?)"
                            .into(),
                    );
                    self.shared
                        .subscription_refused
                        .store(true, Ordering::Release);
                    self.refusals = self.refusals.saturating_add(1);
                    let delay = RECONNECT_BASE_DELAY
                        .saturating_mul(1 << self.refusals.min(16))
                        .min(RECONNECT_MAX_DELAY);
                    self.resend_at = Some(tokio::time::Instant::now() + delay);
                    self.pending_acks.clear();
                    return;
                }
                self.announce_if_acked();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_ordered_by_write_sequence_against_fetches_and_each_other() {
        let queue = Arc::new(EventQueue {
            events: Mutex::new(VecDeque::new()),
            state: AtomicU8::new(0),
            last_error: Mutex::new(None),
            subscription_refused: AtomicBool::new(false),
        });
        let floors = Floors::new(queue.clone());
        let w = WorldId::default();
        let k = ChunkKey::new(0, 0, 0);
        let change = |from_seq: u64, seq: u64, previous: u64, version: u64| Change {
            chunk: k,
            previous,
            version,
            from_seq,
            seq,
            edits: Some(vec![(1, 1)]),
        };
        // Nothing known: the change goes through as it is.
        assert!(floors
            .admit(&w, change(2, 3, 1, 2))
            .unwrap()
            .edits
            .is_some());
        // A (seq 3, version 1) -> B (4) -> A (5, version 1 again), the B change arriving last:
        // it is old news and dropped, never applied to the A that only looks like its previous.
        assert!(
            floors
                .admit(&w, change(4, 5, 2, 1))
                .unwrap()
                .edits
                .is_none(),
            "a gap: refetch"
        );
        assert!(
            floors.admit(&w, change(3, 4, 1, 2)).is_none(),
            "older than what is held"
        );
        // A fetch answering seq 9 makes everything up to 9 old news, queued or not.
        let fetched = crate::client::FetchedBlob {
            key: k,
            version: 7,
            blob: None,
            seq: 9,
        };
        floors.record(&w, std::slice::from_ref(&fetched));
        assert!(!floors.still_news(&w, &change(7, 8, 1, 2)));
        assert!(floors.admit(&w, change(8, 9, 1, 7)).is_none());
        assert!(floors
            .admit(&w, change(9, 10, 7, 8))
            .unwrap()
            .edits
            .is_some());
        assert!(floors.still_news(&w, &change(9, 10, 7, 8)));
        // A store that lost the chunk counts again from 1: the fetch says so exactly.
        floors.record(&w, &[crate::client::FetchedBlob { seq: 1, ..fetched }]);
        assert!(floors
            .admit(&w, change(1, 2, 0, 5))
            .unwrap()
            .edits
            .is_some());
    }

    #[test]
    fn a_queue_nobody_drains_keeps_one_gap_instead_of_growing() {
        let q = EventQueue {
            events: Mutex::new(VecDeque::new()),
            state: AtomicU8::new(0),
            last_error: Mutex::new(None),
            subscription_refused: AtomicBool::new(false),
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
