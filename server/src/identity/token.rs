//! Player tokens: issuing (with a [`SigningKey`]) and verifying (with [`PublicKeys`], plus the
//! development [`TokenSet`]).
//!
//! Verification takes the algorithm from the key the `kid` names, never from the token: the
//! token's `alg` must equal it, so `none`, HMAC and any algorithm the key was not made for
//! are refused. `aud` must be `cubewalk`; `exp`, `iat` and `sub` are required; `exp` and
//! `nbf` are checked with [`LEEWAY_SECS`] of skew. A `kid` none of our keys has goes to the
//! external issuer, if one is trusted ([`super::oidc`]), with that issuer's rules.

use super::keys::{PublicKeys, SigningKey};
use super::oidc::OidcIssuer;
use super::static_tokens::TokenSet;
use super::{valid_player_id, Player, Role, Worlds, AUDIENCE, LEEWAY_SECS, MAX_TOKEN_LEN};
use cubewalk_protocol::WorldId;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The claims of a player token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The player id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// What the token allows.
    pub role: Role,
    /// The worlds it may touch; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worlds: Option<Vec<WorldId>>,
}

impl Claims {
    /// Claims for `player` with `role`, valid from now for `ttl_secs`.
    pub fn new(player: &str, role: Role, worlds: Option<Vec<WorldId>>, ttl_secs: u64) -> Self {
        let now = jsonwebtoken::get_current_timestamp();
        Self {
            sub: player.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            aud: AUDIENCE.to_owned(),
            role,
            worlds,
        }
    }
}

/// Signs `claims` with `key` (`EdDSA`, the key's `kid` in the header).
pub fn issue(claims: &Claims, key: &SigningKey) -> Result<String, String> {
    if !valid_player_id(&claims.sub) {
        return Err(format!(
            "player id must be 1 to {} characters of letters, digits and ._:@|+-",
            super::MAX_PLAYER_ID_LEN
        ));
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).map_err(|e| e.to_string())
}

/// Why a token was refused. Every variant answers 401; the reason is for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// Not a JWT, or a header that cannot be read.
    #[error("not a JWT")]
    Malformed,
    /// The header names no key, or a key we do not hold.
    #[error("unknown key id")]
    UnknownKey,
    /// Signature, algorithm, audience or time checks failed.
    #[error("token refused: {0}")]
    Invalid(String),
    /// The claims verified but name no usable player, role or worlds.
    #[error("bad claims: {0}")]
    BadClaims(&'static str),
}

/// What the authorizer accepts: player tokens signed by one of `keys`, tokens of the trusted
/// external issuer, and the development static tokens.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    /// Public keys for player tokens.
    pub keys: PublicKeys,
    /// Fixed development tokens.
    pub static_tokens: TokenSet,
    /// An external OpenID Connect issuer whose tokens are accepted too.
    pub issuer: Option<Arc<OidcIssuer>>,
}

/// The claims read from a verified token; `role` and `worlds` are checked after the signature.
#[derive(Deserialize)]
struct Verified {
    sub: String,
    role: String,
    #[serde(default)]
    worlds: Option<Vec<String>>,
}

impl From<TokenSet> for Verifier {
    fn from(static_tokens: TokenSet) -> Self {
        Self {
            static_tokens,
            ..Self::default()
        }
    }
}

