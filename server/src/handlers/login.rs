//! The guest login: `POST /cubewalklogin` with `{"device_secret":"..."}` (no `token` header;
//! the route has no authorizer) answers an editor player token for a player id derived from
//! the secret alone:
//!
//! ```json
//! {"token":"<jwt>","player":"guest-<32 hex>","role":"editor","expires_at":1700003600,"expires_in":3600}
//! ```
//!
//! Nothing is stored: the same secret always names the same player, and the id is a hash of
//! the secret, so it can be logged and shown without revealing the secret. A game generates the
//! secret once (at least 128 random bits) and keeps it; losing it loses the guest identity.

use crate::handlers::blocks::error_response;
use crate::identity::token::issue;
use crate::identity::{Claims, Role, SigningKey};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use cubewalk_protocol::limits::{DEVICE_SECRET_LEN, MAX_LOGIN_BODY_BYTES};
use cubewalk_protocol::WireError;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The resource path this handler serves.
pub const RESOURCE: &str = "/cubewalklogin";
pub use crate::identity::GUEST_PREFIX;
/// What a guest may do.
pub const GUEST_ROLE: Role = Role::Editor;
/// A guest token's lifetime unless configured otherwise, in seconds.
pub const DEFAULT_GUEST_TTL_SECS: u64 = 3600;
/// Shortest and longest configurable guest token lifetime, in seconds.
pub const GUEST_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;

/// Hashed in front of the secret, so a guest id is never the plain SHA-256 of anything a game
/// might also hash for another purpose.
const ID_DOMAIN: &[u8] = b"cubewalk guest id v1\0";
/// Hex characters of the hash kept in the id: 128 bits, beyond any chance of two devices
/// colliding.
const ID_HEX_LEN: usize = 32;

/// What the login handler signs with.
#[derive(Debug)]
pub struct LoginConfig {
    /// The Ed25519 key guest tokens are signed with; the authorizer must trust its public half.
    pub key: SigningKey,
    /// Lifetime of a guest token, in seconds (within [`GUEST_TTL_SECS`]).
    pub ttl_secs: u64,
}

impl LoginConfig {
    /// Guest tokens signed with `key`, valid for [`DEFAULT_GUEST_TTL_SECS`].
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            ttl_secs: DEFAULT_GUEST_TTL_SECS,
        }
    }
}

/// The request body.
#[derive(Deserialize)]
struct LoginRequest {
    device_secret: String,
}

/// The answer to a successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The player token, for the `token` header.
    pub token: String,
    /// The guest's player id.
    pub player: String,
    /// Always `editor`.
    pub role: Role,
    /// When the token expires, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Seconds from now until it expires.
    pub expires_in: u64,
}

/// The player id of the guest holding `device_secret`: `guest-` and 128 bits of its SHA-256 in
/// hex (letters and digits only, so a valid player id). One-way: the secret's 128 or more
/// random bits cannot be recovered from it.
pub fn guest_player_id(device_secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(ID_DOMAIN)
        .chain_update(device_secret.as_bytes())
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{GUEST_PREFIX}{}", &hex[..ID_HEX_LEN])
}

/// Whether `s` is a usable device secret: [`DEVICE_SECRET_LEN`] characters of
/// `A-Z a-z 0-9 _ -` (base64url, as a game's random bytes are usually encoded).
pub fn valid_device_secret(s: &str) -> bool {
    DEVICE_SECRET_LEN.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Handles one API Gateway proxy event. Never fails: every problem is a JSON error answer.
/// The secret is never logged; the player id is.
pub fn handle(req: &ApiGatewayProxyRequest, config: &LoginConfig) -> ApiGatewayProxyResponse {
    let request_id = req.request_context.request_id.as_deref().unwrap_or("");
    let result = login(req, config);
    match &result {
        Ok(ok) => tracing::info!(status = 200, request_id, player = %ok.player, "login"),
        Err(e) if e.status() >= 500 => {
            tracing::error!(status = e.status(), request_id, error = %e, "login")
        }
        Err(e) => tracing::info!(status = e.status(), request_id, error = %e, "login"),
    }
    let id = Some(request_id).filter(|id| !id.is_empty());
    match result
        .and_then(|ok| serde_json::to_string(&ok).map_err(|e| WireError::Internal(e.to_string())))
    {
        Ok(body) => {
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = 200;
            r.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static(super::blocks::ALLOW_ORIGIN),
            );
            // A token is a credential: no cache or proxy may keep it.
            r.headers
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.body = Some(Body::Text(body));
            r
        }
        Err(e) => {
            let mut r = error_response(&e, id);
            if matches!(e, WireError::MethodNotAllowed(_)) {
                // error_response names the blocks resource's methods; this one takes POST.
                r.headers.insert(ALLOW, HeaderValue::from_static("POST"));
            }
            r
        }
    }
}

