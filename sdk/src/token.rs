//! The token a client sends: replaceable at any time ([`crate::Client::set_token`]) without
//! re-creating the client, shared by its HTTP requests and its realtime connection, and
//! remembered per token whether it has worked, so a 401 can tell "this token was never
//! accepted" (`Unauthorized`) from "the token that worked has expired or was revoked: refresh
//! it" (`TokenRefused`).
//!
//! The token text never leaves this module except as the `token` header: [`Token`]'s `Debug`
//! prints no part of it, and [`Token::scrub`] removes it from text that came from elsewhere
//! (a server's error body) before that text becomes an error message.

use crate::error::{Error, Result};
use crate::options::MAX_TOKEN_LEN;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::HeaderValue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One token as sent, and what the SDK learnt about it.
pub(crate) struct Token {
    header: HeaderValue,
    /// The `exp` claim when the token is a JWT that carries one (unix seconds).
    expires_at: Option<u64>,
    /// Some request or connection with this token got through the authorizer.
    worked: AtomicBool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself, nor its length or prefix.
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .field("worked", &self.worked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Checks `text` (1 to [`MAX_TOKEN_LEN`] bytes a header can carry) and reads its expiry
    /// when it is a JWT.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        if text.is_empty() || text.len() > MAX_TOKEN_LEN {
            return Err(Error::InvalidArgument(format!(
                "token must be 1 to {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut header = HeaderValue::from_str(text).map_err(|_| {
            Error::InvalidArgument("token holds characters not allowed in an HTTP header".into())
        })?;
        // Keeps it out of reqwest's and hyper's own Debug output of requests.
        header.set_sensitive(true);
        Ok(Self {
            header,
            expires_at: jwt_expiry(text),
            worked: AtomicBool::new(false),
        })
    }

    /// The `token` header value.
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// The token's text (for the WebSocket handshake request).
    pub(crate) fn text(&self) -> &str {
        // Built from a &str in `parse`, so always visible ASCII.
        self.header.to_str().unwrap_or_default()
    }

    /// Records that the authorizer accepted this token.
    pub(crate) fn mark_worked(&self) {
        self.worked.store(true, Ordering::Relaxed);
    }

    /// Whether the token is a JWT whose `exp` has passed by this machine's clock.
    pub(crate) fn expired(&self) -> bool {
        self.expires_at.is_some_and(|exp| unix_now() >= exp)
    }

    /// Whether a 401 for this token means "refresh it" rather than "it was never right": it
    /// worked before, or it has expired.
    pub(crate) fn refused_after_use(&self) -> bool {
        self.worked.load(Ordering::Relaxed) || self.expired()
    }

    /// The error for a 401 answered to this token.
    pub(crate) fn unauthorized(&self, message: String) -> Error {
        if self.refused_after_use() {
            Error::TokenRefused(message)
        } else {
            Error::Unauthorized(message)
        }
    }

    /// `text` with every occurrence of the token replaced, for text that came from outside
    /// (a server's error body could echo the request's headers).
    pub(crate) fn scrub(&self, text: String) -> String {
        let token = self.text();
        if token.is_empty() || !text.contains(token) {
            return text;
        }
        text.replace(token, "[token]")
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `exp` claim of a JWT (`header.payload.signature`, base64url), when `text` is one. The
/// signature is not checked: the server does that; this only tells an expired token apart.
fn jwt_expiry(text: &str) -> Option<u64> {
    let mut parts = text.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let exp = claims.get("exp")?;
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// The token of a client and its realtime connection: read for every HTTP attempt and every
/// connect, replaced by [`Credentials::replace`]. Each attempt takes the token current when
/// it starts, so a replacement applies to the next attempt, retries of requests already
/// running included.
pub(crate) struct Credentials {
    current: RwLock<Arc<Token>>,
    /// Bumped on every replacement, so a realtime connection that stopped on a refused token
    /// knows to try again.
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("current", &*self.current())
            .finish()
    }
}

impl Credentials {
    /// Credentials holding `token`.
    pub(crate) fn new(token: Token) -> Self {
        Self {
            current: RwLock::new(Arc::new(token)),
            generation: watch::channel(0).0,
        }
    }

    /// The token to send now.
    pub(crate) fn current(&self) -> Arc<Token> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the token for every attempt and connect that starts from now on.
    pub(crate) fn replace(&self, token: Token) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(token);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether `token` is still the current token.
    pub(crate) fn is_current(&self, token: &Arc<Token>) -> bool {
        Arc::ptr_eq(&self.current(), token)
    }

    /// Notified on every replacement.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn reads_the_expiry_of_a_jwt_and_nothing_else() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"a"}"#)), None);
        assert_eq!(jwt_expiry("dev-token-0123456789"), None);
        assert_eq!(jwt_expiry("a.b.c"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
        let past = Token::parse(&jwt(r#"{"exp":1000}"#)).unwrap();
        assert!(past.expired() && past.refused_after_use());
        let future = Token::parse(&jwt(&format!(r#"{{"exp":{}}}"#, unix_now() + 600))).unwrap();
        assert!(!future.expired() && !future.refused_after_use());
        future.mark_worked();
        assert!(future.refused_after_use());
    }

    #[test]
    fn never_shows_the_token() {
        let secret = "sekret-token-value-42";
        let t = Token::parse(secret).unwrap();
        let c = Credentials::new(Token::parse(secret).unwrap());
        for text in [
            format!("{t:?}"),
            format!("{c:?}"),
            format!("{:?}", t.header()),
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(
            t.scrub(format!("the server saw token {secret}!")),
            "the server saw token [token]!"
        );
        assert!(matches!(
            Token::parse("a\nb"),
            Err(Error::InvalidArgument(m)) if !m.contains("a\nb")
        ));
    }

    #[test]
    fn replacing_notifies_and_changes_the_current_token() {
        let c = Credentials::new(Token::parse("first-token").unwrap());
        let mut rx = c.subscribe();
        let before = c.current();
        c.replace(Token::parse("second-token").unwrap());
        assert!(rx.has_changed().unwrap());
        assert!(!c.is_current(&before));
        assert_eq!(c.current().text(), "second-token");
        rx.mark_unchanged();
        assert!(!rx.has_changed().unwrap());
    }
}
