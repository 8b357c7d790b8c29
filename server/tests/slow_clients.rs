//! The local gateway facing slow and hostile clients over raw TCP: the token is checked before
//! a byte of the body is read, slow heads, bodies and readers are cut off, and a connection cap
//! holds. Limits are set small here so each case takes well under a second.

use cubewalk_protocol::chunk::{ChunkKey, CHUNK_CUBES};
use cubewalk_protocol::messages::{ChunkEdits, CubeRef};
use cubewalk_protocol::world::WorldId;
use cubewalk_server::gateway::{ConnectionLimits, GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::TokenSet;
use cubewalk_server::store::{ChunkStore, MemoryStore};
use cubewalk_testkit::TestGateway;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "slow-client-token";
/// Bounds every wait, so a regression fails instead of hanging CI.
const GUARD: Duration = Duration::from_secs(20);

fn config(limits: ConnectionLimits, body_timeout: Duration) -> GatewayConfig {
    GatewayConfig {
        body_timeout,
        connections: limits,
        ..GatewayConfig::default()
    }
}

fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 64,
        header_timeout: Duration::from_millis(400),
        write_stall_timeout: Duration::from_millis(400),
        shutdown_grace: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

fn start(config: GatewayConfig, store: Arc<MemoryStore>) -> TestGateway {
    TestGateway::start(
        config,
        Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into())),
        store,
    )
}

async fn connect(gw: &TestGateway) -> TcpStream {
    TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap()
}

/// Reads one answer's head and as much body as arrives with it; the status and the text.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(GUARD, stream.read(&mut buf))
            .await
            .expect("no answer within the guard")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length || n == 0 {
                let status = text[9..12].parse().unwrap();
                return (status, text[end + 4..].to_string());
            }
        }
        assert!(n > 0, "connection closed before an answer: {text:?}");
    }
}

/// Waits for the server to close the connection: true when it did within the guard.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(GUARD, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_client_without_the_token_is_refused_before_its_body_is_read() {
    let gw = start(
        config(ConnectionLimits::default(), Duration::from_secs(60)),
        Arc::new(MemoryStore::new()),
    );
    // Each client declares a body and never sends it: only an answer given before reading the
    // body can arrive. A 50 MB declaration from an unauthorized client is a 401, not a 413
    // with 40 MB drained.
    for (token_header, declared) in [
        ("", 5_000_000u64),
        ("token: wrong-but-well-formed\r\n", 5_000_000),
        ("token: no spaces allowed\r\n", 1_000),
        ("token: wrong-but-well-formed\r\n", 50_000_000),
    ] {
        let mut s = connect(&gw).await;
        let head = format!(
            "PUT /prod/cubewalkblocks?world=w HTTP/1.1\r\nhost: x\r\n{token_header}content-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (status, body) = read_answer(&mut s).await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"message":"Unauthorized"}"#),
            "{token_header:?} {declared}"
        );
    }
}

