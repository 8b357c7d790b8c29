//! The MQTT gate as an attacker and as a broker we did not write see it: real MQTT 3.1.1
//! packets over a real WebSocket against the gate, with the embedded rumqttd behind it or
//! Mosquitto started by the test.

mod common;

use bytes::BytesMut;
use cubewalk_server::gateway::GatewayConfig;
use cubewalk_server::identity::{PublicKeys, SigningKey, Verifier};
use cubewalk_server::realtime::BrokerAddress;
use cubewalk_server::store::{ChunkStore, MemoryStore};
use cubewalk_testkit::tokens;
use cubewalk_testkit::TestGateway;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket = common::MqttSocket;

struct Setup {
    gw: TestGateway,
    key: SigningKey,
}

fn setup(broker: Option<BrokerAddress>) -> Setup {
    setup_with(broker, GatewayConfig::default())
}

fn setup_with(broker: Option<BrokerAddress>, config: GatewayConfig) -> Setup {
    let key = SigningKey::generate();
    let mut keys = PublicKeys::new();
    keys.add_signing_key(&key);
    let verifier = Verifier {
        keys,
        ..Verifier::default()
    };
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new());
    let gw =
        TestGateway::start_realtime_at(0, config, verifier, broker, move || async move { store });
    Setup { gw, key }
}

impl Setup {
    fn token(&self, player: &str, worlds: &[&str]) -> String {
        let mut claims = tokens::claims(player, "editor");
        claims["worlds"] = serde_json::json!(worlds);
        tokens::sign(&self.key, &claims)
    }

    /// An upgraded MQTT-over-WebSocket connection with `token` in the header, after CONNACK.
    async fn connect(&self, token: &str) -> Result<(Socket, BytesMut), String> {
        let mut socket = common::mqtt_open(&self.gw.realtime_url(), token)
            .await
            .map_err(|e| e.to_string())?;
        send(&mut socket, Packet::Connect(Connect::new("cw-attacker"))).await;
        let mut buf = BytesMut::new();
        match next(&mut socket, &mut buf).await {
            Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => Ok((socket, buf)),
            other => Err(format!("{other:?}")),
        }
    }
}

async fn send(socket: &mut Socket, packet: Packet) {
    let _ = common::mqtt_send(socket, packet).await;
}

/// The next packet, or `None` once the connection is closed (or nothing came for 3 s).
async fn next(socket: &mut Socket, buf: &mut BytesMut) -> Option<Packet> {
    common::mqtt_next(socket, buf, Duration::from_secs(3)).await
}

