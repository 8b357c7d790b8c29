//! The local gateway's WebSocket API, driven by a plain WebSocket client: `$connect`
//! authorization, routing on `action`, two-way answers, change notifications after a put
//! through the gateway's own `@connections` endpoint, API Gateway's limits, and cleanup.

use cubewalk_protocol::realtime::Change;
use cubewalk_protocol::ChunkKey;
use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer, WebSocketLimits};
use cubewalk_server::identity::TokenSet;
use cubewalk_server::realtime::{
    Delivery, DeliveryError, ManagementApi, ManagementConfig, MemorySubscriptions, Subscriptions,
};
use cubewalk_server::store::{ChunkStore, MemoryStore};
use cubewalk_testkit::TestGateway;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const TOKEN: &str = "good-token-123";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn start(config: GatewayConfig) -> (TestGateway, Arc<MemorySubscriptions>) {
    let index = Arc::new(MemorySubscriptions::new());
    let shared = index.clone();
    let gw = TestGateway::start_full(
        config,
        Arc::new(TokenAuthorizer(TokenSet::from_list(TOKEN).into())),
        move || async move {
            let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new());
            let index: Arc<dyn Subscriptions> = shared;
            (store, index)
        },
    );
    (gw, index)
}

async fn connect(gw: &TestGateway, token: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = gw.realtime_url().into_client_request().unwrap();
    if let Some(t) = token {
        request.headers_mut().insert("token", t.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(s, _)| s)
}

async fn next_text(socket: &mut Socket) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("connection open")
            .expect("no error");
        if let Message::Text(t) = frame {
            return t.to_string();
        }
    }
}

