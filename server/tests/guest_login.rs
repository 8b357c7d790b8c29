//! The guest login through the local gateway: `POST /prod/cubewalklogin` needs no token and
//! never runs the authorizer; the token it answers puts blocks; bad requests answer the
//! standard JSON error body; without a login configured the route does not exist.

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest;
use cubewalk_server::gateway::{Authorizer, GatewayConfig, TokenAuthorizer};
use cubewalk_server::handlers::login::{guest_player_id, LoginConfig, LoginResponse};
use cubewalk_server::identity::{PublicKeys, SigningKey, Verifier};
use cubewalk_server::store::MemoryStore;
use cubewalk_testkit::TestGateway;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The real authorizer, counting its invocations.
struct Counting(TokenAuthorizer, Arc<AtomicUsize>);

#[async_trait]
impl Authorizer for Counting {
    async fn invoke(&self, event: ApiGatewayCustomAuthorizerRequest) -> Result<Value, String> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.invoke(event).await
    }
}

fn start(login: bool) -> (TestGateway, Arc<AtomicUsize>) {
    let key = SigningKey::generate();
    let mut keys = PublicKeys::new();
    keys.add_signing_key(&key);
    let calls = Arc::new(AtomicUsize::new(0));
    let authorizer = Counting(
        TokenAuthorizer(Verifier {
            keys,
            ..Verifier::default()
        }),
        calls.clone(),
    );
    let config = GatewayConfig {
        login: login.then(|| Arc::new(LoginConfig::new(key))),
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start(config, Arc::new(authorizer), Arc::new(MemoryStore::new()));
    (gw, calls)
}

fn login_url(gw: &TestGateway) -> String {
    format!("{}/prod/cubewalklogin", gw.base)
}

async fn post(gw: &TestGateway, body: String) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(login_url(gw))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_guest_logs_in_without_a_token_and_puts_with_the_answer() {
    let (gw, calls) = start(true);
    let secret = "d3v1ce-secret_0123456789abcdef";
    let (status, body) = post(&gw, json!({ "device_secret": secret }).to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the login ran the authorizer"
    );
    let ok: LoginResponse = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(ok.player, guest_player_id(secret));
    assert_eq!(body["role"], "editor");
    assert_eq!(body["expires_in"], 3600);
    // Stable: the same secret logs in as the same player.
    let (_, again) = post(&gw, json!({ "device_secret": secret }).to_string()).await;
    assert_eq!(again["player"], body["player"]);

    let put = reqwest::Client::new()
        .put(gw.blocks_url())
        .header("token", &ok.token)
        .body(r#"{"world":"default","edits":[{"chunk":[0,0,0],"index":1,"value":5}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_logins_answer_json_errors_and_no_login_means_no_route() {
    let (gw, calls) = start(true);
    for (body, status, code) in [
        ("{".to_string(), 400, "malformed_json"),
        (
            r#"{"device_secret":"short"}"#.to_string(),
            422,
            "invalid_request",
        ),
        ("x".repeat(5000), 413, "too_large"),
    ] {
        let (got, answer) = post(&gw, body).await;
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(answer["error"]["request_id"].is_string(), "{answer}");
    }
    let client = reqwest::Client::new();
    let r = client.get(login_url(&gw)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // A browser's preflight for the JSON POST.
    let r = client
        .request(reqwest::Method::OPTIONS, login_url(&gw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let (off, _) = start(false);
    let r = client
        .post(login_url(&off))
        .body(r#"{"device_secret":"d3v1ce-secret_0123456789abcdef"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"message":"Missing Authentication Token"}"#
    );
}
