//! Who a caller is and what they may do: player tokens (JWTs signed with Ed25519 or ES256),
//! the development static tokens, roles and worlds. The authorizer, the handlers, the local
//! gateway and the CLI all use this one module.
//!
//! - [`keys`]: signing keys (the development key file) and the public keys tokens are
//!   verified with (a JWKS, chosen by `kid`).
//! - [`token`]: issuing and verifying player tokens.
//! - [`oidc`]: an external OpenID Connect issuer whose tokens are accepted as they are.
//! - [`static_tokens`]: the seed's fixed tokens, for development only, each mapped to a fixed
//!   player and role.
//! - [`Player`]: a verified identity, carried from the authorizer to the handlers as the
//!   authorizer's flat context ([`Player::to_context`], [`Player::from_context`]).

pub mod keys;
pub mod oidc;
pub mod static_tokens;
pub mod token;

use cubewalk_protocol::{WireError, WorldId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub use keys::{PublicKeys, SigningKey};
pub use oidc::{OidcConfig, OidcIssuer};
pub use static_tokens::TokenSet;
pub use token::{Claims, TokenError, Verifier};

/// The audience (`aud`) every player token must name.
pub const AUDIENCE: &str = "cubewalk";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Longest token accepted, in bytes. Checked before any parsing, so a huge header costs
/// nothing; identity-provider ID tokens with many claims stay well under it.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The prefix of every guest login's player id; no other issuer's token may name one.
pub const GUEST_PREFIX: &str = "guest-";
/// Longest player id, in bytes.
pub const MAX_PLAYER_ID_LEN: usize = 128;

/// What a token allows, each role including the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Fetch and follow.
    Viewer,
    /// Also put.
    Editor,
    /// Also the admin operations.
    Admin,
}

impl Role {
    /// The role's name as tokens and the authorizer context spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parses `viewer`, `editor` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The worlds a token may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worlds {
    /// Every world (the token has no `worlds` claim).
    All,
    /// Only these.
    Only(Vec<WorldId>),
}

impl Worlds {
    /// Whether `world` is one of them.
    pub fn contains(&self, world: &WorldId) -> bool {
        match self {
            Self::All => true,
            Self::Only(list) => list.contains(world),
        }
    }

    /// `*` for all, else the ids joined by commas (a world id holds no comma).
    fn to_context(&self) -> String {
        match self {
            Self::All => "*".into(),
            Self::Only(list) => list
                .iter()
                .map(WorldId::as_str)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn from_context(s: &str) -> Option<Self> {
        if s == "*" {
            return Some(Self::All);
        }
        if s.is_empty() {
            return Some(Self::Only(Vec::new()));
        }
        s.split(',')
            .map(|w| WorldId::new(w).ok())
            .collect::<Option<Vec<_>>>()
            .map(Self::Only)
    }
}

/// What a request wants to do, checked against the caller's role and worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fetch chunks or follow them.
    Read,
    /// Put cubes.
    Edit,
    /// An admin operation.
    Administer,
}

impl Action {
    fn needs(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Edit => Role::Editor,
            Self::Administer => Role::Admin,
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// The player id (the token's `sub`, or a static token's fixed id).
    pub id: String,
    /// What the token allows.
    pub role: Role,
    /// Which worlds it allows.
    pub worlds: Worlds,
}

impl Player {
    /// The authorizer's flat context for this player (string values only, as API Gateway
    /// requires): `player`, `role`, `worlds` (`*` or a comma-separated list).
    pub fn to_context(&self) -> serde_json::Value {
        serde_json::json!({
            "player": self.id,
            "role": self.role.as_str(),
            "worlds": self.worlds.to_context(),
        })
    }

    /// Reads the player back from `requestContext.authorizer`. `None` when the context is
    /// missing or malformed: the handler then refuses the request, as only a request that
    /// passed the authorizer has one.
    pub fn from_context(fields: &HashMap<String, serde_json::Value>) -> Option<Self> {
        let text = |k: &str| fields.get(k).and_then(|v| v.as_str());
        let id = text("player").filter(|p| valid_player_id(p))?;
        Some(Self {
            id: id.to_owned(),
            role: Role::parse(text("role")?)?,
            worlds: Worlds::from_context(text("worlds")?)?,
        })
    }

    /// Whether this player may do `action` in `world`: `403 forbidden` when not.
    pub fn check(&self, action: Action, world: &WorldId) -> Result<(), WireError> {
        self.check_role(action)?;
        if !self.worlds.contains(world) {
            return Err(WireError::Forbidden(format!(
                "this token does not allow world '{world}'"
            )));
        }
        Ok(())
    }

    /// Whether this player's role allows `action` in some world (checked before the request
    /// is read, so a token without the role costs no decoding).
    pub fn check_role(&self, action: Action) -> Result<(), WireError> {
        if self.role < action.needs() {
            return Err(WireError::Forbidden(format!(
                "a {} token cannot do this (needs {})",
                self.role,
                action.needs()
            )));
        }
        Ok(())
    }
}

/// A player id: 1 to [`MAX_PLAYER_ID_LEN`] bytes of ASCII letters, digits and `._:@|+-`
/// (enough for Cognito's UUIDs, Auth0's `provider|id`, Firebase uids and e-mail-like ids), so
/// it is safe in logs and in store keys.
pub fn valid_player_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PLAYER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@|+-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(s: &str) -> WorldId {
        WorldId::new(s).unwrap()
    }

    #[test]
    fn context_round_trips_and_refuses_garbage() {
        for worlds in [
            Worlds::All,
            Worlds::Only(vec![]),
            Worlds::Only(vec![world("a"), world("b.c")]),
        ] {
            let p = Player {
                id: "auth0|abc".into(),
                role: Role::Viewer,
                worlds,
            };
            let ctx: HashMap<String, serde_json::Value> =
                serde_json::from_value(p.to_context()).unwrap();
            assert_eq!(Player::from_context(&ctx), Some(p));
        }
        let bad = [
            serde_json::json!({"role": "editor", "worlds": "*"}),
            serde_json::json!({"player": "p", "role": "root", "worlds": "*"}),
            serde_json::json!({"player": "p", "role": "editor", "worlds": "a b"}),
            serde_json::json!({"player": "p q", "role": "editor", "worlds": "*"}),
            serde_json::json!({"player": "p", "role": "editor"}),
        ];
        for b in bad {
            let ctx: HashMap<String, serde_json::Value> = serde_json::from_value(b).unwrap();
            assert_eq!(Player::from_context(&ctx), None);
        }
    }

    #[test]
    fn roles_and_worlds_are_enforced() {
        let p = |role| Player {
            id: "p".into(),
            role,
            worlds: Worlds::Only(vec![world("w1")]),
        };
        assert!(p(Role::Viewer).check(Action::Read, &world("w1")).is_ok());
        let e = p(Role::Viewer)
            .check(Action::Edit, &world("w1"))
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (403, "forbidden"));
        assert!(p(Role::Editor).check(Action::Edit, &world("w1")).is_ok());
        assert!(p(Role::Editor).check(Action::Edit, &world("w2")).is_err());
        assert!(p(Role::Editor)
            .check(Action::Administer, &world("w1"))
            .is_err());
        assert!(p(Role::Admin)
            .check(Action::Administer, &world("w1"))
            .is_ok());
    }
}