fn login(req: &ApiGatewayProxyRequest, config: &LoginConfig) -> Result<LoginResponse, WireError> {
    let resource = req
        .resource
        .as_deref()
        .or(req.path.as_deref())
        .unwrap_or("");
    if resource.trim_end_matches('/') != RESOURCE {
        return Err(WireError::NotFound(resource.chars().take(128).collect()));
    }
    if req.http_method != Method::POST {
        return Err(WireError::MethodNotAllowed(req.http_method.to_string()));
    }
    let body = request_body(req)?;
    let request: LoginRequest = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            WireError::Invalid("the body must be {\"device_secret\":\"...\"}".into())
        } else {
            WireError::MalformedJson(e.to_string())
        }
    })?;
    if !valid_device_secret(&request.device_secret) {
        return Err(WireError::Invalid(format!(
            "device_secret must be {} to {} characters of A-Z a-z 0-9 _ -",
            DEVICE_SECRET_LEN.start(),
            DEVICE_SECRET_LEN.end()
        )));
    }
    let player = guest_player_id(&request.device_secret);
    let claims = Claims::new(&player, GUEST_ROLE, None, config.ttl_secs);
    let token = issue(&claims, &config.key).map_err(WireError::Internal)?;
    Ok(LoginResponse {
        token,
        player,
        role: GUEST_ROLE,
        expires_at: claims.exp,
        expires_in: claims.exp - claims.iat,
    })
}

