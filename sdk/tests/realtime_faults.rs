//! The realtime client against servers that misbehave: one that accepts and never answers the
//! handshake, one that redirects, a broker that publishes garbage and oversized packets. The client
//! must report, back off and retry, never follow a redirect with the token, and keep taking
//! the good messages.

#[path = "common/mqtt.rs"]
mod mqtt;

use cubewalk::realtime::{Realtime, RealtimeEvent, RealtimeState};
use cubewalk::{ChunkKey, Client, ClientOptions};
use cubewalk_protocol::WorldId;
use futures_util::SinkExt;
use mqtt::{accept_mqtt, read_mqtt, send_mqtt, until};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReasonCode,
};
use rumqttc::mqttbytes::QoS;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn client(connect_timeout: Duration) -> Client {
    Client::new(
        "http://127.0.0.1:9/prod/cubewalkblocks",
        "realtime-fault-token",
        ClientOptions {
            connect_timeout,
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_times_out_and_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    let c = client(Duration::from_millis(300));
    let r = Realtime::start(&c, &format!("ws://{addr}/prod")).unwrap();
    until("a timeout reported", || {
        r.last_error().is_some_and(|e| e.contains("timed out"))
    })
    .await;
    until("a second attempt", || accepted.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(r.state(), RealtimeState::Connecting);
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Where the redirect points: it must never see a connection (the token would go along).
    let elsewhere = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let seen = reached.clone();
    tokio::spawn(async move {
        while elsewhere.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: ws://{elsewhere_addr}/prod\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let c = client(Duration::from_secs(2));
    let r = Realtime::start(&c, &format!("ws://{addr}/prod")).unwrap();
    until("the redirect reported", || {
        r.last_error().is_some_and(|e| e.contains("302"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    assert_ne!(r.state(), RealtimeState::Connected);
}

#[tokio::test]
async fn garbage_and_oversized_messages_are_survived_and_good_ones_still_arrive() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // A broker's answers: the `mqtt` subprotocol, CONNACK, SUBACK.
                let Some(mut ws) = accept_mqtt(s).await else {
                    return;
                };
                let Some(Packet::Connect(_)) = read_mqtt(&mut ws).await else {
                    return;
                };
                send_mqtt(
                    &mut ws,
                    Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
                )
                .await;
                let Some(Packet::Subscribe(sub)) = read_mqtt(&mut ws).await else {
                    return;
                };
                assert_eq!(sub.filters[0].path, "cw/default/0/0/0");
                let codes = vec![SubscribeReasonCode::Success(QoS::AtMostOnce); sub.filters.len()];
                send_mqtt(&mut ws, Packet::SubAck(SubAck::new(sub.pkid, codes))).await;
                if n == 0 {
                    let publish = |topic: &str, payload: &str| {
                        Packet::Publish(Publish::new(
                            topic,
                            QoS::AtMostOnce,
                            payload.as_bytes().to_vec(),
                        ))
                    };
                    let topic = "cw/default/0/0/0";
                    // Garbage of every kind on the followed topic, a change on a topic and a
                    // world not followed, a text frame; then a good change.
                    for bad in [
                        "not json",
                        "[1,2]",
                        r#"[[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA",0,1,5000,1]]"#,
                        r#"{"unexpected":true}"#,
                        "[",
                    ] {
                        send_mqtt(&mut ws, publish(topic, bad)).await;
                    }
                    let other = r#"[[[0,0,0],"AAAAAAAAAAA","AgAAAAAAAAA",0,1,7,9]]"#;
                    send_mqtt(&mut ws, publish("cw/elsewhere/0/0/0", other)).await;
                    send_mqtt(&mut ws, publish("not/a/change/topic", other)).await;
                    let _ = ws.send(Message::text("hello")).await;
                    let good = r#"[[[0,0,0],"AAAAAAAAAAA","AQAAAAAAAAA",1,2,7,42]]"#;
                    send_mqtt(&mut ws, publish(topic, good)).await;
                    // Then a packet far over any limit: the client drops the connection.
                    let huge = "[".repeat(2 << 20);
                    send_mqtt(&mut ws, publish(topic, &huge)).await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let c = client(Duration::from_secs(2));
    let r = Realtime::start(&c, &format!("ws://{addr}/mqtt")).unwrap();
    r.follow(&WorldId::default(), &[ChunkKey::new(0, 0, 0)])
        .unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let collect = || {
        let mut e = events.lock().unwrap();
        r.drain(usize::MAX, |ev| {
            e.push(ev.clone());
            true
        });
        e.clone()
    };
    until("the good change after the garbage", || {
        collect()
            .iter()
            .any(|e| matches!(e, RealtimeEvent::Changed(c) if c.version == 1 && c.edits.as_deref() == Some(&[(7, 42)][..])))
    })
    .await;
    until("a reconnect after the oversized message", || {
        connections.load(Ordering::SeqCst) >= 2
    })
    .await;
    until("the gap reported after the reconnect", || {
        collect().contains(&RealtimeEvent::Gap)
    })
    .await;
    let seen = collect();
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, RealtimeEvent::Changed(_)))
            .count(),
        1,
        "only the good change: {seen:?}"
    );
}