async fn put(gw: &TestGateway, body: serde_json::Value) -> serde_json::Value {
    let r = reqwest::Client::new()
        .put(gw.blocks_url())
        .header("token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn status_of(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn connect_is_authorized_by_the_token_header() {
    let (gw, index) = start(GatewayConfig::default());
    assert_eq!(status_of(connect(&gw, None).await.unwrap_err()), 401);
    assert_eq!(
        status_of(connect(&gw, Some("wrong-token-99")).await.unwrap_err()),
        401
    );
    let mut ok = connect(&gw, Some(TOKEN)).await.unwrap();
    ok.send(Message::text(
        r#"{"action":"subscribe","world":"default","chunks":[[0,0,0]]}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next_text(&mut ok).await, r#"{"subscribed":1}"#);
    assert_eq!(index.connections(), 1);
    // Refused connections left nothing in the index.
    ok.close(None).await.unwrap();
    wait_until(|| index.connections() == 0).await;
}

async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test]
async fn a_put_notifies_followers_of_the_changed_chunks_only() {
    let (gw, _index) = start(GatewayConfig::default());
    let mut near = connect(&gw, Some(TOKEN)).await.unwrap();
    let mut far = connect(&gw, Some(TOKEN)).await.unwrap();
    near.send(Message::text(
        r#"{"action":"subscribe","world":"default","chunks":[[0,0,0],[1,0,0]]}"#,
    ))
    .await
    .unwrap();
    far.send(Message::text(
        r#"{"action":"subscribe","world":"default","chunks":[[5,5,5]]}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next_text(&mut near).await, r#"{"subscribed":2}"#);
    assert_eq!(next_text(&mut far).await, r#"{"subscribed":1}"#);

    let answer = put(
        &gw,
        serde_json::json!({"world":"default","edits":[{"chunk":[0,0,0],"index":7,"value":42}]}),
    )
    .await;
    let text = next_text(&mut near).await;
    assert!(text.len() <= 64, "{} bytes: {text}", text.len());
    let change = Change::parse(&text).unwrap();
    assert_eq!(change.chunk, ChunkKey::new(0, 0, 0));
    assert_eq!(change.previous, cubewalk_protocol::revision(&[]));
    assert_eq!(
        serde_json::json!(change.version),
        answer["chunks"][0]["version"]
    );
    assert_eq!(change.edits.as_deref(), Some(&[(7, 42)][..]));

    // The same value again changes nothing, so nobody is told.
    put(
        &gw,
        serde_json::json!({"world":"default","edits":[{"chunk":[0,0,0],"index":7,"value":42}]}),
    )
    .await;
    // Another world's chunk (0,0,0) is not followed.
    put(
        &gw,
        serde_json::json!({"world":"other","edits":[{"chunk":[0,0,0],"index":7,"value":1}]}),
    )
    .await;
    // A big edit of a followed chunk: a change without edits (refetch).
    let edits: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"chunk":[1,0,0],"index":i,"value":3}))
        .collect();
    put(&gw, serde_json::json!({"world":"default","edits":edits})).await;
    let big = Change::parse(&next_text(&mut near).await).unwrap();
    assert_eq!(big.chunk, ChunkKey::new(1, 0, 0));
    assert_eq!(big.edits, None);
    // `far` heard nothing of all this.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), far.next())
            .await
            .is_err(),
        "an unfollowed chunk was notified"
    );
}

#[tokio::test]
async fn bad_messages_are_answered_with_errors_on_the_connection() {
    let (gw, _index) = start(GatewayConfig::default());
    let mut s = connect(&gw, Some(TOKEN)).await.unwrap();
    for bad in [
        "not json",
        r#"{"action":"dance"}"#,
        r#"{"action":"subscribe","world":"bad id","chunks":[]}"#,
    ] {
        s.send(Message::text(bad)).await.unwrap();
        let answer: serde_json::Value = serde_json::from_str(&next_text(&mut s).await).unwrap();
        assert!(answer["error"]["code"].is_string(), "{answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // The connection is still usable.
    s.send(Message::text(r#"{"action":"unsubscribe","chunks":[]}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut s).await, r#"{"unsubscribed":0}"#);
}

#[tokio::test]
async fn limits_close_idle_old_and_oversized_connections_and_cleanup_follows() {
    let config = GatewayConfig {
        websocket: WebSocketLimits {
            idle_timeout: Duration::from_millis(400),
            max_lifetime: Duration::from_millis(1500),
            ..WebSocketLimits::default()
        },
        ..GatewayConfig::default()
    };
    let (gw, index) = start(config);
    let subscribe = r#"{"action":"subscribe","world":"default","chunks":[[0,0,0]]}"#;

    // Idle: no frame from the client for 400 ms.
    let mut idle = connect(&gw, Some(TOKEN)).await.unwrap();
    idle.send(Message::text(subscribe)).await.unwrap();
    next_text(&mut idle).await;
    assert_eq!(index.connections(), 1);
    let closed = closed_with(&mut idle).await;
    assert_eq!(closed, Some(1001), "idle connection closed as going away");
    wait_until(|| index.connections() == 0).await;

    // Lifetime: pings keep it from idling, the lifetime still ends it.
    let mut old = connect(&gw, Some(TOKEN)).await.unwrap();
    let started = std::time::Instant::now();
    let mut close = None;
    while close.is_none() {
        old.send(Message::Ping(vec![].into())).await.ok();
        match tokio::time::timeout(Duration::from_millis(200), old.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => close = Some(frame.map(|f| u16::from(f.code))),
            Ok(None) | Ok(Some(Err(_))) => close = Some(None),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never closed");
    }
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(close, Some(Some(1001)));

    // A message over 128 KB ends the connection.
    let mut big = connect(&gw, Some(TOKEN)).await.unwrap();
    big.send(Message::text("x".repeat(128 * 1024 + 1)))
        .await
        .ok();
    let end = tokio::time::timeout(Duration::from_secs(5), big.next())
        .await
        .unwrap();
    assert!(
        matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "{end:?}"
    );
}

async fn closed_with(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("closed within 5 s")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

#[tokio::test]
async fn only_the_gateways_own_notifier_can_post_to_connections() {
    let (gw, _index) = start(GatewayConfig::default());
    let mut victim = connect(&gw, Some(TOKEN)).await.unwrap();
    victim
        .send(Message::text(
            r#"{"action":"subscribe","world":"default","chunks":[[0,0,0]]}"#,
        ))
        .await
        .unwrap();
    next_text(&mut victim).await;
    let endpoint = format!("{}/prod", gw.base);
    let unsigned = reqwest::Client::new()
        .post(format!("{endpoint}/@connections/abc"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    // Properly signed, but with a key the gateway did not make: a fake change is refused, and
    // whether a connection exists is not revealed.
    let forger = ManagementApi::new(&ManagementConfig::local(endpoint, "AKIDFORGED0000000000"));
    for id in ["no-such-connection", "abc"] {
        match forger
            .post(id, r#"[[0,0,0],"AAAAAAAAAAA","AQAAAAAAAAA",9,0,666]"#)
            .await
        {
            Err(DeliveryError::Failed(why)) => assert!(why.starts_with("403:"), "{why}"),
            other => panic!("a forged post was not refused: {other:?}"),
        }
    }
    // The gateway's own notifier still reaches the victim, and nothing forged came before.
    put(
        &gw,
        serde_json::json!({"world":"default","edits":[{"chunk":[0,0,0],"index":1,"value":5}]}),
    )
    .await;
    let change = Change::parse(&next_text(&mut victim).await).unwrap();
    assert_eq!(change.edits.as_deref(), Some(&[(1, 5)][..]));
}

#[tokio::test]
async fn gone_connections_are_forgotten_when_a_put_finds_them() {
    let (gw, index) = start(GatewayConfig::default());
    // A connection the index still lists but the gateway has closed (its $disconnect was
    // lost, as a failed Lambda would lose it).
    index
        .subscribe("ghost", &Default::default(), &[ChunkKey::new(0, 0, 0)])
        .await
        .unwrap();
    put(
        &gw,
        serde_json::json!({"world":"default","edits":[{"chunk":[0,0,0],"index":1,"value":1}]}),
    )
    .await;
    assert_eq!(index.connections(), 0, "the gone connection was removed");
}

#[tokio::test]
async fn a_put_succeeds_when_delivery_fails_or_hangs() {
    // A Management API that accepts connections and never answers, and one that is not there.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    for endpoint in [
        format!("http://{silent_addr}/prod"),
        "http://127.0.0.1:1/prod".to_string(),
    ] {
        let (gw, index) = start(GatewayConfig {
            management_endpoint: Some(endpoint.clone()),
            ..GatewayConfig::default()
        });
        index
            .subscribe("someone", &Default::default(), &[ChunkKey::new(0, 0, 0)])
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let answer = put(
            &gw,
            serde_json::json!({"world":"default","edits":[{"chunk":[0,0,0],"index":1,"value":9}]}),
        )
        .await;
        assert!(
            answer["chunks"][0]["version"].is_u64(),
            "{endpoint}: {answer}"
        );
        // Bounded by the notifier's 2 s deadline (generous margin for a loaded machine).
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{endpoint}: the put waited {:?}",
            started.elapsed()
        );
        // A failed delivery is not a gone connection: the subscription stays.
        assert_eq!(index.connections(), 1, "{endpoint}");
    }
    held.abort();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_until_one_closes() {
    let config = GatewayConfig {
        websocket: WebSocketLimits {
            max_connections: 2,
            ..WebSocketLimits::default()
        },
        ..GatewayConfig::default()
    };
    let (gw, _index) = start(config);
    let mut first = connect(&gw, Some(TOKEN)).await.unwrap();
    let _second = connect(&gw, Some(TOKEN)).await.unwrap();
    assert_eq!(status_of(connect(&gw, Some(TOKEN)).await.unwrap_err()), 429);
    first.close(None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match connect(&gw, Some(TOKEN)).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(status_of(e), 429);
                assert!(std::time::Instant::now() < deadline, "the slot never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