impl Verifier {
    /// Whether nothing at all would be accepted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.static_tokens.is_empty() && self.issuer.is_none()
    }

    /// As [`Verifier::verify`], first fetching the external issuer's keys again when they are
    /// old or the token names a `kid` they lack (at most once per
    /// [`super::oidc::MIN_REFETCH`]).
    pub async fn verify_fresh(&self, token: &str) -> Result<Player, TokenError> {
        if let Some(issuer) = &self.issuer {
            // Only a JWT naming a kid none of our keys has can be the issuer's: only such a
            // token waits for a fetch, so our own tokens never wait on an issuer that is down.
            let kid = (token.len() <= MAX_TOKEN_LEN)
                .then(|| jsonwebtoken::decode_header(token).ok())
                .flatten()
                .and_then(|h| h.kid)
                .filter(|kid| self.keys.get(kid).is_none());
            if let Some(kid) = kid {
                issuer.refresh_if_needed(&kid).await;
            }
        }
        self.verify(token)
    }

    /// The player `token` stands for, with the keys held now.
    pub fn verify(&self, token: &str) -> Result<Player, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        // A JWT has two dots; a static token (whose alphabet allows dots too) is tried only
        // when the token is not one, so a JWT never falls back to the static list.
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return self
                .static_tokens
                .player(token)
                .ok_or(TokenError::Invalid("not an accepted token".into()));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let Some((algorithm, key)) = self.keys.get(kid) else {
            return match &self.issuer {
                Some(issuer) => issuer.verify(token, &header),
                None => Err(TokenError::UnknownKey),
            };
        };
        let mut validation = validation_for(&header, algorithm)?;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Verified>(token, key, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if !valid_player_id(&claims.sub) {
            return Err(TokenError::BadClaims("sub is not a usable player id"));
        }
        let role = Role::parse(&claims.role).ok_or(TokenError::BadClaims("unknown role"))?;
        let worlds = match claims.worlds {
            None => Worlds::All,
            Some(list) => Worlds::Only(
                list.iter()
                    .map(|w| WorldId::new(w))
                    .collect::<Result<_, _>>()
                    .map_err(|_| TokenError::BadClaims("worlds holds a bad world id"))?,
            ),
        };
        Ok(Player {
            id: claims.sub,
            role,
            worlds,
        })
    }
}

/// The checks every token gets, ours or an issuer's: its `alg` must be the one of the key its
/// `kid` names (so `none`, HMAC with a public key and any other algorithm are refused), and
/// `exp` and `nbf` hold with [`LEEWAY_SECS`] of skew. The caller adds audience and claims.
pub(super) fn validation_for(
    header: &Header,
    algorithm: Algorithm,
) -> Result<Validation, TokenError> {
    if header.alg != algorithm {
        return Err(TokenError::Invalid(format!(
            "alg {:?} for a {algorithm:?} key",
            header.alg
        )));
    }
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    Ok(validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(key: &SigningKey) -> Verifier {
        let mut keys = PublicKeys::new();
        keys.add_signing_key(key);
        Verifier {
            keys,
            static_tokens: TokenSet::from_list("dev-token-1:tester:viewer"),
            issuer: None,
        }
    }

    #[test]
    fn issued_tokens_verify_to_their_player() {
        let key = SigningKey::generate();
        let v = verifier(&key);
        let worlds = vec![WorldId::new("w1").unwrap()];
        let token = issue(
            &Claims::new("alice", Role::Editor, Some(worlds.clone()), 60),
            &key,
        )
        .unwrap();
        let p = v.verify(&token).unwrap();
        assert_eq!(p.id, "alice");
        assert_eq!(p.role, Role::Editor);
        assert_eq!(p.worlds, Worlds::Only(worlds));
        let p = v.verify("dev-token-1").unwrap();
        assert_eq!((p.id.as_str(), p.role), ("tester", Role::Viewer));
        assert!(issue(&Claims::new("bad id", Role::Editor, None, 60), &key).is_err());
    }

    #[test]
    fn expiry_has_thirty_seconds_of_leeway() {
        let key = SigningKey::generate();
        let v = verifier(&key);
        let at = |exp_offset: i64| {
            let mut c = Claims::new("alice", Role::Editor, None, 0);
            c.exp = (c.iat as i64 + exp_offset) as u64;
            issue(&c, &key).unwrap()
        };
        assert!(v.verify(&at(-20)).is_ok());
        assert!(matches!(v.verify(&at(-40)), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn another_key_or_a_long_token_is_refused() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let v = verifier(&key);
        let token = issue(&Claims::new("alice", Role::Admin, None, 60), &other).unwrap();
        assert_eq!(v.verify(&token), Err(TokenError::UnknownKey));
        assert_eq!(v.verify(&"a.b.c".repeat(2000)), Err(TokenError::TooLong));
        assert!(v.verify("x.y.z").is_err());
        assert!(v.verify("").is_err());
    }
}
