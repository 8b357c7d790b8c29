//! The local gate in front of the MQTT broker, standing in for AWS IoT Core's front door:
//! MQTT over WebSocket at `/mqtt` (subprotocol `mqtt`), each connection authorized by the
//! broker authorizer ([`crate::handlers::broker_authorizer`], the function IoT Core runs as its
//! custom authorizer) and held to the policy it answers, as IoT Core holds a device to it:
//!
//! | situation | answer |
//! |---|---|
//! | a `token` header or query parameter the authorizer refuses | 401 before the upgrade |
//! | no token there, and the CONNECT password is refused | CONNACK 5 (not authorized), closed |
//! | the ban flag cannot be read (store down) | 503 before the upgrade, or CONNACK 3 (server unavailable) |
//! | no CONNECT within 10 s, or a second CONNECT | closed |
//! | CONNECT of another protocol level than MQTT 3.1.1's (4) | CONNACK 1 (unacceptable protocol version), closed |
//! | a packet whose header flags MQTT 3.1.1 forbids, or a SUBSCRIBE or UNSUBSCRIBE with packet id 0 | closed |
//! | a packet only a server sends, or an acknowledgement of a QoS 1 or 2 delivery (the gate sends none) | closed |
//! | the gate not subscribed on the broker within 10 s (the broker down) | CONNACK 3 (server unavailable), closed |
//! | PUBLISH (the policy allows players no topic) | closed |
//! | SUBSCRIBE naming a filter the policy does not allow, or not one region's change topic (`cw/<world>/<x>/<y>/<z>`, no wildcards), or more than 8 filters, or past 50 subscriptions | SUBACK 0x80 for every filter of it, nothing subscribed (IoT Core's 8 filters per SUBSCRIBE and 50 subscriptions per connection) |
//! | the authorizer, re-run every `refreshAfterInSeconds` (300 s), refuses the token now (expired, banned) | closed |
//! | an MQTT packet over 128 KB, or bytes that are not MQTT 3.1.1 | closed |
//! | the player banned (`ban`) | closed at once ([`Sessions`]) |
//! | older than the authorizer's `disconnectAfterInSeconds` | closed |
//! | the client stops reading (a game suspended in the background): the gate's writes to it stay stuck for the write stall timeout (30 s, [`super::ConnectionLimits::write_stall_timeout`]), or 256 changes wait for it ([`super::fanout::SESSION_QUEUE`]) | closed |
//! | nothing from the client for 1.5 times its keepalive, as IoT Core reads it ([`broker_keep_alive`]) | closed |
//! | the gate's connection to the broker lost | closed (the follower reconnects and reconciles) |
//!
//! The gate answers every packet itself (CONNACK, SUBACK, UNSUBACK, PINGRESP) and relays no
//! client's packet to the broker. It holds one session of its own on the broker (any MQTT
//! 3.1.1 broker: the embedded one, or Mosquitto in the tests), subscribed to every change
//! topic, and hands each change to the sessions holding its region ([`super::fanout`]): the
//! broker carries a change to the gate once, and keeps nothing per player or per region.