/// Whether the gate closes the connection within `within` (whatever it still delivers before),
/// as opposed to just going quiet.
async fn closed_within(socket: &mut Socket, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Sends raw bytes as one binary frame: packets an honest encoder would not write.
async fn send_raw(socket: &mut Socket, bytes: &[u8]) {
    let _ = socket.send(Message::binary(bytes.to_vec())).await;
}

async fn subscribe(
    socket: &mut Socket,
    buf: &mut BytesMut,
    pkid: u16,
    filter: &str,
) -> SubscribeReasonCode {
    send(socket, common::mqtt_subscribe(filter, pkid)).await;
    match next(socket, buf).await {
        Some(Packet::SubAck(a)) => {
            assert_eq!(a.pkid, pkid);
            a.return_codes[0]
        }
        other => panic!("no SUBACK: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_world_cannot_subscribe_and_a_player_can_never_publish() {
    let s = setup(None);
    // A wrong token never gets a connection.
    assert!(s.connect("not-a-token").await.unwrap_err().contains("401"));

    let (mut honest, mut hbuf) = s.connect(&s.token("honest", &["w"])).await.unwrap();
    assert!(matches!(
        subscribe(&mut honest, &mut hbuf, 1, "cw/w/0/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
    let (mut attacker, mut abuf) = s.connect(&s.token("mallory", &["w"])).await.unwrap();
    // Its own world, but all of it at once (past the 50 regions a follower may hold, every
    // change billed to its connection), is refused too.
    for filter in [
        "cw/other/0/0/0",
        "cw/#",
        "cw/+/0/0/0",
        "#",
        "cw/w2/0/0/0",
        "cw/w/#",
        "cw/w/+/+/+",
        "cw/w/0/+/0",
    ] {
        assert_eq!(
            subscribe(&mut attacker, &mut abuf, 2, filter).await,
            SubscribeReasonCode::Failure,
            "{filter}"
        );
    }
    // A forged change on a topic the honest follower reads: the gate closes the connection
    // and the follower hears nothing.
    let forged = Publish::new(
        "cw/w/0/0/0",
        QoS::AtMostOnce,
        br#"[[[0,0,0],"AAAAAAAAAAA","AAAAAAAAAAA",0,1,null]]"#.to_vec(),
    );
    send(&mut attacker, Packet::Publish(forged)).await;
    assert_eq!(next(&mut attacker, &mut abuf).await, None, "closed");
    assert_eq!(
        next(&mut honest, &mut hbuf).await,
        None,
        "nothing delivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_held_to_iot_cores_quotas_and_to_change_topics() {
    let s = setup(None);
    let (mut c, mut buf) = s.connect(&s.token("hoarder", &["w"])).await.unwrap();
    // Not a change topic, though inside the allowed world: it would only cost the broker.
    for junk in ["cw/w/f1", "cw/w/1/2", "cw/w/+/0/0", "cw/w/01/0/0", "cw/w/#"] {
        assert_eq!(
            subscribe(&mut c, &mut buf, 1, junk).await,
            SubscribeReasonCode::Failure,
            "{junk}"
        );
    }
    // An UNSUBSCRIBE of what is not held (here: refused) is still answered, as MQTT wants.
    let mut u = rumqttc::mqttbytes::v4::Unsubscribe::new("cw/w/#");
    u.pkid = 2;
    send(&mut c, Packet::Unsubscribe(u)).await;
    match next(&mut c, &mut buf).await {
        Some(Packet::UnsubAck(a)) => assert_eq!(a.pkid, 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        subscribe(&mut c, &mut buf, 2, "cw/w/-1/-1/-1").await,
        SubscribeReasonCode::Success(_)
    ));
    // Nine filters in one SUBSCRIBE: refused whole.
    let mut nine = Subscribe::new("cw/w/0/0/0", QoS::AtMostOnce);
    nine.pkid = 3;
    for i in 1..9 {
        nine.add(format!("cw/w/{i}/0/0"), QoS::AtMostOnce);
    }
    send(&mut c, Packet::Subscribe(nine)).await;
    match next(&mut c, &mut buf).await {
        Some(Packet::SubAck(a)) => assert!(a
            .return_codes
            .iter()
            .all(|r| *r == SubscribeReasonCode::Failure)),
        other => panic!("{other:?}"),
    }
    // 50 subscriptions at most: 49 more fit beside `cw/w/-1/-1/-1`, the next does not.
    for i in 0..49 {
        assert!(
            matches!(
                subscribe(&mut c, &mut buf, 10 + i, &format!("cw/w/{i}/0/0")).await,
                SubscribeReasonCode::Success(_)
            ),
            "subscription {i}"
        );
    }
    assert_eq!(
        subscribe(&mut c, &mut buf, 100, "cw/w/99/0/0").await,
        SubscribeReasonCode::Failure
    );
    // Again (the same filter) costs nothing; after an UNSUBSCRIBE, a new one fits.
    assert!(matches!(
        subscribe(&mut c, &mut buf, 101, "cw/w/0/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
    let mut u = rumqttc::mqttbytes::v4::Unsubscribe::new("cw/w/0/0/0");
    u.pkid = 102;
    send(&mut c, Packet::Unsubscribe(u)).await;
    assert!(matches!(
        next(&mut c, &mut buf).await,
        Some(Packet::UnsubAck(_))
    ));
    assert!(matches!(
        subscribe(&mut c, &mut buf, 103, "cw/w/99/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_reaches_a_follower_through_mosquitto() {
    let port = cubewalk_testkit::free_port();
    let dir = std::env::temp_dir().join(format!("cw-mosquitto-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("mosquitto is installed (scripts/install-test-deps.sh)");
    let mut mosquitto = std::process::Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = setup(Some(BrokerAddress {
        host: "127.0.0.1".into(),
        port,
        login: None,
    }));
    let token = s.token("follower", &["w"]);
    let (mut follower, mut buf) = s.connect(&token).await.unwrap();
    assert!(matches!(
        subscribe(&mut follower, &mut buf, 1, "cw/w/0/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
    // A put through the REST API, then its change arrives, published through Mosquitto.
    let client = reqwest::Client::new();
    let answer = client
        .put(s.gw.blocks_url())
        .header("token", &token)
        .body(r#"{"world":"w","edits":[{"chunk":[1,2,3],"index":5,"value":9}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    match next(&mut follower, &mut buf).await {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic, "cw/w/0/0/0");
            let changes = cubewalk_protocol::realtime::parse_region_message(&p.payload).unwrap();
            assert_eq!(changes.len(), 1);
            assert_eq!(changes[0].chunk, cubewalk_protocol::ChunkKey::new(1, 2, 3));
            assert_eq!(changes[0].from_seq, 0, "a chunk never written");
            assert!(changes[0].seq > 0);
            assert_eq!(changes[0].edits.as_deref(), Some(&[(5, 9)][..]));
        }
        other => panic!("no change: {other:?}"),
    }
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn packets_mqtt_3_1_1_calls_malformed_close_the_connection() {
    let s = setup(None);
    let token = s.token("sloppy", &["w"]);
    // SUBSCRIBE with header flags 0 (3.1.1 requires 0b0010), UNSUBSCRIBE likewise, and a
    // PINGREQ with a flag set: each closes the connection, nothing subscribed.
    let subscribe_flags_0: &[u8] = &[
        0x80, 15, 0, 1, 0, 10, b'c', b'w', b'/', b'w', b'/', b'0', b'/', b'0', b'/', b'0', 0,
    ];
    let unsubscribe_flags_0: &[u8] = &[
        0xa0, 14, 0, 1, 0, 10, b'c', b'w', b'/', b'w', b'/', b'0', b'/', b'0', b'/', b'0',
    ];
    // Packets only a server sends (CONNACK, SUBACK, PINGRESP), and acknowledgements of QoS 1
    // and 2 deliveries the gate never makes (PUBACK, PUBREC, PUBCOMP), close it too.
    let server_only: [&[u8]; 6] = [
        &[0x20, 2, 0, 0],
        &[0x90, 3, 0, 1, 0],
        &[0xd0, 0],
        &[0x40, 2, 0, 1],
        &[0x50, 2, 0, 1],
        &[0x70, 2, 0, 1],
    ];
    for raw in [subscribe_flags_0, unsubscribe_flags_0, &[0xc1, 0]]
        .into_iter()
        .chain(server_only)
    {
        let (mut c, _) = s.connect(&token).await.unwrap();
        send_raw(&mut c, raw).await;
        assert!(
            closed_within(&mut c, Duration::from_secs(3)).await,
            "{raw:02x?}"
        );
    }
    // SUBSCRIBE and UNSUBSCRIBE with packet id 0 (3.1.1 requires a non-zero one).
    let (mut c, _) = s.connect(&token).await.unwrap();
    send(
        &mut c,
        Packet::Subscribe(Subscribe::new("cw/w/0/0/0", QoS::AtMostOnce)),
    )
    .await;
    assert!(closed_within(&mut c, Duration::from_secs(3)).await);
    let (mut c, _) = s.connect(&token).await.unwrap();
    send(
        &mut c,
        Packet::Unsubscribe(rumqttc::mqttbytes::v4::Unsubscribe::new("cw/w/0/0/0")),
    )
    .await;
    assert!(closed_within(&mut c, Duration::from_secs(3)).await);
    // The same packets well formed are answered.
    let (mut c, mut buf) = s.connect(&token).await.unwrap();
    assert!(matches!(
        subscribe(&mut c, &mut buf, 1, "cw/w/0/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mqtt_5_connect_is_told_the_protocol_version_is_unacceptable() {
    let s = setup(None);
    let mut c = common::mqtt_open(&s.gw.realtime_url(), &s.token("modern", &["w"]))
        .await
        .unwrap();
    // MQTT 5's CONNECT: level 5, and a properties length (0) after the keepalive, so the
    // rest does not read as 3.1.1.
    let mut connect = vec![
        0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 5,
    ];
    connect.extend_from_slice(b"cw-v5");
    connect[1] = (connect.len() - 2) as u8;
    send_raw(&mut c, &connect).await;
    let mut buf = BytesMut::new();
    match next(&mut c, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::RefusedProtocolVersion),
        other => panic!("{other:?}"),
    }
    assert!(closed_within(&mut c, Duration::from_secs(3)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn keepalive_is_held_as_iot_core_holds_it() {
    let s = setup(None);
    let token = s.token("idle", &["w"]);
    // Keepalive 0 (none): accepted, held to 1,200 s. Keepalive 1: held to 30 s, so 3 s of
    // silence (twice 1.5 times what it asked for) does not end it.
    for keep_alive in [0, 1] {
        let mut c = common::mqtt_open(&s.gw.realtime_url(), &token)
            .await
            .unwrap();
        let mut connect = Connect::new("cw-idle");
        connect.keep_alive = keep_alive;
        send(&mut c, Packet::Connect(connect)).await;
        let mut buf = BytesMut::new();
        match next(&mut c, &mut buf).await {
            Some(Packet::ConnAck(a)) => {
                assert_eq!(a.code, ConnectReturnCode::Success, "keepalive {keep_alive}")
            }
            other => panic!("keepalive {keep_alive}: {other:?}"),
        }
        assert!(
            !closed_within(&mut c, Duration::from_secs(3)).await,
            "keepalive {keep_alive}: dropped while silent"
        );
        assert!(matches!(
            subscribe(&mut c, &mut buf, 1, "cw/w/0/0/0").await,
            SubscribeReasonCode::Success(_)
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_whose_writes_stall_is_dropped_and_one_that_reads_is_not() {
    // The stall timeout (500 ms here) ends it before its queue fills.
    a_follower_that_stops_reading_is_dropped(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_256_changes_behind_is_dropped_and_one_that_reads_is_not() {
    // A stall timeout of a minute: its queue overflows long before.
    a_follower_that_stops_reading_is_dropped(Duration::from_secs(60)).await;
}

/// A follower that reads nothing beside one that reads everything, while big changes flow:
/// the first is dropped (by the stall timeout `stall`, or its queue), the other gets every
/// change.
async fn a_follower_that_stops_reading_is_dropped(stall: Duration) {
    let mut config = GatewayConfig::default();
    config.connections.write_stall_timeout = stall;
    // Room for the flood below (one player writing 256 chunks ten times a second).
    config.rules.limits = cubewalk_server::store::PlayerLimits {
        cubes_per_sec: 1 << 30,
        cube_burst: 1 << 30,
        new_chunks_per_min: 1 << 20,
        new_chunk_burst: 1 << 20,
        writes_per_sec: 1 << 20,
        write_burst: 1 << 20,
    };
    let s = setup_with(None, config);
    let token = s.token("follower", &["w"]);
    // Four regions side by side on x.
    let regions: Vec<String> = (0..4).map(|r| format!("cw/w/{r}/0/0")).collect();
    let subscribe_all = |pkid: u16| {
        let mut p = Subscribe::new(&regions[0], QoS::AtMostOnce);
        p.pkid = pkid;
        for r in &regions[1..] {
            p.add(r.clone(), QoS::AtMostOnce);
        }
        Packet::Subscribe(p)
    };
    // The sleeper's socket has a small receive buffer; it reads nothing once subscribed.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp
        .connect(format!("127.0.0.1:{}", s.gw.port).parse().unwrap())
        .await
        .unwrap();
    let request = common::mqtt_request(&s.gw.realtime_url(), &token);
    let (mut sleeper, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    send(&mut sleeper, Packet::Connect(Connect::new("cw-sleeper"))).await;
    let mut sbuf = BytesMut::new();
    assert!(matches!(
        next(&mut sleeper, &mut sbuf).await,
        Some(Packet::ConnAck(_))
    ));
    send(&mut sleeper, subscribe_all(1)).await;
    assert!(matches!(
        next(&mut sleeper, &mut sbuf).await,
        Some(Packet::SubAck(_))
    ));

    // A follower of the same regions that reads everything, all along.
    let (mut reader, mut rbuf) = s.connect(&token).await.unwrap();
    send(&mut reader, subscribe_all(1)).await;
    assert!(matches!(
        next(&mut reader, &mut rbuf).await,
        Some(Packet::SubAck(_))
    ));
    const FIRST: i64 = 1_000_000_001;
    const LAST: i64 = FIRST + 105;
    let reading = tokio::spawn(async move {
        let (mut last, mut bytes) = (0, 0);
        while let Some(p) = common::mqtt_next(&mut reader, &mut rbuf, Duration::from_secs(10)).await
        {
            if let Packet::Publish(p) = p {
                bytes += p.payload.len();
                for c in cubewalk_protocol::realtime::parse_region_message(&p.payload).unwrap() {
                    if c.chunk == cubewalk_protocol::ChunkKey::new(0, 0, 0) {
                        if let Some(edits) = &c.edits {
                            last = edits.iter().map(|e| i64::from(e.1)).max().unwrap_or(last);
                        }
                    }
                }
            }
            if last == LAST {
                break;
            }
        }
        (last, bytes)
    });

    // First big changes: every chunk of the four regions, 64 cubes each (about 60 KB a
    // region message), once a tick for 2.5 s: some 6 MB to each follower, past what the kernel
    // holds for a connection on loopback. Then small ones (a cube in each region) for 8 s: 320
    // more messages, past the 256 a session may have waiting.
    let client = reqwest::Client::new();
    let put = |value: i64| {
        let big = value < FIRST + 25;
        let mut edits = Vec::new();
        for c in 0..256 {
            if !big && c % 4 != 0 {
                continue;
            }
            for i in 0..if big { 64 } else { 1 } {
                edits.push(serde_json::json!({
                    "chunk": [c % 16, (c / 16) % 4, c / 64],
                    "index": 4095 - i * 61,
                    "value": value,
                }));
            }
        }
        client
            .put(s.gw.blocks_url())
            .header("token", &token)
            .body(serde_json::json!({ "world": "w", "edits": edits }).to_string())
            .send()
    };
    for value in FIRST..LAST {
        let answer = put(value).await.unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reading again, the sleeper finds what the kernel kept, then the end: the gate gave up
    // on it, and its broker session with it.
    assert!(
        closed_within(&mut sleeper, Duration::from_secs(10)).await,
        "the sleeper was never dropped"
    );
    // The reader was never dropped: it has the last change.
    let answer = put(LAST).await.unwrap();
    assert_eq!(answer.status(), 200);
    let (last, bytes) = reading.await.unwrap();
    assert_eq!(
        last, LAST,
        "the reader got every change to the end ({bytes} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn realtime_sessions_have_their_own_cap_and_leave_the_http_one() {
    let mut config = GatewayConfig::default();
    config.connections.max_connections = 2;
    config.connections.max_realtime_connections = 3;
    let s = setup_with(None, config);
    let token = s.token("crowd", &["w"]);
    // Three sessions, past the two HTTP connections: an upgraded connection left that count.
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(s.connect(&token).await.unwrap());
    }
    let refused = s.connect(&token).await.unwrap_err();
    assert!(refused.contains("429"), "{refused}");
    // The REST API still answers beside them.
    let answer = reqwest::Client::new()
        .get(format!("{}?world=w&chunks=0,0,0", s.gw.blocks_url()))
        .header("token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // One leaves: its place is free again.
    let (mut gone, _) = open.pop().unwrap();
    let _ = gone.close(None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match s.connect(&token).await {
            Ok(c) => {
                open.push(c);
                break;
            }
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_subscribed_and_left_leave_nothing_behind_in_the_real_serve() {
    // The real program (embedded broker, its default settings), and one player subscribing to
    // region after region and leaving each: 40,000 distinct regions. A broker that kept
    // something of each filter it was ever asked for (rumqttd keeps about 5.7 KB) would grow
    // by some 230 MB.
    let server = cubewalk_testkit::ServerProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_cubewalk-server")),
        &["--seed-radius", "0"],
        &[("CUBEWALK_TOKENS", "wanderer-token-0123:wanderer:viewer")],
    );
    let host = server
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut c = common::mqtt_open(&format!("ws://{host}/mqtt"), "wanderer-token-0123")
        .await
        .unwrap();
    send(&mut c, Packet::Connect(Connect::new("cw-wanderer"))).await;
    let mut buf = BytesMut::new();
    assert!(
        matches!(next(&mut c, &mut buf).await, Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success)
    );
    let mut pkid = 0u16;
    let mut wander = |rounds: i32, from: i32| {
        let mut packets = Vec::new();
        for r in from..from + rounds {
            let topics: Vec<String> = (0..8).map(|i| format!("cw/default/{r}/{i}/0")).collect();
            pkid = pkid % 60_000 + 1;
            let mut s = Subscribe::new(&topics[0], QoS::AtMostOnce);
            s.pkid = pkid;
            for t in &topics[1..] {
                s.add(t.clone(), QoS::AtMostOnce);
            }
            pkid = pkid % 60_000 + 1;
            let mut u = rumqttc::mqttbytes::v4::Unsubscribe::new(&topics[0]);
            u.pkid = pkid;
            u.topics.extend(topics[1..].iter().cloned());
            packets.push(Packet::Subscribe(s));
            packets.push(Packet::Unsubscribe(u));
        }
        packets
    };
    let run = async |c: &mut Socket, buf: &mut BytesMut, packets: Vec<Packet>| {
        let expected = packets.len();
        for p in packets {
            send(c, p).await;
        }
        let mut answered = 0;
        while answered < expected {
            match next(c, buf).await {
                Some(Packet::SubAck(a)) => {
                    assert!(a
                        .return_codes
                        .iter()
                        .all(|r| matches!(r, SubscribeReasonCode::Success(_))));
                    answered += 1;
                }
                Some(Packet::UnsubAck(_)) => answered += 1,
                other => panic!("{other:?} after {answered} answers"),
            }
        }
    };
    // Warm up (the allocator's arenas, the maps' first growth), then measure.
    let warm = wander(500, 0);
    run(&mut c, &mut buf, warm).await;
    let before = rss(server.pid());
    for batch in 0..10 {
        let packets = wander(500, 1_000 + batch * 500);
        run(&mut c, &mut buf, packets).await;
    }
    let after = rss(server.pid());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "serve grew by {} KB over 40,000 regions subscribed and left ({} KB to {} KB)",
        grown / 1024,
        before / 1024,
        after / 1024
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_broker_closes_every_session_and_refuses_new_ones_until_it_is_back() {
    let mut mosquitto = cubewalk_testkit::MosquittoServer::start();
    let s = setup(Some(BrokerAddress {
        host: "127.0.0.1".into(),
        port: mosquitto.port,
        login: None,
    }));
    let token = s.token("follower", &["w"]);
    let (mut c, mut buf) = s.connect(&token).await.unwrap();
    assert!(matches!(
        subscribe(&mut c, &mut buf, 1, "cw/w/0/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
    // Changes published while the gate has no broker are lost to it: its sessions end, so
    // their followers reconnect and reconcile.
    mosquitto.kill();
    assert!(
        closed_within(&mut c, Duration::from_secs(5)).await,
        "a session outlived the broker"
    );
    // Meanwhile a new session is told the server is unavailable (after the gate's 10 s wait
    // for the broker).
    let mut late = common::mqtt_open(&s.gw.realtime_url(), &token)
        .await
        .unwrap();
    send(&mut late, Packet::Connect(Connect::new("cw-late"))).await;
    let mut lbuf = BytesMut::new();
    match common::mqtt_next(&mut late, &mut lbuf, Duration::from_secs(15)).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::ServiceUnavailable),
        other => panic!("{other:?}"),
    }
    // Back: sessions work again, and changes flow.
    mosquitto.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut c, mut buf) = loop {
        match s.connect(&token).await {
            Ok(c) => break c,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
        }
    };
    assert!(matches!(
        subscribe(&mut c, &mut buf, 1, "cw/w/0/0/0").await,
        SubscribeReasonCode::Success(_)
    ));
    let answer = reqwest::Client::new()
        .put(s.gw.blocks_url())
        .header("token", &token)
        .body(r#"{"world":"w","edits":[{"chunk":[0,0,0],"index":1,"value":2}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        matches!(next(&mut c, &mut buf).await, Some(Packet::Publish(p)) if p.topic == "cw/w/0/0/0"),
        "no change after the broker came back"
    );
}

/// One session leaving and retaking region `cw/w/0/0/0` `rounds` times: the changes it got
/// while holding it, and those that came after an UNSUBACK (which must be none).
async fn leave_and_retake(mut c: Socket, mut buf: BytesMut, rounds: u16) -> (usize, usize) {
    let (mut held, mut stray) = (0, 0);
    for round in 0..rounds {
        send(&mut c, common::mqtt_subscribe("cw/w/0/0/0", 2 * round + 1)).await;
        // Held for a tick or two: changes arrive (and may queue up behind the UNSUBSCRIBE).
        let until = tokio::time::Instant::now() + Duration::from_millis(rand::random_range(0..200));
        while let Ok(Some(p)) = tokio::time::timeout_at(until, next(&mut c, &mut buf)).await {
            held += usize::from(matches!(p, Packet::Publish(_)));
        }
        let mut u = rumqttc::mqttbytes::v4::Unsubscribe::new("cw/w/0/0/0");
        u.pkid = 2 * round + 2;
        send(&mut c, Packet::Unsubscribe(u)).await;
        loop {
            match next(&mut c, &mut buf).await {
                Some(Packet::UnsubAck(_)) => break,
                Some(_) => {}
                None => panic!("no UNSUBACK"),
            }
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(50);
        while let Ok(got) = tokio::time::timeout_at(until, next(&mut c, &mut buf)).await {
            stray += usize::from(matches!(got, Some(Packet::Publish(_))));
        }
    }
    (held, stray)
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_of_a_region_arrives_after_its_unsuback() {
    let s = setup(None);
    let token = s.token("fickle", &["w"]);
    // A writer changes the region every few milliseconds all along.
    let writing = {
        let (url, token) = (s.gw.blocks_url(), token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for value in 1.. {
                let body = format!(
                    r#"{{"world":"w","edits":[{{"chunk":[{},0,0],"index":1,"value":{value}}}]}}"#,
                    value % 4
                );
                let _ = client
                    .put(&url)
                    .header("token", &token)
                    .body(body)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    // 30 sessions at once, 40 rounds each: a change queued for a session just as its
    // UNSUBSCRIBE arrives is common enough to show.
    let mut sessions = Vec::new();
    for _ in 0..30 {
        let (c, buf) = s.connect(&token).await.unwrap();
        sessions.push(tokio::spawn(leave_and_retake(c, buf, 40)));
    }
    let (mut held, mut stray) = (0, 0);
    for session in sessions {
        let (h, st) = session.await.unwrap();
        held += h;
        stray += st;
    }
    writing.abort();
    assert!(held > 600, "changes flowed while held: {held}");
    assert_eq!(stray, 0, "changes after an UNSUBACK ({held} while held)");
}
