//! An external OpenID Connect issuer's tokens through the local gateway: a stand-in issuer
//! (discovery document and key set on loopback, RS256 keys as Cognito, Auth0 and Firebase
//! use) is trusted beside our own Ed25519 key. Its good tokens work with the configured player
//! claim and role claim; forgeries against it answer 401; a rotation is picked up when a token
//! names the new key, and a flood of made-up key ids costs the issuer at most one fetch.

use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::{
    OidcConfig, OidcIssuer, PublicKeys, SigningKey, TokenSet, Verifier,
};
use cubewalk_server::store::MemoryStore;
use cubewalk_testkit::issuer::{IssuerKey, OidcStandIn};
use cubewalk_testkit::tokens::{claims, now, sign};
use cubewalk_testkit::TestGateway;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const AUDIENCE: &str = "app-client-1234";

fn config(stand_in: &OidcStandIn) -> OidcConfig {
    OidcConfig {
        role_claim: Some("cognito:groups".into()),
        ..OidcConfig::new(stand_in.issuer.clone(), AUDIENCE)
    }
}

fn verifier(own: &SigningKey, issuer: OidcIssuer) -> Verifier {
    let mut keys = PublicKeys::new();
    keys.add_signing_key(own);
    Verifier {
        keys,
        static_tokens: TokenSet::default(),
        issuer: Some(Arc::new(issuer)),
    }
}

fn gateway(verifier: Verifier) -> TestGateway {
    TestGateway::start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(verifier)),
        Arc::new(MemoryStore::new()),
    )
}