use super::fanout::{Fanout, Inbox, Outbox};
use super::iot_policy::IotPolicy;
use crate::handlers::broker_authorizer::{
    broker_player, BrokerAuthorization, REFRESH_AFTER_SECS, TOKEN_KEY,
};
use crate::identity::Player;
use crate::identity::Verifier;
use crate::realtime::{BrokerAddress, Sessions};
use crate::store::ChunkStore;
use async_trait::async_trait;
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::iot::{
    IoTCoreCustomAuthorizerRequest, IoTCoreHttpContext, IoTCoreMqttContext, IoTCoreProtocolData,
};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as MqttError, QoS};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The path the gate answers on (IoT Core's MQTT over WebSocket path).
pub const PATH: &str = "/mqtt";
/// Largest MQTT packet a client may send, and IoT Core's message size limit.
pub const MAX_PACKET_BYTES: usize = 128 * 1024;
/// Longest wait for a client's CONNECT after the upgrade.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most topic filters in one SUBSCRIBE (IoT Core's quota).
pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 8;
/// Most subscriptions one connection holds (IoT Core's default quota).
pub const MAX_SUBSCRIPTIONS: usize = 50;
/// Shortest keepalive a connection is held to, in seconds: IoT Core reads a shorter one as this.
pub const MIN_KEEP_ALIVE_SECS: u16 = 30;
/// Longest keepalive, in seconds: IoT Core reads a longer one, and 0 (none), as this.
pub const MAX_KEEP_ALIVE_SECS: u16 = 1200;

/// The keepalive a connection that asked for `requested` seconds is held to, as IoT Core reads
/// it: 0 (no keepalive) becomes the longest, anything else is brought within 30 to 1200 s. The
/// broker closes a connection silent for 1.5 times it.
pub fn broker_keep_alive(requested: u16) -> u16 {
    if requested == 0 {
        MAX_KEEP_ALIVE_SECS
    } else {
        requested.clamp(MIN_KEEP_ALIVE_SECS, MAX_KEEP_ALIVE_SECS)
    }
}

/// The gate's settings.
pub struct MqttGate {
    /// Changes from the broker, fanned out to the sessions.
    fanout: Arc<Fanout>,
    /// Verifies tokens (the authorizer's).
    pub verifier: Verifier,
    /// The ban flags.
    pub store: Arc<dyn ChunkStore>,
    /// `arn:aws:iot:<region>:<account>` the policies name.
    pub arn_prefix: String,
    /// Most sessions open at once; more are refused (429)
    /// ([`super::ConnectionLimits::max_realtime_connections`]).
    pub max_connections: usize,
    /// Where sessions run once upgraded: `serve` gives them a runtime of their own at a lower
    /// priority ([`crate::background`]); `None` runs them where the upgrade was answered.
    pub runtime: Option<tokio::runtime::Handle>,
    sessions: Arc<GateSessions>,
    open: AtomicUsize,
    next_id: AtomicU64,
}

impl MqttGate {
    /// A gate to `broker`; its changes flow once [`MqttGate::run_fanout`] runs.
    pub fn new(broker: BrokerAddress, verifier: Verifier, store: Arc<dyn ChunkStore>) -> Self {
        Self {
            fanout: Fanout::new(broker),
            verifier,
            store,
            arn_prefix: "arn:aws:iot:local:000000000000".into(),
            max_connections: super::ConnectionLimits::default().max_realtime_connections,
            runtime: None,
            sessions: Arc::new(GateSessions::default()),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    /// The open sessions, for bans.
    pub fn sessions(&self) -> Arc<GateSessions> {
        self.sessions.clone()
    }

    /// The gate's session on the broker ([`Fanout::run`]): spawn it where the realtime side
    /// runs.
    pub fn run_fanout(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.fanout.clone().run()
    }

    /// Region topics some session holds now.
    pub fn held_topics(&self) -> usize {
        self.fanout.topics()
    }

    async fn authorize(
        &self,
        event: &IoTCoreCustomAuthorizerRequest,
    ) -> Result<Option<Player>, String> {
        broker_player(event, &self.verifier, Some(self.store.as_ref())).await
    }
}

/// The players' open sessions through the gate.
#[derive(Default)]
pub struct GateSessions {
    by_player: Mutex<HashMap<String, Vec<Session>>>,
}

/// One open session: its id and what closes it.
type Session = (u64, Arc<Notify>);

impl GateSessions {
    fn add(&self, player: &str, id: u64) -> Arc<Notify> {
        let closer = Arc::new(Notify::new());
        self.by_player
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(player.to_owned())
            .or_default()
            .push((id, closer.clone()));
        closer
    }

    fn remove(&self, player: &str, id: u64) {
        let mut map = self.by_player.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(player) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                map.remove(player);
            }
        }
    }
}

#[async_trait]
impl Sessions for GateSessions {
    async fn close_player(&self, player: &str) -> usize {
        let list = self
            .by_player
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(player)
            .unwrap_or_default();
        for (_, closer) in &list {
            closer.notify_one();
        }
        list.len()
    }
}

/// The upgrade request's headers and query string as IoT Core hands them to the authorizer.
fn http_event(request: &http::request::Parts) -> IoTCoreCustomAuthorizerRequest {
    let mut http = IoTCoreHttpContext::default();
    http.headers = request.headers.clone();
    http.query_string = request.uri.query().map(str::to_owned);
    let mut data = IoTCoreProtocolData::default();
    data.http = Some(http);
    let mut event = IoTCoreCustomAuthorizerRequest::default();
    event.protocols = vec!["http".into(), "mqtt".into()];
    event.protocol_data = Some(data);
    event
}

fn has_token(request: &http::request::Parts) -> bool {
    request.headers.contains_key(TOKEN_KEY)
        || request
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("token=")))
}

