//! An external OpenID Connect issuer (Cognito, Auth0, Firebase, a studio's own login) whose
//! tokens are accepted as they are: the issuer's keys come from its discovery document
//! (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`), fetched at start, again
//! after [`REFRESH_EVERY`], and again when a token names a `kid` the held keys lack (the
//! issuer rotated), but never more often than once per [`MIN_REFETCH`]: a stream of tokens
//! with made-up `kid`s costs the issuer one request per 30 s per instance, not one each.
//!
//! Such a token must carry the configured `iss` and `aud`, `exp` (with [`super::LEEWAY_SECS`] of
//! skew) and a player id in the configured claim (`sub` by default). Its role is
//! [`OidcConfig::default_role`] unless a role claim is configured and names a role (a string,
//! or a list such as Cognito's `cognito:groups`, the highest named role winning); no other
//! claim of the issuer's gives it more.

use super::keys::PublicKeys;
use super::token::{validation_for, TokenError};
use super::{valid_player_id, Player, Role, Worlds, GUEST_PREFIX};
use crate::https::HttpsClient;
use cubewalk_protocol::WorldId;
use jsonwebtoken::Header;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Keys older than this are fetched again before the next token is checked.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// The shortest time between two fetches of the issuer's keys.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Longest wait for the issuer's answers.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Which issuer to trust and how to read its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL, exactly as its tokens' `iss` claim and its discovery document spell it.
    pub issuer: String,
    /// The audience its tokens must name (`aud`): a Cognito app client id, a Firebase project
    /// id, an Auth0 API identifier.
    pub audience: String,
    /// The claim holding the player id.
    pub player_claim: String,
    /// A claim naming the role (`viewer`, `editor`, `admin`), if the issuer assigns roles.
    pub role_claim: Option<String>,
    /// The role of a token whose role claim names none (or when none is configured).
    pub default_role: Role,
    /// The key set's URL, when the issuer publishes no discovery document.
    pub jwks_url: Option<String>,
    /// The shortest time between two fetches of the keys ([`MIN_REFETCH`]; tests shorten it).
    pub min_refetch: Duration,
}

impl OidcConfig {
    /// Trusts `issuer` for `audience`: player id in `sub`, every player an editor.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            player_claim: "sub".into(),
            role_claim: None,
            default_role: Role::Editor,
            jwks_url: None,
            min_refetch: MIN_REFETCH,
        }
    }

    /// The environment variables [`OidcConfig::from_env`] reads (the template sets them).
    pub const ENV_VARS: [&'static str; 6] = [
        "CUBEWALK_OIDC_ISSUER",
        "CUBEWALK_OIDC_AUDIENCE",
        "CUBEWALK_OIDC_PLAYER_CLAIM",
        "CUBEWALK_OIDC_ROLE_CLAIM",
        "CUBEWALK_OIDC_ROLE",
        "CUBEWALK_OIDC_JWKS_URL",
    ];

    /// Reads `CUBEWALK_OIDC_ISSUER` (none: `Ok(None)`), `CUBEWALK_OIDC_AUDIENCE` (required
    /// with it), `CUBEWALK_OIDC_PLAYER_CLAIM`, `CUBEWALK_OIDC_ROLE_CLAIM`, `CUBEWALK_OIDC_ROLE`
    /// and `CUBEWALK_OIDC_JWKS_URL`.
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let [issuer_var, audience_var, player_var, role_claim_var, role_var, jwks_var] =
            Self::ENV_VARS;
        let Some(issuer) = var(issuer_var) else {
            return Ok(None);
        };
        let audience = var(audience_var)
            .ok_or_else(|| format!("{audience_var} is required with {issuer_var}"))?;
        let mut config = Self::new(issuer, audience);
        if let Some(claim) = var(player_var) {
            config.player_claim = claim;
        }
        config.role_claim = var(role_claim_var);
        if let Some(role) = var(role_var) {
            config.default_role = Role::parse(&role)
                .ok_or_else(|| format!("{role_var} must be viewer, editor or admin"))?;
        }
        config.jwks_url = var(jwks_var);
        config.check()?;
        Ok(Some(config))
    }

    /// Refuses settings that would trust keys fetched in clear or accept any audience.
    pub fn check(&self) -> Result<(), String> {
        fetchable(&self.issuer).map_err(|e| format!("issuer: {e}"))?;
        if let Some(url) = &self.jwks_url {
            fetchable(url).map_err(|e| format!("JWKS URL: {e}"))?;
        }
        if self.audience.is_empty() {
            return Err("the audience must not be empty".into());
        }
        if self.player_claim.is_empty() {
            return Err("the player claim must not be empty".into());
        }
        Ok(())
    }

    /// Where the discovery document is.
    fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// `https://`, or `http://` to this machine only (a local stand-in): keys fetched in clear
/// from the network could be anyone's.
fn fetchable(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("'{url}' is not a URL"))?;
    let host = uri.host().ok_or_else(|| format!("'{url}' has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") => Ok(()),
        _ => Err(format!("'{url}' must be https (http only to this machine)")),
    }
}

/// The keys held and when they were fetched.
#[derive(Default)]
struct Held {
    keys: PublicKeys,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

/// A trusted external issuer and the keys fetched from it.
pub struct OidcIssuer {
    config: OidcConfig,
    http: HttpsClient,
    held: RwLock<Held>,
    /// One fetch at a time; the others wait for it and use its keys.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OidcIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        write!(f, "OidcIssuer({}, {:?})", self.config.issuer, held.keys)
    }
}

