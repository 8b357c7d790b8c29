//! The seed's fixed tokens, kept for development and for the seed's `curl`: each maps to a
//! fixed player id and role. They never expire and cannot be told apart between copies of a
//! game, so a public game uses player tokens instead.

use super::{valid_player_id, Player, Role, Worlds};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The role of a static token that names none: the seed's token could put.
pub const DEFAULT_STATIC_ROLE: Role = Role::Editor;

/// Accepted static tokens. Several may be accepted at once so a token can be rotated without
/// downtime. Only SHA-256 digests are kept, compared in constant time, so neither the
/// comparison's timing nor a memory dump of this struct reveals a token or its length.
#[derive(Clone, Default)]
pub struct TokenSet {
    entries: Vec<([u8; 32], Player)>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSet({} tokens)", self.entries.len())
    }
}

impl TokenSet {
    /// Accepts each of `tokens` as player `static-<slot>` with role editor; empty strings are
    /// ignored.
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::default();
        for t in tokens {
            set.push(t.as_ref(), None, None);
        }
        set
    }

    /// Reads a comma-separated list (as in the `CUBEWALK_TOKENS` environment variable) of
    /// `token`, `token:player` or `token:player:role` (a token holds no `:`, which the
    /// `token` header's validation expression does not allow). An entry naming a bad player
    /// id or role is refused whole.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let token = parts.next().unwrap_or("");
            let player = parts.next();
            let role = match parts.next() {
                Some(r) => Some(Role::parse(r).ok_or_else(|| {
                    format!("static token role must be viewer, editor or admin, not '{r}'")
                })?),
                None => None,
            };
            if let Some(p) = player.filter(|p| !valid_player_id(p)) {
                return Err(format!("static token player id '{p}' is not usable"));
            }
            set.push(token, player, role);
        }
        Ok(set)
    }

    /// [`TokenSet::parse`], dropping a list that does not parse (accepting nothing).
    pub fn from_list(list: &str) -> Self {
        Self::parse(list).unwrap_or_default()
    }

    fn push(&mut self, token: &str, player: Option<&str>, role: Option<Role>) {
        if token.is_empty() {
            return;
        }
        let slot = self.entries.len();
        let player = Player {
            id: player.map_or_else(|| format!("static-{slot}"), str::to_owned),
            role: role.unwrap_or(DEFAULT_STATIC_ROLE),
            worlds: Worlds::All,
        };
        self.entries
            .push((Sha256::digest(token.as_bytes()).into(), player));
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The slot of the matching token, checking every slot so timing does not tell which one
    /// matched, or whether any did.
    pub fn check(&self, token: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (i, (d, _)) in self.entries.iter().enumerate() {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found
    }

    /// The player of the matching token.
    pub fn player(&self, token: &str) -> Option<Player> {
        self.check(token).map(|slot| self.entries[slot].1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_players_and_roles() {
        let set = TokenSet::parse("aaaaaaaa, bbbbbbbb:bob, cccccccc:carol:viewer").unwrap();
        assert_eq!(set.len(), 3);
        let a = set.player("aaaaaaaa").unwrap();
        assert_eq!((a.id.as_str(), a.role), ("static-0", Role::Editor));
        assert_eq!(set.player("bbbbbbbb").unwrap().id, "bob");
        assert_eq!(set.player("cccccccc").unwrap().role, Role::Viewer);
        assert_eq!(set.player("cccccccc:carol:viewer"), None);
        assert!(TokenSet::parse("dddddddd:dan:root").is_err());
        assert!(TokenSet::parse("dddddddd:bad player").is_err());
        assert_eq!(format!("{set:?}"), "TokenSet(3 tokens)");
    }
}
