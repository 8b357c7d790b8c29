//! A stand-in OpenID Connect issuer (what Cognito, Auth0 or Firebase serve): a discovery
//! document at `/.well-known/openid-configuration` naming its `jwks_uri`, and a key set that a
//! test can change (rotation) while it runs; it counts the key-set fetches. Its signing keys
//! are the RSA fixtures in `testkit/fixtures` (RS256, as those issuers sign).

use axum::routing::get;
use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One of the fixture RSA keys: its kid, its public JWK and a signer.
#[derive(Clone)]
pub struct IssuerKey {
    /// The key id (the fixture's name).
    pub kid: String,
    /// The public key as a JWK.
    pub jwk: Value,
    pem: Vec<u8>,
}

impl IssuerKey {
    /// The fixture `name` (`issuer-rsa-a`, `issuer-rsa-b`: 2048 bits; `issuer-rsa-weak`: 1024).
    pub fn fixture(name: &str) -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let read = |ext: &str| {
            std::fs::read(format!("{dir}/{name}.{ext}"))
                .unwrap_or_else(|e| panic!("fixture {name}.{ext}: {e}"))
        };
        let jwk: Value = serde_json::from_slice(&read("jwk.json")).expect("fixture JWK");
        Self {
            kid: jwk["kid"].as_str().expect("fixture kid").to_owned(),
            jwk,
            pem: read("pem"),
        }
    }

    /// `claims` signed RS256 under this key's kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// `claims` signed RS256 with this key, naming `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = EncodingKey::from_rsa_pem(&self.pem).expect("fixture PEM");
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }
}

/// A running stand-in issuer; stopped when dropped.
pub struct OidcStandIn {
    /// Its issuer URL (`http://127.0.0.1:<port>`), as its tokens' `iss`.
    pub issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    named_issuer: Arc<Mutex<Option<String>>>,
    jwks_fetches: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OidcStandIn {
    /// Starts serving `keys`.
    pub fn start(keys: &[&IssuerKey]) -> Self {
        let published = Arc::new(Mutex::new(Vec::new()));
        let named_issuer: Arc<Mutex<Option<String>>> = Arc::default();
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let (set, named, fetches) = (
            published.clone(),
            named_issuer.clone(),
            jwks_fetches.clone(),
        );
        let (addr, stop, thread) = crate::serve_on_thread(move |listener, stop_rx| async move {
            let base = format!("http://{}", listener.local_addr().expect("bound"));
            let discovery = {
                let base = base.clone();
                move || {
                    let named = named.lock().unwrap().clone();
                    let document = json!({
                        "issuer": named.unwrap_or_else(|| base.clone()),
                        "jwks_uri": format!("{base}/keys"),
                        "id_token_signing_alg_values_supported": ["RS256"],
                    });
                    async move { axum::Json(document) }
                }
            };
            let jwks = move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let keys = set.lock().unwrap().clone();
                async move { axum::Json(json!({ "keys": keys })) }
            };
            let app = Router::new()
                .route("/.well-known/openid-configuration", get(discovery))
                .route("/keys", get(jwks));
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("serve");
        });
        let issuer = Self {
            issuer: format!("http://{addr}"),
            keys: published,
            named_issuer,
            jwks_fetches,
            stop: Some(stop),
            thread: Some(thread),
        };
        issuer.publish(keys);
        issuer
    }

    /// Publishes `keys` from now on (a rotation).
    pub fn publish(&self, keys: &[&IssuerKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Makes the discovery document name another issuer (a misconfigured or hostile one).
    pub fn name_issuer(&self, issuer: &str) {
        *self.named_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Valid claims of this issuer for `sub` and `audience`, for an hour.
    pub fn claims(&self, sub: &str, audience: &str) -> Value {
        let now = crate::tokens::now();
        json!({"iss": self.issuer, "aud": audience, "sub": sub, "iat": now, "exp": now + 3600})
    }
}

impl Drop for OidcStandIn {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
