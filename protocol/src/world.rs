//! World ids: short, validated names that are part of every storage key.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The world used when a request names none (so the bare smoke-test `GET` works).
pub const DEFAULT_WORLD: &str = "default";
/// Longest accepted world id, in bytes.
pub const MAX_WORLD_ID_LEN: usize = 64;

/// A validated world id: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
///
/// The character set keeps ids safe inside Redis keys (no `{`, `}` or `:`, which the key
/// layout and cluster hash tags rely on) and inside URLs without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorldId(String);

/// Why a world id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldIdError {
    /// Empty or longer than [`MAX_WORLD_ID_LEN`].
    #[error("world id must be 1 to {MAX_WORLD_ID_LEN} characters long")]
    Length,
    /// Holds a character outside `[A-Za-z0-9_.-]`.
    #[error("world id may only contain ASCII letters, digits, '_', '-' and '.'")]
    Charset,
}

impl WorldId {
    /// Validates `s` as a world id.
    pub fn new(s: &str) -> Result<Self, WorldIdError> {
        if s.is_empty() || s.len() > MAX_WORLD_ID_LEN {
            return Err(WorldIdError::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(WorldIdError::Charset);
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WorldId {
    fn default() -> Self {
        Self(DEFAULT_WORLD.to_owned())
    }
}

impl TryFrom<String> for WorldId {
    type Error = WorldIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<WorldId> for String {
    fn from(w: WorldId) -> Self {
        w.0
    }
}

impl fmt::Display for WorldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(WorldId::new("default").is_ok());
        assert!(WorldId::new("w-1_a.b").is_ok());
        assert_eq!(WorldId::new(""), Err(WorldIdError::Length));
        assert_eq!(WorldId::new(&"a".repeat(65)), Err(WorldIdError::Length));
        assert_eq!(WorldId::new("a:b"), Err(WorldIdError::Charset));
        assert_eq!(WorldId::new("a{b}"), Err(WorldIdError::Charset));
        assert_eq!(WorldId::new("é"), Err(WorldIdError::Charset));
    }
}
