//! Which worlds exist and how far each reaches: the deployment's list of world names or
//! patterns, each with bounds on chunk coordinates and a share of the store.
//!
//! Without it any world name and any coordinates would be accepted, and a player could fill
//! the store by writing far-flung chunks of made-up worlds. The list is the `Worlds` template
//! parameter (`CUBEWALK_WORLDS` for the functions) and `serve --worlds`.
//!
//! A spec is a comma-separated list of rules, the first match winning:
//!
//! ```text
//! <name or prefix*>[=<horizontal>/<vertical>[/<budget MiB>]]
//! ```
//!
//! `horizontal` bounds `|x|` and `|z|`, `vertical` bounds `|y|` (in chunks); the budget is the
//! most chunk data the world may hold (its blobs, plus [`CHUNK_OVERHEAD_BYTES`] per chunk),
//! shared by every world a prefix rule matches (made-up world names make no new room).
//! `default`, `event-*=64/8/16` and `*` are rules.

use crate::store::WorldBudget;
use cubewalk_protocol::{ChunkKey, WireError, WorldId};

/// Horizontal bound when a rule names none: 65,536 chunks (about a million cubes) each way,
/// past which Unity's 32-bit floats lose whole cubes of precision anyway.
pub const DEFAULT_HORIZONTAL: u32 = 65_536;

/// Vertical bound when a rule names none: 4,096 chunks each way.
pub const DEFAULT_VERTICAL: u32 = 4_096;

/// Budget when a rule names none: 1 GiB of chunk data.
pub const DEFAULT_BUDGET_MIB: u64 = 1024;

/// What a chunk costs the budget beyond its blob: the hash that holds it and its fields.
pub const CHUNK_OVERHEAD_BYTES: u64 = 128;

/// One rule: a world name or prefix and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldRule {
    /// The exact name, or the prefix when `prefix` is set.
    pub name: String,
    /// `name*`: every world whose id starts with `name`.
    pub prefix: bool,
    /// Largest `|x|` and `|z|` of a chunk.
    pub horizontal: u32,
    /// Largest `|y|` of a chunk.
    pub vertical: u32,
    /// Most chunk data the world may hold, in bytes: together with every other world the
    /// rule matches, for a prefix.
    pub budget_bytes: u64,
    /// The name the budget is counted under: the rule as written (`default`, `event-*`).
    pub account: String,
}

impl WorldRule {
    fn matches(&self, world: &str) -> bool {
        if self.prefix {
            world.starts_with(&self.name)
        } else {
            world == self.name
        }
    }

    /// Whether `k` lies within the bounds.
    pub fn contains(&self, k: ChunkKey) -> bool {
        k.x.unsigned_abs() <= self.horizontal
            && k.z.unsigned_abs() <= self.horizontal
            && k.y.unsigned_abs() <= self.vertical
    }
}

/// The deployment's worlds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worlds {
    rules: Vec<WorldRule>,
}

impl Default for Worlds {
    /// Only the world `default`, with the default bounds and budget.
    fn default() -> Self {
        Self::parse("default").expect("a valid spec")
    }
}

impl Worlds {
    /// Every world name allowed, with the default bounds and budget: for development and tests.
    pub fn any() -> Self {
        Self::parse("*").expect("a valid spec")
    }

