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
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::QoS;
use std::sync::Arc;
use std::time::Duration;

type Socket = common::MqttSocket;

struct Setup {
    gw: TestGateway,
    key: SigningKey,
}

fn setup(broker: Option<BrokerAddress>) -> Setup {
    let key = SigningKey::generate();
    let mut keys = PublicKeys::new();
    keys.add_signing_key(&key);
    let verifier = Verifier {
        keys,
        ..Verifier::default()
    };
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new());
    let gw = TestGateway::start_realtime_at(
        0,
        GatewayConfig::default(),
        verifier,
        broker,
        move || async move { store },
    );
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

async fn subscribe(
    socket: &mut Socket,
    buf: &mut BytesMut,
    pkid: u16,
    filter: &str,
) -> SubscribeReasonCode {
    let mut s = Subscribe::new(filter, QoS::AtMostOnce);
    s.pkid = pkid;
    send(socket, Packet::Subscribe(s)).await;
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