/// The body as bytes, refused before decoding when over [`MAX_LOGIN_BODY_BYTES`].
fn request_body(req: &ApiGatewayProxyRequest) -> Result<Vec<u8>, WireError> {
    let text = req.body.as_deref().unwrap_or("");
    let too_large =
        || WireError::TooLarge(format!("body larger than {MAX_LOGIN_BODY_BYTES} bytes"));
    let bytes = if req.is_base64_encoded {
        if text.len() > MAX_LOGIN_BODY_BYTES.div_ceil(3) * 4 {
            return Err(too_large());
        }
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| WireError::MalformedJson("body is not valid base64".into()))?
    } else {
        text.as_bytes().to_vec()
    };
    if bytes.len() > MAX_LOGIN_BODY_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{valid_player_id, PublicKeys, Verifier};

    fn event(method: Method, body: Option<&str>) -> ApiGatewayProxyRequest {
        let mut e = ApiGatewayProxyRequest::default();
        e.resource = Some(RESOURCE.into());
        e.path = Some(RESOURCE.into());
        e.http_method = method;
        e.body = body.map(str::to_owned);
        e.request_context.request_id = Some("req-1".into());
        e
    }

    fn answer(r: &ApiGatewayProxyResponse) -> (i64, serde_json::Value) {
        let Some(Body::Text(t)) = &r.body else {
            panic!("no text body")
        };
        (r.status_code, serde_json::from_str(t).unwrap())
    }

    #[test]
    fn a_secret_logs_in_as_its_own_stable_guest() {
        let config = LoginConfig::new(SigningKey::generate());
        let mut keys = PublicKeys::new();
        keys.add_signing_key(&config.key);
        let verifier = Verifier {
            keys,
            ..Verifier::default()
        };
        let secret = "AAAAAAAAAAAAAAAAAAAAA_-z";
        let r = handle(
            &event(
                Method::POST,
                Some(&format!(r#"{{"device_secret":"{secret}"}}"#)),
            ),
            &config,
        );
        assert_eq!(r.headers["cache-control"], "no-store");
        let (status, body) = answer(&r);
        assert_eq!(status, 200, "{body}");
        let ok: LoginResponse = serde_json::from_value(body).unwrap();
        assert_eq!(ok.player, guest_player_id(secret));
        assert!(ok.player.starts_with("guest-") && valid_player_id(&ok.player));
        assert_eq!(ok.player.len(), GUEST_PREFIX.len() + 32);
        assert!(!ok.player.contains(secret));
        assert_eq!((ok.role, ok.expires_in), (Role::Editor, 3600));
        assert!(
            ok.expires_at
                .abs_diff(jsonwebtoken::get_current_timestamp() + 3600)
                <= 2
        );
        let p = verifier.verify(&ok.token).unwrap();
        assert_eq!((p.id, p.role), (ok.player.clone(), Role::Editor));
        // Another secret is another player; the same secret the same one.
        assert_ne!(guest_player_id(&format!("{secret}x")), ok.player);
        assert_eq!(guest_player_id(secret), ok.player);
    }

    #[test]
    fn bad_requests_answer_the_standard_error_body() {
        let config = LoginConfig::new(SigningKey::generate());
        let cases: Vec<(ApiGatewayProxyRequest, i64, &str)> = vec![
            (event(Method::POST, Some("{")), 400, "malformed_json"),
            (event(Method::POST, None), 400, "malformed_json"),
            (event(Method::POST, Some("[]")), 422, "invalid_request"),
            (
                event(Method::POST, Some(r#"{"device_secret":5}"#)),
                422,
                "invalid_request",
            ),
            (
                event(Method::POST, Some(r#"{"other":"x"}"#)),
                422,
                "invalid_request",
            ),
            (
                event(Method::POST, Some(r#"{"device_secret":"tooshort"}"#)),
                422,
                "invalid_request",
            ),
            (
                event(
                    Method::POST,
                    Some(&format!(r#"{{"device_secret":"{}"}}"#, "a".repeat(129))),
                ),
                422,
                "invalid_request",
            ),
            (
                event(
                    Method::POST,
                    Some(r#"{"device_secret":"AAAAAAAAAAAAAAAAAAAAAAAA+"}"#),
                ),
                422,
                "invalid_request",
            ),
            (
                event(Method::POST, Some(&"x".repeat(MAX_LOGIN_BODY_BYTES + 1))),
                413,
                "too_large",
            ),
            (event(Method::GET, None), 405, "method_not_allowed"),
        ];
        for (e, status, code) in cases {
            let r = handle(&e, &config);
            let (got, body) = answer(&r);
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{body}"
            );
            assert_eq!(body["error"]["request_id"], "req-1");
            assert_eq!(r.headers["content-type"], "application/json");
            if status == 405 {
                assert_eq!(r.headers["allow"], "POST");
            }
        }
        let mut b64 = event(Method::POST, None);
        b64.body = Some(
            base64::engine::general_purpose::STANDARD
                .encode(br#"{"device_secret":"BBBBBBBBBBBBBBBBBBBBBBBB"}"#),
        );
        b64.is_base64_encoded = true;
        assert_eq!(answer(&handle(&b64, &config)).0, 200);
    }

    #[test]
    fn secrets_are_checked_for_length_and_alphabet() {
        assert!(valid_device_secret(&"a".repeat(22)));
        assert!(valid_device_secret(&"Z9_-".repeat(32)));
        assert!(!valid_device_secret(&"a".repeat(21)));
        assert!(!valid_device_secret(&"a".repeat(129)));
        assert!(!valid_device_secret(&format!("{}é", "a".repeat(22))));
        assert!(!valid_device_secret(&format!("{} ", "a".repeat(22))));
    }
}
