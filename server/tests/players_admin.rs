//! Players against each other and the admin, through the local gateway (embedded store and a
//! real `redis-server`): one player's flood is limited while another's puts all pass; a
//! rollback restores exactly the cubes no one else touched since; a ban refuses puts and
//! follows and closes the player's open connection; another player's reuse of an idempotency
//! key changes nothing of the first player's; error bodies carry no store internals.

mod common;
use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::{PublicKeys, SigningKey, TokenSet, Verifier};
use cubewalk_server::store::{ChunkStore, MemoryStore, PlayerLimits, RedisStore, RedisStoreConfig};
use cubewalk_testkit::tokens::{claims, sign};
use cubewalk_testkit::{RedisServer, TestGateway};
use futures_util::StreamExt;
use rumqttc::mqttbytes::v4::{Connect, Packet};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket = common::MqttSocket;

/// The backend a test runs on.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Redis,
}

struct World {
    gw: TestGateway,
    key: SigningKey,
    _redis: Option<RedisServer>,
}

impl World {
    fn start(backend: Backend, limits: PlayerLimits) -> Self {
        let key = SigningKey::generate();
        let mut keys = PublicKeys::new();
        keys.add_signing_key(&key);
        let verifier = Verifier {
            keys,
            static_tokens: TokenSet::default(),
            issuer: None,
        };
        let config = GatewayConfig {
            rules: cubewalk_server::handlers::blocks::Rules {
                limits,
                ..cubewalk_server::handlers::blocks::Rules::any_world()
            },
            // Every call is authorized afresh: bans and tokens take effect at once in tests.
            auth_cache_ttl: Duration::ZERO,
            ..GatewayConfig::default()
        };
        let redis = matches!(backend, Backend::Redis).then(RedisServer::start);
        let url = redis.as_ref().map(RedisServer::url);
        let gw = TestGateway::start_realtime_at(0, config, verifier, None, move || async move {
            match url {
                Some(url) => Arc::new(
                    RedisStore::connect(&RedisStoreConfig::new(url))
                        .await
                        .unwrap(),
                ) as Arc<dyn ChunkStore>,
                None => Arc::new(MemoryStore::new()) as Arc<dyn ChunkStore>,
            }
        });
        Self {
            gw,
            key,
            _redis: redis,
        }
    }

    fn token(&self, player: &str, role: &str) -> String {
        sign(&self.key, &claims(player, role))
    }

    async fn put(&self, token: &str, body: Value) -> (u16, Option<String>, Value) {
        let r = reqwest::Client::new()
            .put(self.gw.blocks_url())
            .header("token", token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, r.json().await.unwrap_or(Value::Null))
    }