impl OidcIssuer {
    /// An issuer holding no keys yet: the first token checked fetches them (or call
    /// [`OidcIssuer::refresh`] at start).
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        config.check()?;
        Ok(Self {
            config,
            http: HttpsClient::new(FETCH_TIMEOUT)?,
            held: RwLock::new(Held::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// How many keys are held.
    pub fn key_count(&self) -> usize {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }

    /// Fetches the discovery document and the key set now, replacing the held keys; on
    /// failure the held keys stay. Returns how many keys are held.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        self.fetch().await
    }

    /// Fetches again when the keys are older than [`REFRESH_EVERY`] or `kid` is one they lack,
    /// unless the last fetch was less than [`OidcConfig::min_refetch`] ago.
    pub(crate) async fn refresh_if_needed(&self, kid: &str) {
        if !self.wants_fetch(kid) {
            return;
        }
        let _one = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if !self.wants_fetch(kid) {
            return;
        }
        if let Err(e) = self.fetch().await {
            tracing::warn!(issuer = %self.config.issuer, error = %e, "issuer keys not refreshed");
        }
    }

    fn wants_fetch(&self, kid: &str) -> bool {
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        if held
            .attempted
            .is_some_and(|t| t.elapsed() < self.config.min_refetch)
        {
            return false;
        }
        let stale = held.fetched.is_none_or(|t| t.elapsed() >= REFRESH_EVERY);
        stale || held.keys.get(kid).is_none()
    }

    async fn fetch(&self) -> Result<usize, String> {
        {
            let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
            held.attempted = Some(Instant::now());
        }
        let jwks_url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => self.discover().await?,
        };
        let keys = PublicKeys::from_issuer_jwks(&self.get_json(&jwks_url).await?)?;
        let count = keys.len();
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        held.keys = keys;
        held.fetched = Some(Instant::now());
        tracing::info!(issuer = %self.config.issuer, keys = count, "issuer keys fetched");
        Ok(count)
    }

    /// The `jwks_uri` of the discovery document, whose `issuer` must be the configured one
    /// (OpenID Connect Discovery 1.0, section 4.3).
    async fn discover(&self) -> Result<String, String> {
        let document: serde_json::Value =
            serde_json::from_str(&self.get_json(&self.config.discovery_url()).await?)
                .map_err(|_| "the discovery document is not JSON".to_string())?;
        let issuer = document.get("issuer").and_then(|v| v.as_str());
        if issuer != Some(self.config.issuer.as_str()) {
            return Err(format!(
                "the discovery document names issuer {issuer:?}, not {}",
                self.config.issuer
            ));
        }
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or("the discovery document has no jwks_uri")?;
        fetchable(jwks_uri)?;
        Ok(jwks_uri.to_owned())
    }

    async fn get_json(&self, url: &str) -> Result<String, String> {
        let answer = self.http.get(url, MAX_DOCUMENT_BYTES).await?;
        if answer.status != 200 {
            return Err(format!("{url} answered {}", answer.status));
        }
        String::from_utf8(answer.body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
    }

    /// Verifies a token whose header names a key of this issuer's (`UnknownKey` otherwise).
    pub(crate) fn verify(&self, token: &str, header: &Header) -> Result<Player, TokenError> {
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        let (algorithm, key) = held.keys.get(kid).ok_or(TokenError::UnknownKey)?;
        let config = &self.config;
        let mut validation = validation_for(header, algorithm)?;
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            key,
            &validation,
        )
        .map_err(|e| TokenError::Invalid(e.to_string()))?
        .claims;
        let id = claims
            .get(&config.player_claim)
            .and_then(|v| v.as_str())
            .ok_or(TokenError::BadClaims(
                "no player id in the configured claim",
            ))?;
        if !valid_player_id(id) {
            return Err(TokenError::BadClaims("the player claim is not a usable id"));
        }
        // Guest ids are the guest login's: another issuer must not be able to name one.
        if id.starts_with(GUEST_PREFIX) {
            return Err(TokenError::BadClaims("the player claim is a guest id"));
        }
        let named = |v: &serde_json::Value| v.as_str().and_then(Role::parse);
        let role = config
            .role_claim
            .as_ref()
            .and_then(|claim| claims.get(claim))
            .and_then(|v| match v {
                serde_json::Value::Array(list) => list.iter().filter_map(named).max(),
                other => named(other),
            })
            .unwrap_or(config.default_role);
        let worlds = match claims.get("worlds") {
            None => Worlds::All,
            Some(serde_json::Value::Array(list)) => Worlds::Only(
                list.iter()
                    .map(|w| w.as_str().and_then(|w| WorldId::new(w).ok()))
                    .collect::<Option<_>>()
                    .ok_or(TokenError::BadClaims("worlds holds a bad world id"))?,
            ),
            Some(_) => return Err(TokenError::BadClaims("worlds is not a list")),
        };
        Ok(Player {
            id: id.to_owned(),
            role,
            worlds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fetched_over_https_or_from_this_machine_only() {
        assert!(OidcConfig::new(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab",
            "a"
        )
        .check()
        .is_ok());
        assert!(OidcConfig::new("http://127.0.0.1:9000", "a")
            .check()
            .is_ok());
        assert!(OidcConfig::new("http://issuer.example", "a")
            .check()
            .is_err());
        assert!(OidcConfig::new("ftp://issuer.example", "a")
            .check()
            .is_err());
        assert!(OidcConfig::new("https://issuer.example", "")
            .check()
            .is_err());
        let mut c = OidcConfig::new("https://issuer.example", "a");
        c.jwks_url = Some("http://10.0.0.1/jwks".into());
        assert!(c.check().is_err());
        assert_eq!(
            OidcConfig::new("https://issuer.example/", "a").discovery_url(),
            "https://issuer.example/.well-known/openid-configuration"
        );
    }
}
