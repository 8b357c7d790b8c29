//! What several server test files share.

#![allow(dead_code)] // each test file uses part of it

use bytes::BytesMut;
use cubewalk_testkit::RedisServer;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::Packet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A player's MQTT-over-WebSocket connection to the gate.
pub type MqttSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The upgrade request to MQTT over WebSocket at `url` (subprotocol `mqtt`) with `token` in
/// the header.
pub fn mqtt_request(
    url: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("token", token.parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    request
}

/// Upgrades to MQTT over WebSocket at `url` with `token` in the header; CONNECT is the
/// caller's.
pub async fn mqtt_open(
    url: &str,
    token: &str,
) -> Result<MqttSocket, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async(mqtt_request(url, token))
        .await
        .map(|(s, _)| s)
}

/// A SUBSCRIBE of `filter` at QoS 0 with packet id `pkid` (MQTT 3.1.1 wants it non-zero).
pub fn mqtt_subscribe(filter: &str, pkid: u16) -> Packet {
    let mut s = rumqttc::mqttbytes::v4::Subscribe::new(filter, rumqttc::mqttbytes::QoS::AtMostOnce);
    s.pkid = pkid;
    Packet::Subscribe(s)
}

/// Sends one packet as one binary frame.
pub async fn mqtt_send(
    socket: &mut MqttSocket,
    packet: Packet,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut out = BytesMut::new();
    packet.write(&mut out, 1 << 20).unwrap();
    socket.send(Message::binary(out.freeze())).await
}

/// The next packet (`buf` keeps what was read past it), or `None` once the connection is
/// closed or nothing came `within`.
pub async fn mqtt_next(
    socket: &mut MqttSocket,
    buf: &mut BytesMut,
    within: Duration,
) -> Option<Packet> {
    loop {
        if let Ok(p) = Packet::read(buf, 1 << 20) {
            return Some(p);
        }
        match tokio::time::timeout(within, socket.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => buf.extend_from_slice(&b),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Creates on `redis` the Redis user the deployment's Lambdas connect as (`cubewalk-<role>`,
/// the template's default `StoreName`), with exactly the `AccessString` both store engines'
/// users take from `server/template.yaml`'s `StoreUsers` mapping, and answers a URL that logs
/// in as it.
pub fn template_user_url(redis: &RedisServer, user: &str) -> String {
    let template = include_str!("../../template.yaml");
    let role = user
        .strip_prefix("cubewalk-")
        .unwrap_or_else(|| panic!("{user}: the template's users are cubewalk-<role>"));
    let access = template
        .lines()
        .skip_while(|l| l.trim() != "StoreUsers:")
        .skip_while(|l| l.trim() != format!("{role}:"))
        .find_map(|l| l.trim().strip_prefix("AccessString: \"on "))
        .unwrap_or_else(|| panic!("the {role} user's AccessString in template.yaml"))
        .trim_end_matches('"');
    let mut setuser = vec!["ACL", "SETUSER", user, "reset", "on", ">acl-test-pass"];
    setuser.extend(access.split_whitespace());
    assert_eq!(redis.command(&setuser).as_deref(), Some("+OK"), "{access}");
    format!("redis://{user}:acl-test-pass@127.0.0.1:{}", redis.port)
}