    async fn cubes(&self, token: &str, chunk: &str) -> Vec<i32> {
        let r: Value = reqwest::Client::new()
            .get(format!("{}?world=w&chunks={chunk}", self.gw.blocks_url()))
            .header("token", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = r["chunks"][0]["data"].as_str().unwrap_or("");
        let blob = cubewalk_protocol::codec::blob_from_base64(data).unwrap();
        cubewalk_protocol::codec::decode_chunk(&blob)
            .unwrap()
            .to_vec()
    }

    fn admin_url(&self) -> String {
        format!("{}/prod/cubewalkadmin", self.gw.base)
    }

    async fn admin_get(&self, token: &str, query: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}?{query}", self.admin_url()))
            .header("token", token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn admin_post(&self, token: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.admin_url())
            .header("token", token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// A realtime (MQTT over WebSocket) connection with `token`, after its CONNACK.
    async fn connect(&self, token: &str) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let mut socket = common::mqtt_open(&self.gw.realtime_url(), token).await?;
        send_packet(&mut socket, Packet::Connect(Connect::new("cw-c"))).await;
        assert!(matches!(
            next_packet(&mut socket).await,
            Some(Packet::ConnAck(_))
        ));
        Ok(socket)
    }
}

fn edit(chunk: [i32; 3], index: u16, value: i32) -> Value {
    json!({"chunk": chunk, "index": index, "value": value})
}

fn put_body(edits: Vec<Value>) -> Value {
    json!({"world": "w", "edits": edits})
}

async fn send_packet(socket: &mut Socket, packet: Packet) {
    common::mqtt_send(socket, packet).await.unwrap();
}

/// The next MQTT packet within 5 s.
async fn next_packet(socket: &mut Socket) -> Option<Packet> {
    common::mqtt_next(socket, &mut bytes::BytesMut::new(), Duration::from_secs(5)).await
}

/// Whether the server closes `socket` within 5 s.
async fn closed(socket: &mut Socket) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn flood_is_limited_and_others_are_not(backend: Backend) {
    let limits = PlayerLimits {
        cubes_per_sec: 200,
        cube_burst: 400,
        ..PlayerLimits::default()
    };
    let w = World::start(backend, limits);
    let (flood, honest) = (w.token("flood", "editor"), w.token("honest", "editor"));
    let hundred = |base: i32| {
        put_body(
            (0..100)
                .map(|i| edit([0, 0, 0], i, base + i32::from(i)))
                .collect(),
        )
    };
    let mut limited = 0;
    let mut honest_ok = 0;
    for round in 0..20 {
        // The flooder sends 5 puts of 100 cubes (2 500 cubes/s against a 200/s limit) for
        // every put of the honest player's 100 cubes (about 20 a round trip, far under).
        for _ in 0..5 {
            let (status, retry, body) = w.put(&flood, hundred(round)).await;
            if status == 429 {
                limited += 1;
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                let secs: u64 = retry.expect("Retry-After").parse().unwrap();
                assert!((1..=2).contains(&secs), "Retry-After {secs}");
            } else {
                assert_eq!(status, 200, "{body}");
            }
        }
        let chunk = [1, 0, 0];
        let (status, _, body) = w
            .put(&honest, put_body(vec![edit(chunk, 7, round + 1)]))
            .await;
        assert_eq!(status, 200, "honest player's put {round}: {body}");
        honest_ok += 1;
    }
    assert!(
        limited >= 50,
        "{backend:?}: only {limited} of 100 flood puts limited"
    );
    assert_eq!(honest_ok, 20);
}

#[tokio::test]
async fn one_flooding_player_is_limited_another_is_not() {
    flood_is_limited_and_others_are_not(Backend::Memory).await;
    flood_is_limited_and_others_are_not(Backend::Redis).await;
}

async fn rollback_restores_what_others_did_not_touch(backend: Backend) {
    let w = World::start(backend, PlayerLimits::default());
    let (alice, bob, root) = (
        w.token("alice", "editor"),
        w.token("bob", "editor"),
        w.token("root", "admin"),
    );
    // Before: cubes 0..4 of chunk 0,0,0 hold 1; a follower watches it.
    let (s, _, _) = w
        .put(
            &bob,
            put_body((0..4).map(|i| edit([0, 0, 0], i, 1)).collect()),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let since = cubewalk_server::store::log::now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Alice overwrites cubes 0..4 (twice for cube 0) and writes another chunk.
    for body in [
        put_body((0..4).map(|i| edit([0, 0, 0], i, 66)).collect()),
        put_body(vec![edit([0, 0, 0], 0, 67), edit([5, 5, 5], 9, 66)]),
    ] {
        assert_eq!(w.put(&alice, body).await.0, 200);
    }
    // Bob then changes cube 2 (and so it is his now).
    assert_eq!(
        w.put(&bob, put_body(vec![edit([0, 0, 0], 2, 2)])).await.0,
        200
    );
    let mut follower = w.connect(&bob).await.unwrap();
    send_packet(&mut follower, common::mqtt_subscribe("cw/w/0/0/0", 1)).await;
    assert!(matches!(
        next_packet(&mut follower).await,
        Some(Packet::SubAck(_))
    ));

    // History: the chunk's log names both players; Alice's history has her three writes.
    let (s, chunk) = w
        .admin_get(
            &root,
            &format!("op=chunk&world=w&chunk=0,0,0&since={since}"),
        )
        .await;
    assert_eq!(s, 200, "{chunk}");
    let players: Vec<&str> = chunk["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["player"].as_str().unwrap())
        .collect();
    assert_eq!(players, ["alice", "alice", "bob"]);
    let (s, history) = w
        .admin_get(
            &root,
            &format!("op=player&world=w&player=alice&since={since}"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(history["records"].as_array().unwrap().len(), 3, "{history}");

    let (s, report) = w
        .admin_post(
            &root,
            json!({"op": "rollback", "world": "w", "player": "alice", "since": since}),
        )
        .await;
    assert_eq!(s, 200, "{report}");
    // Cubes 0, 1, 3 of the first chunk and cube 9 of the second go back; cube 2 is Bob's.
    assert_eq!(report["restored"], 4, "{report}");
    assert_eq!(
        report["conflicts"],
        json!([{"chunk": [0, 0, 0], "index": 2, "current": 2}])
    );
    let c = w.cubes(&bob, "0,0,0").await;
    assert_eq!(&c[..4], &[1, 1, 2, 1]);
    assert_eq!(w.cubes(&bob, "5,5,5").await[9], 0);
    // The follower heard the rollback like any put.
    let Some(Packet::Publish(message)) = next_packet(&mut follower).await else {
        panic!("the follower heard nothing");
    };
    let changes = cubewalk_protocol::realtime::parse_region_message(&message.payload).unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.chunk == cubewalk_protocol::ChunkKey::new(0, 0, 0)),
        "{changes:?}"
    );
    // The rollback is logged, as the admin's edit.
    let (_, chunk) = w
        .admin_get(
            &root,
            &format!("op=chunk&world=w&chunk=0,0,0&since={since}"),
        )
        .await;
    assert_eq!(
        chunk["records"].as_array().unwrap().last().unwrap()["player"],
        "admin:root"
    );
    // Running it again changes nothing and reports the same conflict.
    let (_, again) = w
        .admin_post(
            &root,
            json!({"op": "rollback", "world": "w", "player": "alice", "since": since}),
        )
        .await;
    assert_eq!(again["restored"], 0, "{again}");

    // Only admins: an editor (even the one being rolled back) is refused.
    for token in [&alice, &bob] {
        let (s, body) = w.admin_get(token, "op=player&world=w&player=alice").await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
}

#[tokio::test]
async fn rollback_restores_exactly_the_cubes_others_did_not_touch() {
    rollback_restores_what_others_did_not_touch(Backend::Memory).await;
    rollback_restores_what_others_did_not_touch(Backend::Redis).await;
}

async fn ban_refuses_and_disconnects(backend: Backend) {
    let w = World::start(backend, PlayerLimits::default());
    let (carol, root) = (w.token("carol", "editor"), w.token("root", "admin"));
    let mut open = w.connect(&carol).await.unwrap();
    send_packet(&mut open, common::mqtt_subscribe("cw/w/0/0/0", 1)).await;
    assert!(matches!(
        next_packet(&mut open).await,
        Some(Packet::SubAck(_))
    ));
    let mut idle = w.connect(&carol).await.unwrap();

    let (s, body) = w
        .admin_post(&root, json!({"op": "ban", "player": "carol"}))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["closed"], 2, "{body}");
    assert!(
        closed(&mut open).await,
        "{backend:?}: the following connection was closed"
    );
    assert!(
        closed(&mut idle).await,
        "{backend:?}: the idle connection was closed"
    );

    let (s, _, body) = w.put(&carol, put_body(vec![edit([0, 0, 0], 1, 1)])).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("banned")));
    match w.connect(&carol).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 401)
        }
        other => panic!("a banned player connected: {:?}", other.map(|_| ())),
    }

    let (s, _) = w
        .admin_post(&root, json!({"op": "unban", "player": "carol"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        w.put(&carol, put_body(vec![edit([0, 0, 0], 1, 1)])).await.0,
        200
    );
    assert!(w.connect(&carol).await.is_ok());
}

#[tokio::test]
async fn a_banned_player_is_refused_and_disconnected() {
    ban_refuses_and_disconnects(Backend::Memory).await;
    ban_refuses_and_disconnects(Backend::Redis).await;
}

async fn idempotency_keys_are_the_players_own(backend: Backend) {
    let w = World::start(backend, PlayerLimits::default());
    let (alice, mallory) = (w.token("alice", "editor"), w.token("mallory", "editor"));
    let key = "alices-key-000000000001";
    let body = json!({"world": "w", "idempotency_key": key, "edits": [edit([0, 0, 0], 1, 11)]});
    assert_eq!(w.put(&alice, body.clone()).await.0, 200);
    // Mallory replays Alice's key with an edit of his own over her cube: his put is his own
    // (it is not taken as a replay of hers), and a replay of it changes nothing further.
    let theirs = json!({"world": "w", "idempotency_key": key, "edits": [edit([0, 0, 0], 2, 66)]});
    assert_eq!(w.put(&mallory, theirs.clone()).await.0, 200);
    assert_eq!(
        w.cubes(&alice, "0,0,0").await[1],
        11,
        "alice's cube untouched"
    );
    // Alice's retry still answers as a replay and changes nothing.
    let (s, _, answer) = w.put(&alice, body).await;
    assert_eq!(s, 200, "{answer}");
    let c = w.cubes(&alice, "0,0,0").await;
    assert_eq!((c[1], c[2]), (11, 66));
    // The same key with another body, from its owner: refused, nothing written.
    let other = json!({"world": "w", "idempotency_key": key, "edits": [edit([0, 0, 0], 1, 12)]});
    let (s, _, err) = w.put(&alice, other).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(w.cubes(&alice, "0,0,0").await[1], 11);
}

#[tokio::test]
async fn another_player_reusing_an_idempotency_key_changes_nothing_of_the_owners() {
    idempotency_keys_are_the_players_own(Backend::Memory).await;
    idempotency_keys_are_the_players_own(Backend::Redis).await;
}

/// With Redis gone, every answer is a clean 503 naming the request, with nothing of Redis in
/// it (no message, address, port or user name).
#[tokio::test]
async fn error_bodies_carry_no_store_internals() {
    let mut redis = RedisServer::start();
    let port = redis.port.to_string();
    let w = {
        let key = SigningKey::generate();
        let mut keys = PublicKeys::new();
        keys.add_signing_key(&key);
        let url = format!("redis://cubewalk-user:secret-pass@127.0.0.1:{port}");
        let verifier = Verifier {
            keys,
            static_tokens: TokenSet::default(),
            issuer: None,
        };
        let gw = TestGateway::start_with(
            GatewayConfig::default(),
            Arc::new(TokenAuthorizer(verifier)),
            move || async move {
                let store: Arc<dyn ChunkStore> =
                    Arc::new(RedisStore::connect_lazy(&RedisStoreConfig::new(url)).unwrap());
                store
            },
        );
        World {
            gw,
            key,
            _redis: None,
        }
    };
    redis.kill();
    let token = w.token("alice", "admin");
    let mut bodies = Vec::new();
    let (s, _, body) = w.put(&token, put_body(vec![edit([0, 0, 0], 1, 1)])).await;
    bodies.push((s, body));
    let r = reqwest::Client::new()
        .get(format!("{}?chunks=0,0,0", w.gw.blocks_url()))
        .header("token", &token)
        .send()
        .await
        .unwrap();
    bodies.push((r.status().as_u16(), r.json().await.unwrap()));
    bodies.push(w.admin_get(&token, "op=chunk&world=w&chunk=0,0,0").await);
    for (status, body) in bodies {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert_eq!(body["error"]["request_id"].as_str().map(str::len), Some(32));
        let text = body.to_string().to_lowercase();
        for secret in [
            "redis",
            "127.0.0.1",
            &port,
            "cubewalk-user",
            "secret-pass",
            "refused",
            "io error",
        ] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
}

/// The `admin` commands on a Redis URL: history, rollback and ban, answering JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_on_a_redis_url() {
    use cubewalk_protocol::{ChunkKey, CubeRef, WorldId};
    use cubewalk_server::store::Put;
    let redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    let w = WorldId::new("w").unwrap();
    let k = ChunkKey::new(-1, 2, 3);
    for (player, value) in [("alice", 5), ("bob", 6)] {
        let put = Put {
            player,
            ..Put::system()
        };
        let index = if player == "alice" { 1 } else { 2 };
        store
            .apply_edits(&w, &[(k, vec![CubeRef { index, value }])], &put)
            .await
            .unwrap();
    }
    let url = redis.url();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cubewalk-server"))
            .arg("admin")
            .args(args)
            .args(["--redis", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let chunk = run(&["chunk-history", "--world", "w", "--chunk", "-1,2,3"]);
    assert_eq!(chunk["records"].as_array().unwrap().len(), 2, "{chunk}");
    let alice = run(&[
        "player-history",
        "--world",
        "w",
        "--player",
        "alice",
        "--since",
        "1h",
    ]);
    assert_eq!(alice["records"][0]["chunk"], json!([-1, 2, 3]), "{alice}");
    assert_eq!(
        alice["records"][0]["changes"],
        json!([{"index": 1, "before": 0, "after": 5}])
    );
    let report = run(&[
        "rollback", "--world", "w", "--player", "alice", "--since", "1h",
    ]);
    assert_eq!(report["restored"], 1, "{report}");
    let c = cubewalk_protocol::codec::decode_chunk(&store.fetch(&w, &[k]).await.unwrap()[0].blob)
        .unwrap();
    assert_eq!((c[1], c[2]), (0, 6), "alice's cube back, bob's kept");
    assert_eq!(run(&["ban", "--player", "alice"])["banned"], true);
    assert!(store.is_banned("alice").await.unwrap());
    assert_eq!(run(&["unban", "--player", "alice"])["banned"], false);
    assert!(!store.is_banned("alice").await.unwrap());
}
