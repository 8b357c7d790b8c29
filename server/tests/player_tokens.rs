//! Player tokens through the local gateway: every classic forgery answers 401, roles and worlds
//! answer 403 `forbidden`, and good EdDSA and ES256 tokens (several keys at once) work.

use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::{PublicKeys, SigningKey, TokenSet, Verifier};
use cubewalk_server::store::MemoryStore;
use cubewalk_testkit::tokens::{claims, forgeries, sign, Es256Key};
use cubewalk_testkit::TestGateway;
use serde_json::json;
use std::sync::Arc;

fn start(keys: &[&SigningKey], es: &Es256Key) -> TestGateway {
    let mut public = PublicKeys::new();
    for k in keys {
        public.add_signing_key(k);
    }
    let set = json!({ "keys": [es.public_jwk()] }).to_string();
    let es_keys = PublicKeys::from_jwks(&set).unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(es.public_jwk()).unwrap();
    public.add_jwk(&jwk).unwrap();
    assert_eq!(es_keys.len(), 1);
    let verifier = Verifier {
        keys: public,
        static_tokens: TokenSet::parse("static-viewer-token:tester:viewer").unwrap(),
        issuer: None,
    };
    TestGateway::start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(verifier)),
        Arc::new(MemoryStore::new()),
    )
}

async fn call(gw: &TestGateway, method: &str, token: &str, world: &str) -> (u16, String) {
    let client = reqwest::Client::new();
    let url = format!("{}?world={world}&chunks=0,0,0", gw.blocks_url());
    let req = match method {
        "GET" => client.get(url),
        _ => client.put(gw.blocks_url()).body(
            json!({"world": world, "edits": [{"chunk": [0, 0, 0], "index": 1, "value": 5}]})
                .to_string(),
        ),
    };
    let r = req.header("token", token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn forged_tokens_are_unauthorized_and_roles_and_worlds_are_enforced() {
    let key = SigningKey::generate();
    let rotated = SigningKey::generate();
    let es = Es256Key::generate("es-key-1");
    let gw = start(&[&key, &rotated], &es);
    let verifier_only = Verifier {
        keys: {
            let mut k = PublicKeys::new();
            k.add_signing_key(&key);
            k
        },
        static_tokens: TokenSet::default(),
        issuer: None,
    };
    for (what, token) in forgeries(&key) {
        assert!(verifier_only.verify(&token).is_err(), "verified: {what}");
        for method in ["GET", "PUT"] {
            assert_eq!(
                call(&gw, method, &token, "default").await,
                (401, r#"{"message":"Unauthorized"}"#.into()),
                "{what} ({method})"
            );
        }
    }

    // Good tokens: both Ed25519 keys (rotation) and the ES256 key.
    for token in [
        sign(&key, &claims("alice", "editor")),
        sign(&rotated, &claims("alice", "editor")),
        es.sign_as("es-key-1", &claims("alice", "editor")),
    ] {
        assert_eq!(call(&gw, "PUT", &token, "default").await.0, 200);
        assert_eq!(call(&gw, "GET", &token, "default").await.0, 200);
    }

    // A viewer (player token or static token) reads but cannot put.
    for viewer in [
        sign(&key, &claims("vic", "viewer")),
        "static-viewer-token".to_string(),
    ] {
        assert_eq!(call(&gw, "GET", &viewer, "default").await.0, 200);
        let (status, body) = call(&gw, "PUT", &viewer, "default").await;
        assert_eq!(status, 403, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }

    // A token naming worlds touches only those.
    let mut c = claims("wendy", "editor");
    c["worlds"] = json!(["w1"]);
    let scoped = sign(&key, &c);
    assert_eq!(call(&gw, "PUT", &scoped, "w1").await.0, 200);
    assert_eq!(call(&gw, "GET", &scoped, "w1").await.0, 200);
    for method in ["GET", "PUT"] {
        let (status, body) = call(&gw, method, &scoped, "w2").await;
        assert_eq!(status, 403, "{method} {body}");
        assert!(body.contains(r#""code":"forbidden""#), "{body}");
    }
}