/// Answers one request to [`PATH`].
pub async fn upgrade(gate: Arc<MqttGate>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let event = http_event(&parts);
    // A token in the upgrade request is checked before the upgrade, as IoT Core does.
    let early = if has_token(&parts) {
        match gate.authorize(&event).await {
            Ok(Some(player)) => Some(player),
            Ok(None) => return json_status(401, "Unauthorized"),
            Err(_) => return json_status(503, "Service Unavailable (store_unavailable)"),
        }
    } else {
        None
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    // The slot is taken before the upgrade, so upgrades racing each other cannot pass the cap
    // together; it is given back however the session ends, or when the upgrade fails and the
    // callback holding it is dropped unrun.
    let Some(slot) = Slot::take(&gate) else {
        return json_status(429, "Too many connections");
    };
    ws.protocols(["mqtt"])
        .max_message_size(MAX_PACKET_BYTES + 8)
        .max_frame_size(MAX_PACKET_BYTES + 8)
        .on_upgrade(move |socket| async move {
            let runtime = gate.runtime.clone();
            let run = async move {
                let _slot = slot;
                let id = gate.next_id.fetch_add(1, Ordering::Relaxed);
                if let Err(why) = session(&gate, socket, event, early, id).await {
                    tracing::debug!(id, %why, "broker session ended");
                }
            };
            match runtime {
                Some(runtime) => {
                    let _ = runtime.spawn(run).await;
                }
                None => run.await,
            }
        })
}

/// One session's place in the gate's connection count, given back when dropped.
struct Slot(Arc<MqttGate>);

impl Slot {
    /// A place, unless [`MqttGate::max_connections`] are taken.
    fn take(gate: &Arc<MqttGate>) -> Option<Self> {
        let taken = gate.open.fetch_add(1, Ordering::AcqRel);
        let slot = Self(gate.clone());
        (taken < gate.max_connections).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether `filter` is one region's change topic (`cw/<world>/<x>/<y>/<z>`), the only filter a
/// player may hold: a wildcard would deliver a whole world's changes to one connection, past
/// the 50 regions a follower may hold; anything else would only cost the broker memory.
fn is_change_filter(filter: &str) -> bool {
    cubewalk_protocol::realtime::parse_region_topic(filter).is_some()
}

fn json_status(status: u16, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .unwrap_or_default()
}

/// Whether a packet's first byte carries the flags MQTT 3.1.1 requires of its type (section
/// 2.2.2: a server closes the connection otherwise). PUBLISH's are its DUP, QoS and RETAIN.
fn header_flags_valid(byte1: u8) -> bool {
    let flags = byte1 & 0x0f;
    match byte1 >> 4 {
        3 => true,
        // PUBREL, SUBSCRIBE, UNSUBSCRIBE
        6 | 8 | 10 => flags == 0b0010,
        _ => flags == 0,
    }
}

/// The next whole packet the client sent, taken out of `buf`; `None` while it holds only part
/// of one. An error for anything MQTT 3.1.1 calls malformed, which closes the connection.
fn take_packet(buf: &mut BytesMut) -> Result<Option<Packet>, String> {
    if let Some(&byte1) = buf.first() {
        if !header_flags_valid(byte1) {
            return Err(format!("not MQTT 3.1.1: header flags of {byte1:#04x}"));
        }
    }
    let packet = match Packet::read(buf, MAX_PACKET_BYTES) {
        Ok(p) => p,
        Err(MqttError::InsufficientBytes(_)) => return Ok(None),
        Err(e) => return Err(format!("not MQTT 3.1.1: {e}")),
    };
    match &packet {
        Packet::Subscribe(s) if s.pkid == 0 => {
            Err("not MQTT 3.1.1: SUBSCRIBE with packet id 0".into())
        }
        Packet::Unsubscribe(u) if u.pkid == 0 => {
            Err("not MQTT 3.1.1: UNSUBSCRIBE with packet id 0".into())
        }
        _ => Ok(Some(packet)),
    }
}

/// The protocol level a CONNECT at the start of `buf` names, once enough of it has arrived
/// (`None` before, or when `buf` does not start with an MQTT CONNECT). Read from the raw bytes:
/// the rest of an MQTT 5 CONNECT does not parse as 3.1.1.
fn connect_protocol_level(buf: &[u8]) -> Option<u8> {
    if buf.first() != Some(&0x10) {
        return None;
    }
    // The remaining length: 1 to 4 bytes, the last without its top bit.
    let length_bytes = buf.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
    let name = buf.get(1 + length_bytes..)?;
    match name {
        [0, 4, b'M', b'Q', b'T', b'T', level, ..] => Some(*level),
        _ => None,
    }
}

/// What a client opened with.
enum Opening {
    /// A CONNECT of MQTT 3.1.1.
    Connect(Connect),
    /// A CONNECT of another protocol level (5 for MQTT 5).
    OtherProtocolLevel(u8),
}

/// Reads the client's CONNECT, buffering partial packets.
async fn read_connect(socket: &mut WebSocket, buf: &mut BytesMut) -> Result<Opening, String> {
    loop {
        match connect_protocol_level(buf) {
            Some(level) if level != 4 => return Ok(Opening::OtherProtocolLevel(level)),
            _ => {}
        }
        match take_packet(buf)? {
            Some(Packet::Connect(c)) => return Ok(Opening::Connect(c)),
            Some(other) => return Err(format!("first packet is not CONNECT: {other:?}")),
            None => {}
        }
        match socket.next().await {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Text(_))) => return Err("text frame".into()),
            Some(Ok(Message::Close(_))) | None => return Err("client closed".into()),
            Some(Err(e)) => return Err(format!("client connection: {e}")),
        }
    }
}

/// One packet's bytes.
fn encode(packet: Packet) -> Result<bytes::Bytes, String> {
    let mut out = BytesMut::new();
    packet
        .write(&mut out, MAX_PACKET_BYTES)
        .map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

async fn send_packet(socket: &mut WebSocket, packet: Packet) -> Result<(), String> {
    let out = encode(packet)?;
    socket
        .send(Message::Binary(out))
        .await
        .map_err(|e| e.to_string())
}

/// The authorizer event of a CONNECT without a token in the upgrade request.
fn mqtt_event(
    mut event: IoTCoreCustomAuthorizerRequest,
    connect: &Connect,
) -> IoTCoreCustomAuthorizerRequest {
    let mut mqtt = IoTCoreMqttContext::default();
    mqtt.client_id = Some(connect.client_id.clone());
    if let Some(login) = &connect.login {
        mqtt.username = Some(login.username.clone());
        let mut password = Base64Data::default();
        password.0 = login.password.clone().into_bytes();
        mqtt.password = password;
    }
    if let Some(data) = event.protocol_data.as_mut() {
        data.mqtt = Some(mqtt);
    }
    event
}

async fn session(
    gate: &MqttGate,
    mut socket: WebSocket,
    event: IoTCoreCustomAuthorizerRequest,
    early: Option<Player>,
    id: u64,
) -> Result<(), String> {
    let mut from_client = BytesMut::new();
    let connect =
        match tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut socket, &mut from_client))
            .await
        {
            Ok(Ok(Opening::Connect(c))) => c,
            Ok(Ok(Opening::OtherProtocolLevel(level))) => {
                // MQTT 5 (or later): the gate speaks 3.1.1 only, and says so in 3.1.1's words.
                let refused = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
                let _ = send_packet(&mut socket, Packet::ConnAck(refused)).await;
                let _ = socket.close().await;
                return Err(format!("protocol level {level}, not 3.1.1's 4"));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("no CONNECT in time".into()),
        };
    let event = match early {
        Some(_) => event,
        None => mqtt_event(event, &connect),
    };
    let player = match early {
        Some(p) => Some(p),
        None => match gate.authorize(&event).await {
            Ok(p) => p,
            Err(e) => {
                let busy = ConnAck::new(ConnectReturnCode::ServiceUnavailable, false);
                let _ = send_packet(&mut socket, Packet::ConnAck(busy)).await;
                let _ = socket.close().await;
                return Err(e);
            }
        },
    };
    let answer = match &player {
        Some(p) => BrokerAuthorization::allow(p, &gate.arn_prefix),
        None => BrokerAuthorization::refused(),
    };
    let policy = IotPolicy::parse(&answer.policy_documents).unwrap_or_default();
    let client_arn = format!("{}:client/{}", gate.arn_prefix, connect.client_id);
    if !answer.is_authenticated || !policy.allows("iot:Connect", &client_arn) {
        tracing::info!(id, client_id = ?connect.client_id, "broker connection refused: not authorized");
        let refused = ConnAck::new(ConnectReturnCode::NotAuthorized, false);
        let _ = send_packet(&mut socket, Packet::ConnAck(refused)).await;
        let _ = socket.close().await;
        return Err("not authorized".into());
    }

    // Changes reach sessions through the gate's own subscription on the broker; while it is
    // not held (the broker is down), a session would follow nothing.
    // Watched from before the gate is known to be subscribed: a loss from then on ends the
    // session.
    let losses = gate.fanout.losses();
    if !gate.fanout.subscribed_within(CONNECT_TIMEOUT).await {
        let busy = ConnAck::new(ConnectReturnCode::ServiceUnavailable, false);
        let _ = send_packet(&mut socket, Packet::ConnAck(busy)).await;
        let _ = socket.close().await;
        return Err("the gate is not subscribed on the broker".into());
    }
    send_packet(
        &mut socket,
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
    )
    .await?;

    let player = player.map(|p| p.id).unwrap_or_default();
    let closer = gate.sessions.add(&player, id);
    let (outbox, inbox) = Fanout::session(id);
    let mut held = HashSet::new();
    let result = pump(
        &mut socket,
        Client {
            from: from_client,
            policy: &policy,
            arn_prefix: &gate.arn_prefix,
            id,
            player: &player,
            keep_alive: Duration::from_secs(u64::from(broker_keep_alive(connect.keep_alive))),
        },
        Fanned {
            fanout: &gate.fanout,
            outbox: &outbox,
            inbox,
            held: &mut held,
            losses,
        },
        &closer,
        Duration::from_secs(u64::from(answer.disconnect_after_in_seconds)),
        || gate.authorize(&event),
    )
    .await;
    for topic in &held {
        gate.fanout.release(topic, id);
    }
    gate.sessions.remove(&player, id);
    let _ = socket.close().await;
    result
}

/// The client's side of a session: what it sent so far and what it may do.
struct Client<'a> {
    from: BytesMut,
    policy: &'a IotPolicy,
    arn_prefix: &'a str,
    id: u64,
    player: &'a str,
    /// Silence longer than 1.5 times this ends the session (MQTT's keepalive).
    keep_alive: Duration,
}

