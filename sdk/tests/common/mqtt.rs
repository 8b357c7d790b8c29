//! A stand-in MQTT broker's side of a WebSocket, for tests of the SDK's realtime client.

#![allow(dead_code)] // each test binary uses its own subset

/// Accepts a WebSocket upgrade as an MQTT broker does (echoing the `mqtt` subprotocol, which
/// the SDK insists on); `None` when the handshake fails.
pub async fn accept_mqtt(
    stream: tokio::net::TcpStream,
) -> Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    // The handshake callback's error type is tungstenite's, large by its design.
    #[allow(clippy::result_large_err)]
    fn echo(
        _: &Request,
        mut response: Response,
    ) -> Result<Response, tokio_tungstenite::tungstenite::handshake::server::ErrorResponse> {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
        Ok(response)
    }
    tokio_tungstenite::accept_hdr_async(stream, echo).await.ok()
}

/// Sends one MQTT packet as one binary frame (a closed connection is ignored).
pub async fn send_mqtt(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    packet: rumqttc::mqttbytes::v4::Packet,
) {
    use futures_util::SinkExt;
    let mut out = bytes::BytesMut::new();
    packet.write(&mut out, 1 << 24).unwrap();
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::binary(
            out.freeze(),
        ))
        .await;
}

/// Reads frames until one holds a whole packet (the SDK sends one packet per frame); `None`
/// once the connection ends or sends something that is not one.
pub async fn read_mqtt(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Option<rumqttc::mqttbytes::v4::Packet> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await? {
            Ok(Message::Binary(b)) => {
                let mut buf = bytes::BytesMut::from(&b[..]);
                return rumqttc::mqttbytes::v4::Packet::read(&mut buf, 1 << 20).ok();
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Waits (up to 10 s, polling every 10 ms) until `cond` holds; fails the test naming `what`.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not reached within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