async fn call(gw: &TestGateway, method: &str, token: &str) -> (u16, String) {
    let client = reqwest::Client::new();
    let req = match method {
        "GET" => client.get(format!("{}?world=default&chunks=0,0,0", gw.blocks_url())),
        _ => client.put(gw.blocks_url()).body(
            json!({"world": "default", "edits": [{"chunk": [0, 0, 0], "index": 1, "value": 5}]})
                .to_string(),
        ),
    };
    let r = req.header("token", token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// `header.payload.` with the given header and claims, and `signature` as its third part.
fn hand_made(header: Value, claims: &Value, signature: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn issuer_tokens_work_with_their_claims_and_forgeries_against_the_issuer_are_refused() {
    let (a, b, weak) = (
        IssuerKey::fixture("issuer-rsa-a"),
        IssuerKey::fixture("issuer-rsa-b"),
        IssuerKey::fixture("issuer-rsa-weak"),
    );
    let stand_in = OidcStandIn::start(&[&a, &weak]);
    let issuer = OidcIssuer::new(config(&stand_in)).unwrap();
    // The 1024-bit key is published but never trusted.
    assert_eq!(issuer.refresh().await.unwrap(), 1);
    let own = SigningKey::generate();
    let gw = gateway(verifier(&own, issuer));
    let good = stand_in.claims("7c9e6679-7425-40de-944b-e07fc1f90ae7", AUDIENCE);

    // Good: the issuer's token (player = sub, default role editor), and our own beside it.
    assert_eq!(call(&gw, "PUT", &a.sign(&good)).await.0, 200);
    assert_eq!(call(&gw, "GET", &a.sign(&good)).await.0, 200);
    assert_eq!(
        call(&gw, "PUT", &sign(&own, &claims("alice", "editor")))
            .await
            .0,
        200
    );
    // The role comes only from the configured claim: a `role` claim gives nothing, a group
    // named viewer makes a viewer, the highest named group wins.
    let viewer = with(good.clone(), "cognito:groups", json!(["players", "viewer"]));
    assert_eq!(call(&gw, "GET", &a.sign(&viewer)).await.0, 200);
    let (status, body) = call(&gw, "PUT", &a.sign(&viewer)).await;
    assert_eq!((status, body.contains("forbidden")), (403, true), "{body}");
    let many = with(good.clone(), "cognito:groups", json!(["viewer", "editor"]));
    assert_eq!(call(&gw, "PUT", &a.sign(&many)).await.0, 200);
    let claimed_admin = with(viewer.clone(), "role", json!("admin"));
    assert_eq!(call(&gw, "PUT", &a.sign(&claimed_admin)).await.0, 403);

    let expired = with(
        with(good.clone(), "exp", json!(now() - 120)),
        "iat",
        json!(now() - 3720),
    );
    let forgeries: Vec<(&str, String)> = vec![
        (
            "signed by a 1024-bit key the issuer publishes",
            weak.sign(&good),
        ),
        (
            "signed by an unpublished key under the issuer's kid",
            b.sign_as(&a.kid, &good),
        ),
        (
            "another audience",
            a.sign(&with(good.clone(), "aud", json!("other-app"))),
        ),
        (
            "our audience instead of the issuer's",
            a.sign(&with(good.clone(), "aud", json!("cubewalk"))),
        ),
        (
            "another issuer",
            a.sign(&with(good.clone(), "iss", json!("https://evil.example"))),
        ),
        ("no iss", a.sign(&without(good.clone(), "iss"))),
        ("expired 2 min", a.sign(&expired)),
        ("no exp", a.sign(&without(good.clone(), "exp"))),
        (
            "not yet valid",
            a.sign(&with(good.clone(), "nbf", json!(now() + 300))),
        ),
        ("no player id", a.sign(&without(good.clone(), "sub"))),
        (
            "a player id with a slash",
            a.sign(&with(good.clone(), "sub", json!("a/b"))),
        ),
        (
            "a guest's player id",
            a.sign(&with(good.clone(), "sub", json!("guest-0123456789abcdef"))),
        ),
        (
            "worlds not a list",
            a.sign(&with(good.clone(), "worlds", json!("default"))),
        ),
        ("issuer key naming our kid", a.sign_as(own.kid(), &good)),
        ("our key naming the issuer's kid", {
            let mut c = claims("alice", "editor");
            c["iss"] = json!(stand_in.issuer);
            cubewalk_testkit::tokens::sign_as(&own, &a.kid, &c)
        }),
        (
            "alg none under the issuer's kid",
            hand_made(json!({"alg": "none", "kid": a.kid}), &good, ""),
        ),
        ("HS256 keyed with the issuer's public JWK", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(a.kid.clone());
            let secret =
                jsonwebtoken::EncodingKey::from_secret(a.jwk.to_string().as_bytes()).unwrap();
            jsonwebtoken::encode(&header, &good, &secret).unwrap()
        }),
        ("HS256 keyed with the modulus", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(a.kid.clone());
            let n = a.jwk["n"].as_str().unwrap();
            let secret = jsonwebtoken::EncodingKey::from_secret(n.as_bytes()).unwrap();
            jsonwebtoken::encode(&header, &good, &secret).unwrap()
        }),
        ("payload swapped under a valid signature", {
            let real = a.sign(&good);
            let parts: Vec<&str> = real.split('.').collect();
            let admin = with(good.clone(), "cognito:groups", json!(["admin"]));
            hand_made(json!({"alg": "RS256", "kid": a.kid}), &admin, parts[2])
        }),
    ];
    for (what, token) in &forgeries {
        for method in ["GET", "PUT"] {
            assert_eq!(
                call(&gw, method, token).await,
                (401, r#"{"message":"Unauthorized"}"#.into()),
                "{what} ({method})"
            );
        }
    }
}

#[tokio::test]
async fn a_rotation_is_picked_up_and_made_up_key_ids_cost_the_issuer_one_fetch() {
    let (a, b) = (
        IssuerKey::fixture("issuer-rsa-a"),
        IssuerKey::fixture("issuer-rsa-b"),
    );
    let stand_in = OidcStandIn::start(&[&a]);
    let mut settings = config(&stand_in);
    settings.min_refetch = Duration::from_millis(300);
    let issuer = Arc::new(OidcIssuer::new(settings).unwrap());
    issuer.refresh().await.unwrap();
    let own = SigningKey::generate();
    let mut v = verifier(&own, OidcIssuer::new(config(&stand_in)).unwrap());
    v.issuer = Some(issuer.clone());
    let gw = gateway(v);
    let good = stand_in.claims("player-1", AUDIENCE);
    assert_eq!(call(&gw, "GET", &a.sign(&good)).await.0, 200);
    let fetched = stand_in.jwks_fetches();

    // The issuer rotates to b. Within the refetch floor a token naming b is refused without a
    // fetch; after it, the first such token fetches the new set and passes.
    stand_in.publish(&[&b]);
    let rotated = b.sign(&with(good.clone(), "sub", json!("player-2")));
    assert_eq!(call(&gw, "GET", &rotated).await.0, 401);
    assert_eq!(stand_in.jwks_fetches(), fetched);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(call(&gw, "GET", &rotated).await.0, 200);
    assert_eq!(stand_in.jwks_fetches(), fetched + 1);
    // a's tokens stop working with the fetch that dropped a (a new token: the gateway caches
    // the answer for one it has seen, as API Gateway does).
    let after = a.sign(&with(good.clone(), "sub", json!("player-3")));
    assert_eq!(call(&gw, "GET", &after).await.0, 401);

    // 100 tokens with made-up kids, 20 at once: at most one fetch per refetch floor (300 ms
    // here, 30 s by default), not one per token.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = stand_in.jwks_fetches();
    let started = std::time::Instant::now();
    let calls = (0..100).map(|i| {
        let token = b.sign_as(&format!("made-up-{i}"), &good);
        let gw = &gw;
        async move { call(gw, "GET", &token).await.0 }
    });
    let answers: Vec<u16> = futures_util::stream::iter(calls)
        .buffer_unordered(20)
        .collect()
        .await;
    let floors = 1 + started.elapsed().as_millis() as usize / 300;
    assert!(answers.iter().all(|s| *s == 401), "{answers:?}");
    let extra = stand_in.jwks_fetches() - before;
    assert!(
        extra <= floors,
        "{extra} fetches for 100 unknown kids in {floors} refetch periods"
    );
    assert_eq!(issuer.key_count(), 1);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_not_trusted() {
    let a = IssuerKey::fixture("issuer-rsa-a");
    let stand_in = OidcStandIn::start(&[&a]);
    stand_in.name_issuer("https://accounts.example");
    let issuer = OidcIssuer::new(config(&stand_in)).unwrap();
    let e = issuer.refresh().await.unwrap_err();
    assert!(e.contains("names issuer"), "{e}");
    assert_eq!(issuer.key_count(), 0);
    let gw = gateway(verifier(&SigningKey::generate(), issuer));
    let token = a.sign(&stand_in.claims("player-1", AUDIENCE));
    assert_eq!(call(&gw, "GET", &token).await.0, 401);
}

#[tokio::test]
async fn our_own_tokens_work_while_the_issuer_is_down() {
    let own = SigningKey::generate();
    let port = cubewalk_testkit::free_port();
    let issuer = OidcIssuer::new(OidcConfig::new(
        format!("http://127.0.0.1:{port}"),
        AUDIENCE,
    ))
    .unwrap();
    assert!(issuer.refresh().await.is_err());
    let gw = gateway(verifier(&own, issuer));
    let t = sign(&own, &claims("alice", "editor"));
    for _ in 0..3 {
        assert_eq!(call(&gw, "PUT", &t).await.0, 200);
    }
}