/// The session's side of the fan-out: the regions it holds and the changes for them.
struct Fanned<'a> {
    fanout: &'a Fanout,
    outbox: &'a Outbox,
    inbox: Inbox,
    held: &'a mut HashSet<String>,
    losses: tokio::sync::watch::Receiver<u64>,
}

/// Answers the client and hands it the changes of the regions it holds until it leaves, the
/// session is closed (a ban), falls behind or outlives its time, the broker connection is
/// lost, or `reauthorize` (run every [`REFRESH_AFTER_SECS`], as IoT Core re-runs its
/// authorizer) no longer accepts the token.
async fn pump<F, Fut>(
    socket: &mut WebSocket,
    mut client: Client<'_>,
    mut fanned: Fanned<'_>,
    closer: &Notify,
    lifetime: Duration,
    reauthorize: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Player>, String>>,
{
    let ends = tokio::time::sleep(lifetime);
    tokio::pin!(ends);
    let mut refresh = tokio::time::interval(Duration::from_secs(u64::from(REFRESH_AFTER_SECS)));
    refresh.tick().await;
    let silence = client.keep_alive.mul_f32(1.5);
    let mut heard = tokio::time::Instant::now();
    loop {
        // Whole packets already buffered from the client go first.
        while let Some(packet) = take_packet(&mut client.from)? {
            if let Some(answer) = answer(&mut client, &mut fanned, packet)? {
                send_packet(socket, answer).await?;
            }
        }
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Binary(b))) => {
                    if client.from.len() + b.len() > 2 * MAX_PACKET_BYTES {
                        return Err("client sent too much at once".into());
                    }
                    client.from.extend_from_slice(&b);
                    heard = tokio::time::Instant::now();
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => return Err("text frame".into()),
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Err(e)) => return Err(format!("client connection: {e}")),
            },
            Some((topic, change)) = fanned.inbox.messages.recv() => {
                // A region left since the change was queued: the client has had its UNSUBACK.
                if !fanned.held.contains(&*topic) {
                    continue;
                }
                // A client that stops reading blocks this send: it ends when its queue
                // overflows, or when the write has been stuck for the stall timeout.
                tokio::select! {
                    sent = socket.send(Message::Binary(change)) => {
                        sent.map_err(|e| format!("client connection: {e}"))?;
                    }
                    _ = fanned.inbox.behind.notified() => return Err(fell_behind(&client)),
                }
            }
            _ = fanned.inbox.behind.notified() => return Err(fell_behind(&client)),
            _ = fanned.losses.changed() => return Err("the gate lost the broker".into()),
            _ = tokio::time::sleep_until(heard + silence) => return Err("keepalive: the client went silent".into()),
            _ = closer.notified() => return Err("closed (ban)".into()),
            _ = &mut ends => return Err("lifetime reached".into()),
            _ = refresh.tick() => match reauthorize().await {
                Ok(Some(_)) => {}
                Ok(None) => return Err("the token is no longer accepted".into()),
                // The ban flags cannot be read now: keep the session, try at the next refresh.
                Err(e) => tracing::warn!(error = %e, "re-authorization failed"),
            },
        }
    }
}