#[tokio::test]
async fn an_authorized_body_that_does_not_arrive_in_time_is_408() {
    let gw = start(
        config(short_limits(), Duration::from_millis(300)),
        Arc::new(MemoryStore::new()),
    );
    let mut s = connect(&gw).await;
    let head = format!(
        "PUT /prod/cubewalkblocks?world=w HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\ncontent-length: 100\r\n\r\n{{\"edits\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_answer(&mut s).await;
    assert_eq!(
        (status, body.as_str()),
        (408, r#"{"message":"Request Timeout"}"#)
    );
}

#[tokio::test]
async fn slow_heads_silent_and_idle_connections_are_closed() {
    let gw = start(
        config(short_limits(), Duration::from_secs(30)),
        Arc::new(MemoryStore::new()),
    );
    // Connected, sends nothing.
    let mut silent = connect(&gw).await;
    // Sends half a head and stops.
    let mut half = connect(&gw).await;
    half.write_all(b"GET /prod/cubewalkblocks?world=w&chunks=0,0,0 HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Drips a header byte every 100 ms, forever.
    let mut drip = connect(&gw).await;
    drip.write_all(b"GET /prod/cubewalkblocks HTTP/1.1\r\nx-pad: ")
        .await
        .unwrap();
    let dripping = tokio::spawn(async move {
        let mut closed = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if drip.write_all(b"a").await.is_err() {
                closed = true;
                break;
            }
        }
        closed || closed_by_server(&mut drip).await
    });
    // A keep-alive connection that was answered once, then left idle.
    let mut idle = connect(&gw).await;
    idle.write_all(
        format!("GET /prod/cubewalkblocks?world=w&chunks=0,0,0 HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(read_answer(&mut idle).await.0, 200);

    assert!(
        closed_by_server(&mut silent).await,
        "silent connection kept open"
    );
    assert!(closed_by_server(&mut half).await, "half a head kept open");
    assert!(
        closed_by_server(&mut idle).await,
        "idle keep-alive kept open"
    );
    assert!(dripping.await.unwrap(), "dripping head kept open");
}

#[tokio::test]
async fn slow_clients_do_not_starve_the_others() {
    let gw = start(
        config(short_limits(), Duration::from_millis(300)),
        Arc::new(MemoryStore::new()),
    );
    // 40 clients dripping their heads, 20 sending a body that never completes.
    let mut slow = Vec::new();
    for i in 0..60 {
        let mut s = connect(&gw).await;
        let start = if i < 40 {
            "GET /prod/cubewalkblocks HTTP/1.1\r\nx-pad: ".to_string()
        } else {
            format!("PUT /prod/cubewalkblocks?world=w HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\ncontent-length: 1000\r\n\r\n{{")
        };
        s.write_all(start.as_bytes()).await.unwrap();
        slow.push(s);
    }
    let client = reqwest::Client::new();
    let url = format!("{}?world=w&chunks=0,0,0", gw.blocks_url());
    for _ in 0..20 {
        let r = tokio::time::timeout(GUARD, client.get(&url).header("token", TOKEN).send())
            .await
            .expect("a normal client starved")
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for mut s in slow {
        assert!(closed_by_server(&mut s).await);
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let limits = ConnectionLimits {
        max_connections: 3,
        header_timeout: Duration::from_secs(60),
        ..short_limits()
    };
    let gw = start(
        config(limits, Duration::from_secs(30)),
        Arc::new(MemoryStore::new()),
    );
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(connect(&gw).await);
    }
    // Let the gateway accept the three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect(&gw).await;
    fourth
        .write_all(
            format!("GET /prod/cubewalkblocks?world=w&chunks=0,0,0 HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), fourth.peek(&mut byte)).await;
    assert!(
        early.is_err(),
        "a fourth connection was served while three were open"
    );
    drop(holders.pop());
    assert_eq!(read_answer(&mut fourth).await.0, 200);
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_dropped() {
    // One connection allowed: the second client is served only once the first, which asked
    // for large answers and reads none of them, has been dropped.
    let store = Arc::new(MemoryStore::new());
    let world = WorldId::new("stall").unwrap();
    let keys: Vec<ChunkKey> = (0..256).map(|i| ChunkKey { x: i, y: 0, z: 0 }).collect();
    let mut seed = 0x9e37_79b9_u32;
    for batch in keys.chunks(4) {
        let edits: Vec<ChunkEdits> = batch
            .iter()
            .map(|k| {
                let cubes = (0..CHUNK_CUBES as u16)
                    .map(|index| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        CubeRef {
                            index,
                            value: seed as i32,
                        }
                    })
                    .collect();
                (*k, cubes)
            })
            .collect();
        store.apply(&world, &edits, None).await.unwrap();
    }
    let limits = ConnectionLimits {
        max_connections: 1,
        header_timeout: Duration::from_secs(60),
        ..short_limits()
    };
    let gw = start(config(limits, Duration::from_secs(30)), store);
    let selection: Vec<String> = keys.iter().map(|k| format!("{},0,0", k.x)).collect();
    let request = format!(
        "GET /prod/cubewalkblocks?world=stall&chunks={} HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\n\r\n",
        selection.join(";")
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut staller = socket
        .connect(format!("127.0.0.1:{}", gw.port).parse().unwrap())
        .await
        .unwrap();
    // Pipelined requests for about 5.6 MB of answer each: far more than socket buffers hold.
    for _ in 0..8 {
        staller.write_all(request.as_bytes()).await.unwrap();
    }
    let mut second = connect(&gw).await;
    second
        .write_all(
            format!("GET /prod/cubewalkblocks?world=stall&chunks=0,0,0 HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(read_answer(&mut second).await.0, 200);
    drop(staller);
}