    /// Parses a spec (see the module documentation).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, limits) = match entry.split_once('=') {
                Some((p, l)) => (p.trim(), Some(l.trim())),
                None => (entry, None),
            };
            let (name, prefix) = match pattern.strip_suffix('*') {
                Some(p) => (p, true),
                None => (pattern, false),
            };
            // A prefix may be empty (`*`); a name must be a valid world id, and a prefix the
            // start of one.
            if !(prefix && name.is_empty()) && WorldId::new(name).is_err() {
                return Err(format!("world rule {entry:?}: {name:?} is not a world id"));
            }
            let mut rule = WorldRule {
                name: name.to_owned(),
                account: pattern.to_owned(),
                prefix,
                horizontal: DEFAULT_HORIZONTAL,
                vertical: DEFAULT_VERTICAL,
                budget_bytes: DEFAULT_BUDGET_MIB << 20,
            };
            if let Some(limits) = limits {
                let parts: Vec<&str> = limits.split('/').map(str::trim).collect();
                let number = |s: &str| {
                    s.parse::<u64>()
                        .map_err(|_| format!("world rule {entry:?}: {s:?} is not a number"))
                };
                match parts.as_slice() {
                    [h, v] | [h, v, _] => {
                        rule.horizontal = u32::try_from(number(h)?)
                            .map_err(|_| format!("world rule {entry:?}: bound too large"))?;
                        rule.vertical = u32::try_from(number(v)?)
                            .map_err(|_| format!("world rule {entry:?}: bound too large"))?;
                    }
                    _ => {
                        return Err(format!(
                            "world rule {entry:?}: expected <horizontal>/<vertical>[/<budget MiB>]"
                        ))
                    }
                }
                if let [_, _, mib] = parts.as_slice() {
                    let mib = number(mib)?;
                    if mib == 0 || mib > 1 << 30 {
                        return Err(format!("world rule {entry:?}: budget out of range"));
                    }
                    rule.budget_bytes = mib << 20;
                }
            }
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err("no worlds: name at least one (or `*` for any)".into());
        }
        Ok(Self { rules })
    }

    /// Reads `CUBEWALK_WORLDS`; only `default` when unset.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("CUBEWALK_WORLDS") {
            Ok(spec) => Self::parse(&spec).map_err(|e| format!("CUBEWALK_WORLDS: {e}")),
            Err(_) => Ok(Self::default()),
        }
    }

    /// The rule of `world`, or 404 when the deployment has no such world.
    pub fn rule(&self, world: &WorldId) -> Result<&WorldRule, WireError> {
        self.rules
            .iter()
            .find(|r| r.matches(world.as_str()))
            .ok_or_else(|| WireError::NotFound(format!("world {world}")))
    }

    /// Checks that `world` exists and every chunk of `chunks` lies within its bounds (422
    /// otherwise), and answers its rule's budget.
    pub fn check(
        &self,
        world: &WorldId,
        chunks: impl IntoIterator<Item = ChunkKey>,
    ) -> Result<WorldBudget<'_>, WireError> {
        let rule = self.rule(world)?;
        if let Some(k) = chunks.into_iter().find(|k| !rule.contains(*k)) {
            return Err(WireError::Invalid(format!(
                "chunk {k} lies outside world {world} (|x|, |z| up to {}, |y| up to {})",
                rule.horizontal, rule.vertical
            )));
        }
        Ok(WorldBudget {
            bytes: rule.budget_bytes,
            account: &rule.account,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> WorldId {
        WorldId::new(s).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_bounds_apply() {
        let worlds = Worlds::parse("default, event-*=64/8/16, *=10/2").unwrap();
        let default = worlds.rule(&w("default")).unwrap();
        assert_eq!(default.horizontal, DEFAULT_HORIZONTAL);
        let event = worlds.rule(&w("event-7")).unwrap();
        assert_eq!((event.horizontal, event.vertical), (64, 8));
        assert_eq!(event.budget_bytes, 16 << 20);
        // Every event world counts against one budget.
        assert_eq!(
            worlds.check(&w("event-7"), []).unwrap().account,
            worlds.check(&w("event-8"), []).unwrap().account
        );
        assert!(worlds
            .check(&w("event-7"), [ChunkKey::new(-64, 8, 64)])
            .is_ok());
        let out = worlds
            .check(&w("event-7"), [ChunkKey::new(0, 9, 0)])
            .unwrap_err();
        assert_eq!(out.status(), 422);
        assert_eq!(worlds.rule(&w("other")).unwrap().horizontal, 10);
        // i32::MIN's magnitude does not overflow.
        assert!(worlds
            .check(&w("other"), [ChunkKey::new(i32::MIN, 0, 0)])
            .is_err());
    }

    #[test]
    fn unknown_worlds_are_not_found_and_bad_specs_are_refused() {
        let worlds = Worlds::default();
        assert_eq!(worlds.rule(&w("elsewhere")).unwrap_err().status(), 404);
        for bad in ["", "bad world", "x=1", "x=a/b", "x=1/2/0", "x=1/2/3/4"] {
            assert!(Worlds::parse(bad).is_err(), "{bad:?}");
        }
    }
}