/// Logs that a session fell behind and says why it ends.
fn fell_behind(client: &Client<'_>) -> String {
    tracing::info!(
        id = client.id,
        player = client.player,
        "realtime session fell behind; closed"
    );
    "fell behind".into()
}

/// What the gate answers one packet from a connected client (`None`: nothing), or why the
/// connection ends.
fn answer(
    client: &mut Client<'_>,
    fanned: &mut Fanned<'_>,
    packet: Packet,
) -> Result<Option<Packet>, String> {
    let (id, player, arn_prefix, policy) =
        (client.id, client.player, client.arn_prefix, client.policy);
    match packet {
        Packet::Subscribe(s) => {
            let new = s
                .filters
                .iter()
                .filter(|f| !fanned.held.contains(&f.path))
                .count();
            let allowed = s.filters.len() <= MAX_FILTERS_PER_SUBSCRIBE
                && fanned.held.len() + new <= MAX_SUBSCRIPTIONS
                && s.filters.iter().all(|f| {
                    let filter = format!("{arn_prefix}:topicfilter/{}", f.path);
                    let topic = format!("{arn_prefix}:topic/{}", f.path);
                    is_change_filter(&f.path)
                        && policy.allows("iot:Subscribe", &filter)
                        && policy.allows("iot:Receive", &topic)
                });
            if !allowed {
                let filters: Vec<&str> = s.filters.iter().map(|f| f.path.as_str()).collect();
                tracing::info!(
                    id,
                    player,
                    ?filters,
                    held = fanned.held.len(),
                    "subscription refused"
                );
                let codes = vec![SubscribeReasonCode::Failure; s.filters.len()];
                return Ok(Some(Packet::SubAck(SubAck::new(s.pkid, codes))));
            }
            // Held before the SUBACK goes: every change published after the client reads it
            // reaches it. Granted at QoS 0, the only one changes travel at.
            for f in &s.filters {
                if fanned.held.insert(f.path.clone()) {
                    fanned.fanout.hold(&f.path, fanned.outbox);
                }
            }
            let codes = vec![SubscribeReasonCode::Success(QoS::AtMostOnce); s.filters.len()];
            Ok(Some(Packet::SubAck(SubAck::new(s.pkid, codes))))
        }
        Packet::Unsubscribe(u) => {
            for topic in &u.topics {
                if fanned.held.remove(topic) {
                    fanned.fanout.release(topic, id);
                }
            }
            Ok(Some(Packet::UnsubAck(UnsubAck::new(u.pkid))))
        }
        Packet::PingReq => Ok(Some(Packet::PingResp)),
        Packet::Disconnect => Err("the client disconnected".into()),
        Packet::Publish(p) => {
            // The policy allows players no topic; the gate relays no client's publish at all.
            let topic = format!("{arn_prefix}:topic/{}", p.topic);
            let allowed = policy.allows("iot:Publish", &topic);
            tracing::info!(id, player, topic = ?p.topic, allowed, "publish refused; connection closed");
            Err(format!("publish to {} refused", p.topic))
        }
        Packet::Connect(_) => Err("a second CONNECT".into()),
        // Acknowledgements of QoS 1 and 2 deliveries (the gate sends none) and packets only a
        // server sends.
        other => Err(format!("unexpected packet from a client: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_read_as_iot_core_reads_it() {
        assert_eq!(broker_keep_alive(0), 1200, "none: the longest");
        assert_eq!(broker_keep_alive(1), 30);
        assert_eq!(broker_keep_alive(60), 60);
        assert_eq!(broker_keep_alive(u16::MAX), 1200);
    }

    #[test]
    fn header_flags_are_those_mqtt_3_1_1_requires() {
        assert!(header_flags_valid(0x10), "CONNECT");
        assert!(!header_flags_valid(0x11));
        assert!(header_flags_valid(0x82), "SUBSCRIBE");
        assert!(!header_flags_valid(0x80));
        assert!(!header_flags_valid(0x83));
        assert!(header_flags_valid(0xa2), "UNSUBSCRIBE");
        assert!(!header_flags_valid(0xa0));
        assert!(header_flags_valid(0x62), "PUBREL");
        assert!(header_flags_valid(0xc0), "PINGREQ");
        assert!(!header_flags_valid(0xc1));
        for publish in 0x30..=0x3f {
            assert!(header_flags_valid(publish), "PUBLISH {publish:#x}");
        }
    }

    #[test]
    fn the_protocol_level_is_read_before_the_connect_parses() {
        let mut v4 = BytesMut::new();
        Packet::Connect(Connect::new("cw-1"))
            .write(&mut v4, MAX_PACKET_BYTES)
            .unwrap();
        assert_eq!(connect_protocol_level(&v4), Some(4));
        assert_eq!(connect_protocol_level(&v4[..8]), None, "not all there yet");
        // An MQTT 5 CONNECT (properties after the keepalive), whose remaining length takes
        // two bytes.
        let mut v5 = vec![
            0x10, 0x80, 0x01, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0,
        ];
        v5.resize(3 + 128, b'x');
        assert_eq!(connect_protocol_level(&v5), Some(5));
        assert_eq!(
            connect_protocol_level(&[0x82, 2, 0, 1]),
            None,
            "not a CONNECT"
        );
        assert_eq!(
            connect_protocol_level(&[0x10, 10, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3]),
            None,
            "MQTT 3.1's name: closed as malformed, as MQTT 3.1.1 allows"
        );
    }

    #[test]
    fn subscribe_and_unsubscribe_need_a_packet_id() {
        let mut buf = BytesMut::new();
        let mut s = rumqttc::mqttbytes::v4::Subscribe::new("cw/w/0/0/0", rumqttc::QoS::AtMostOnce);
        s.pkid = 0;
        Packet::Subscribe(s)
            .write(&mut buf, MAX_PACKET_BYTES)
            .unwrap();
        assert!(take_packet(&mut buf).unwrap_err().contains("packet id 0"));
        let mut buf = BytesMut::new();
        let mut u = rumqttc::mqttbytes::v4::Unsubscribe::new("cw/w/0/0/0");
        u.pkid = 0;
        Packet::Unsubscribe(u)
            .write(&mut buf, MAX_PACKET_BYTES)
            .unwrap();
        assert!(take_packet(&mut buf).unwrap_err().contains("packet id 0"));
        let mut buf = BytesMut::from(&[0xc0u8][..]);
        assert_eq!(
            take_packet(&mut buf),
            Ok(None),
            "half a PINGREQ: wait for the rest"
        );
    }
}
