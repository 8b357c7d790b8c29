//! The realtime client against servers that misbehave: one that accepts and never answers the
//! handshake, one that redirects, one that sends garbage and oversized messages. The client
//! must report, back off and retry, never follow a redirect with the token, and keep taking
//! the good messages.

use cubewalk::realtime::{Realtime, RealtimeEvent, RealtimeState};
use cubewalk::{ChunkKey, Client, ClientOptions};
use cubewalk_protocol::WorldId;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
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

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} not reached within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
#[ignore = "its stand-in server speaks the removed WebSocket API; to be ported to MQTT (issue 21)"]
async fn garbage_and_oversized_messages_are_survived_and_good_ones_still_arrive() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                // Wait for the subscribe, answer it.
                let _ = ws.next().await;
                let _ = ws.send(Message::text(r#"{"subscribed":1}"#)).await;
                if n == 0 {
                    // Garbage of every kind, then a good change.
                    for bad in [
                        "not json",
                        "[1,2]",
                        r#"[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA",1,5000,1]"#,
                        r#"{"unexpected":true}"#,
                        "[",
                    ] {
                        let _ = ws.send(Message::text(bad)).await;
                    }
                    let _ = ws.send(Message::binary(vec![0u8; 10])).await;
                    let _ = ws
                        .send(Message::text(
                            r#"[[0,0,0],"AAAAAAAAAAA","AQAAAAAAAAA",2,7,42]"#,
                        ))
                        .await;
                    // Then a message far over any limit: the client drops the connection.
                    let _ = ws.send(Message::text("[".repeat(2 << 20))).await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let c = client(Duration::from_secs(2));
    let r = Realtime::start(&c, &format!("ws://{addr}/prod")).unwrap();
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
