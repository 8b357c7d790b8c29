//! Guest login: a device secret (random, generated once and kept by the game) becomes a
//! player token through `POST /<stage>/cubewalklogin`, sent with the SDK's own HTTP client
//! (the same TLS roots, extra CA, timeouts, retries and redirect rule as every request).
//!
//! The same secret always logs in as the same guest player; each login answers a fresh token
//! valid for `expires_in` seconds. Log in again before it runs out (or when a request answers
//! [`crate::Status::TokenRefused`]) and hand the new token to [`crate::Client::set_token`].

use crate::endpoint::parse_endpoint;
use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::token::Token;
use crate::transport::Transport;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

/// Shortest device secret the server accepts, in characters (about 128 bits of base64url).
pub const MIN_DEVICE_SECRET_LEN: usize = 22;
/// Longest device secret the server accepts, in characters.
pub const MAX_DEVICE_SECRET_LEN: usize = 128;
/// Longest player id the server gives out, in bytes.
pub const MAX_PLAYER_LEN: usize = 128;

/// What a guest login answered.
#[derive(Clone, PartialEq, Eq)]
pub struct GuestSession {
    /// The player token (a JWT) to give [`crate::Client::new`] or
    /// [`crate::Client::set_token`].
    pub token: String,
    /// The guest's player id (`guest-...`), the same for every login with the same secret.
    pub player: String,
    /// The token's role (`editor` for guests).
    pub role: String,
    /// When the token expires, in seconds since the Unix epoch (by the server's clock).
    pub expires_at: u64,
    /// How long the token is valid from the answer, in seconds: schedule the next login with
    /// this (it does not depend on this machine's clock being right).
    pub expires_in: u64,
}

impl std::fmt::Debug for GuestSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never printed.
        f.debug_struct("GuestSession")
            .field("player", &self.player)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The login answer on the wire.
#[derive(Deserialize)]
struct Answer {
    token: String,
    player: String,
    role: String,
    expires_at: u64,
    expires_in: u64,
}

/// Whether `secret` is a device secret the server takes: 22 to 128 characters of
/// `A-Z a-z 0-9 _ -` (base64url without padding).
pub fn valid_device_secret(secret: &str) -> bool {
    (MIN_DEVICE_SECRET_LEN..=MAX_DEVICE_SECRET_LEN).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The login URL for `endpoint`: the `/cubewalkblocks` URL the client uses (its sibling
/// `cubewalklogin` under the same stage is taken), or the `/cubewalklogin` URL itself.
/// Checked like every endpoint (https, or http only to loopback unless allowed).
pub fn login_url(endpoint: &str, allow_insecure_http: bool) -> Result<Url> {
    let mut url = parse_endpoint(endpoint, allow_insecure_http)?;
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .unwrap_or_default();
    match last.as_str() {
        "cubewalklogin" => Ok(url),
        "cubewalkblocks" => {
            url.path_segments_mut()
                .map_err(|_| Error::InvalidArgument("endpoint has no path".into()))?
                .pop()
                .push("cubewalklogin");
            Ok(url)
        }
        _ => Err(Error::InvalidArgument(
            "login endpoint must end in /cubewalkblocks or /cubewalklogin (with its stage before it)"
                .into(),
        )),
    }
}

/// Logs in as the guest that `device_secret` stands for, with `options`' TLS, timeout and
/// retry settings. `endpoint` as [`login_url`] takes it. Transient failures (unreachable,
/// 502/503/504, 429 after its `Retry-After`) are retried within `options.timeout`: a login
/// stores nothing, so sending it twice is harmless. Errors never contain the secret.
pub async fn login_guest(
    endpoint: &str,
    device_secret: &str,
    options: &ClientOptions,
) -> Result<GuestSession> {
    let url = login_url(endpoint, options.allow_insecure_http)?;
    if !valid_device_secret(device_secret) {
        return Err(Error::InvalidArgument(format!(
            "device secret must be {MIN_DEVICE_SECRET_LEN} to {MAX_DEVICE_SECRET_LEN} characters of A-Z a-z 0-9 _ -"
        )));
    }
    options.validate()?;
    let transport = Transport::new(url, None, options)?;
    let body = serde_json::to_vec(&serde_json::json!({ "device_secret": device_secret }))
        .map_err(|e| Error::Internal(e.to_string()))?;
    let deadline = Instant::now() + options.timeout;
    let answer = transport
        .post_json(body, deadline)
        .await
        .map_err(|e| scrub_error(e, device_secret))?;
    let answer: Answer = serde_json::from_slice(&answer)
        .map_err(|e| Error::Protocol(format!("login answer is not valid: {e}")))?;
    // The token must be one the client can send.
    Token::parse(&answer.token)
        .map_err(|_| Error::Protocol("login answered a token the client cannot send".into()))?;
    if answer.player.is_empty() || answer.player.len() > MAX_PLAYER_LEN {
        return Err(Error::Protocol(format!(
            "login answered a player id outside 1 to {MAX_PLAYER_LEN} bytes"
        )));
    }
    Ok(GuestSession {
        token: answer.token,
        player: answer.player,
        role: answer.role,
        expires_at: answer.expires_at,
        expires_in: answer.expires_in,
    })
}

/// `e` with the secret removed from its message, should a server have echoed it.
fn scrub_error(e: Error, secret: &str) -> Error {
    let scrub = |m: String| m.replace(secret, "[device secret]");
    match e {
        Error::Unauthorized(m) => Error::Unauthorized(scrub(m)),
        Error::Forbidden(m) => Error::Forbidden(scrub(m)),
        Error::Banned(m) => Error::Banned(scrub(m)),
        Error::TokenRefused(m) => Error::TokenRefused(scrub(m)),
        Error::BadRequest { status, message } => Error::BadRequest {
            status,
            message: scrub(message),
        },
        Error::Server {
            status,
            message,
            attempts,
        } => Error::Server {
            status,
            message: scrub(message),
            attempts,
        },
        Error::RateLimited { message, attempts } => Error::RateLimited {
            message: scrub(message),
            attempts,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_url_is_the_blocks_urls_sibling() {
        let u = login_url("https://x.example/prod/cubewalkblocks", false).unwrap();
        assert_eq!(u.as_str(), "https://x.example/prod/cubewalklogin");
        let u = login_url("http://127.0.0.1:3000/dev/cubewalklogin", false).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:3000/dev/cubewalklogin");
        assert!(login_url("https://x.example/prod", false).is_err());
        assert!(login_url("http://example.com/prod/cubewalkblocks", false).is_err());
    }

    #[test]
    fn device_secrets() {
        assert!(valid_device_secret(&"a".repeat(22)));
        assert!(valid_device_secret(&"A-_9".repeat(32)));
        assert!(!valid_device_secret(&"a".repeat(21)));
        assert!(!valid_device_secret(&"a".repeat(129)));
        assert!(!valid_device_secret(&format!("{}+", "a".repeat(22))));
    }

    #[test]
    fn the_session_debug_hides_the_token() {
        let s = GuestSession {
            token: "eyJ.secret.sig".into(),
            player: "guest-1".into(),
            role: "editor".into(),
            expires_at: 1,
            expires_in: 2,
        };
        assert!(!format!("{s:?}").contains("secret"));
    }
}
