//! Player tokens for tests: a signing key's tokens with any claims, and the classic forgeries
//! (each must be refused with 401 wherever a token is checked).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cubewalk_server::identity::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Valid claims for `player` with `role`, for an hour.
pub fn claims(player: &str, role: &str) -> Value {
    json!({"sub": player, "role": role, "aud": "cubewalk", "iat": now(), "exp": now() + 3600})
}

/// `claims` signed by `key` (EdDSA, its kid).
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    sign_as(key, key.kid(), claims)
}

/// `claims` signed by `key` but naming `kid`.
pub fn sign_as(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let encoding = EncodingKey::from_ed_pem(key.to_pem().as_bytes()).expect("our PEM");
    jsonwebtoken::encode(&header, claims, &encoding).expect("sign")
}

/// A P-256 key for ES256 tokens: its JWK (with `kid`) and a signer.
pub struct Es256Key {
    secret: p256::SecretKey,
    /// The key id.
    pub kid: String,
}

impl Es256Key {
    /// A fresh random key named `kid`.
    pub fn generate(kid: &str) -> Self {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                return Self {
                    secret,
                    kid: kid.to_owned(),
                };
            }
        }
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        use p256::elliptic_curve::sec1::ToSec1Point;
        let point = self.secret.public_key().to_sec1_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        })
    }

    /// `claims` signed ES256 with this key, naming `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        use p256::pkcs8::EncodePrivateKey;
        let pem = self
            .secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("encode");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).expect("our PEM");
        jsonwebtoken::encode(&header, claims, &encoding).expect("sign")
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Tokens that must be refused (401) by a verifier that trusts `trusted` only: each with what
/// it tries. `claims` are otherwise valid editor claims.
pub fn forgeries(trusted: &SigningKey) -> Vec<(&'static str, String)> {
    let kid = trusted.kid();
    let good = claims("mallory", "admin");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let attacker = SigningKey::generate();
    let hs256 = |secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(secret).unwrap()).unwrap()
    };
    let jwk = trusted.public_jwk();
    let raw_public = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let valid = sign(trusted, &good);
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let es = Es256Key::generate(kid);
    vec![
        (
            "signed with another key under our kid",
            sign_as(&attacker, kid, &good),
        ),
        (
            "alg none, no signature",
            format!("{}.{}.", b64(&none_header), b64(&good)),
        ),
        (
            "alg none with the real signature kept",
            format!(
                "{}.{}.{}",
                b64(&none_header),
                b64(&good),
                valid.rsplit('.').next().unwrap()
            ),
        ),
        ("HS256 keyed with the raw public key", hs256(&raw_public)),
        (
            "HS256 keyed with the public JWK text",
            hs256(jwk.to_string().as_bytes()),
        ),
        (
            "HS256 keyed with the public key PEM-ish x",
            hs256(jwk["x"].as_str().unwrap().as_bytes()),
        ),
        ("ES256 under the Ed25519 key's kid", es.sign_as(kid, &good)),
        (
            "expired two minutes ago",
            sign(trusted, &with("exp", json!(now() - 120))),
        ),
        (
            "not valid for five minutes",
            sign(trusted, &with("nbf", json!(now() + 300))),
        ),
        (
            "wrong audience",
            sign(trusted, &with("aud", json!("someone-else"))),
        ),
        (
            "audience list without cubewalk",
            sign(trusted, &with("aud", json!(["a", "b"]))),
        ),
        ("no expiry", sign(trusted, &without("exp"))),
        ("no subject", sign(trusted, &without("sub"))),
        ("no role", sign(trusted, &without("role"))),
        ("unknown role", sign(trusted, &with("role", json!("root")))),
        (
            "player id with spaces",
            sign(trusted, &with("sub", json!("a b"))),
        ),
        (
            "bad world id in worlds",
            sign(trusted, &with("worlds", json!(["ok", "not ok"]))),
        ),
        ("kid naming no key", sign_as(trusted, "no-such-kid", &good)),
        ("no kid", {
            let header = Header::new(Algorithm::EdDSA);
            let encoding = EncodingKey::from_ed_pem(trusted.to_pem().as_bytes()).unwrap();
            jsonwebtoken::encode(&header, &good, &encoding).unwrap()
        }),
        ("payload swapped under a valid signature", {
            let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
            parts[1] = b64(&with("sub", json!("victim")));
            parts.join(".")
        }),
        ("truncated signature", valid[..valid.len() - 10].to_owned()),
        (
            "truncated to two parts",
            valid.rsplit_once('.').unwrap().0.to_owned(),
        ),
        (
            "64 KB long",
            sign(trusted, &with("pad", json!("x".repeat(64 * 1024)))),
        ),
        ("garbage with two dots", "aaaa.bbbb.cccc".to_owned()),
    ]
}
