//! Per-player limits: a generic cell rate algorithm (GCRA) per player and limit, kept in the
//! store so every function instance shares it. A limit allows `burst` units at once and then
//! `rate` units per `period`; a put past it is refused with the time until it would pass,
//! and charges nothing.

use std::time::Duration;

/// Which limit a put went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Cubes edited per second.
    Cubes,
    /// New chunks (never written before) per minute.
    NewChunks,
    /// Chunk writes per second: each chunk a put or cancel names. Bounds what a player's
    /// writes leave in the store besides cubes (idempotency records, log entries).
    Writes,
}

impl Limit {
    /// Every limit, in the order the admission script takes them.
    pub(crate) const ALL: [Limit; 3] = [Limit::Cubes, Limit::NewChunks, Limit::Writes];
}

impl Limit {
    /// The field the limit's state is kept under.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Limit::Cubes => "c",
            Limit::NewChunks => "n",
            Limit::Writes => "w",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Cubes => "cubes-per-second",
            Limit::NewChunks => "new-chunks-per-minute",
            Limit::Writes => "chunk-writes-per-second",
        })
    }
}

/// One player's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerLimits {
    /// Cubes one player may edit per second, sustained.
    pub cubes_per_sec: u32,
    /// Cubes one player may edit at once (at least one put's worth, 16 384).
    pub cube_burst: u32,
    /// New chunks one player may create per minute, sustained.
    pub new_chunks_per_min: u32,
    /// New chunks one player may create at once.
    pub new_chunk_burst: u32,
    /// Chunk writes one player may make per second, sustained (each chunk of a put counts).
    pub writes_per_sec: u32,
    /// Chunk writes one player may make at once (at least one put's 256 chunks).
    pub write_burst: u32,
}

impl Default for PlayerLimits {
    /// 65 536 cubes a second (16 whole chunks) with bursts of 262 144 (64 chunks), 3 000 new
    /// chunks a minute with bursts of 4 096, and 100 chunk writes a second with bursts of
    /// 2 560 (ten puts of 256 chunks): room for pasting a large structure or importing a
    /// region, and still over a hundred times less than one unlimited script writes (about
    /// 2 000 whole chunks a second). The writes limit bounds a player's idempotency records
    /// to about 92 000 at any time (100 a second over the 900 s window, plus the burst).
    fn default() -> Self {
        Self {
            cubes_per_sec: 65_536,
            cube_burst: 262_144,
            new_chunks_per_min: 3000,
            new_chunk_burst: 4096,
            writes_per_sec: 100,
            write_burst: 2560,
        }
    }
}

impl PlayerLimits {
    /// The defaults, overridden by `CUBEWALK_LIMIT_CUBES_PER_SEC`, `CUBEWALK_LIMIT_CUBE_BURST`,
    /// `CUBEWALK_LIMIT_NEW_CHUNKS_PER_MIN`, `CUBEWALK_LIMIT_NEW_CHUNK_BURST`,
    /// `CUBEWALK_LIMIT_WRITES_PER_SEC` and `CUBEWALK_LIMIT_WRITE_BURST`.
    pub fn from_env() -> Result<Self, String> {
        let mut limits = Self::default();
        for (name, slot) in [
            ("CUBEWALK_LIMIT_CUBES_PER_SEC", &mut limits.cubes_per_sec),
            ("CUBEWALK_LIMIT_CUBE_BURST", &mut limits.cube_burst),
            (
                "CUBEWALK_LIMIT_NEW_CHUNKS_PER_MIN",
                &mut limits.new_chunks_per_min,
            ),
            (
                "CUBEWALK_LIMIT_NEW_CHUNK_BURST",
                &mut limits.new_chunk_burst,
            ),
            ("CUBEWALK_LIMIT_WRITES_PER_SEC", &mut limits.writes_per_sec),
            ("CUBEWALK_LIMIT_WRITE_BURST", &mut limits.write_burst),
        ] {
            if let Ok(text) = std::env::var(name) {
                *slot = text
                    .parse()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{name} must be a positive number"))?;
            }
        }
        Ok(limits)
    }

    /// The (emission interval in microseconds per unit, burst in units) of `limit`.
    pub(crate) fn cell(&self, limit: Limit) -> (u64, u64) {
        match limit {
            Limit::Cubes => (
                1_000_000 / u64::from(self.cubes_per_sec.max(1)).min(1_000_000),
                u64::from(self.cube_burst),
            ),
            Limit::NewChunks => (
                60_000_000 / u64::from(self.new_chunks_per_min.max(1)).min(60_000_000),
                u64::from(self.new_chunk_burst),
            ),
            Limit::Writes => (
                1_000_000 / u64::from(self.writes_per_sec.max(1)).min(1_000_000),
                u64::from(self.write_burst),
            ),
        }
    }
}

/// The GCRA step, the same arithmetic as the Redis script's: given the stored theoretical
/// arrival time `tat` (µs), the time `now` (µs) and a `cost`, answers the new `tat` to store,
/// or how long to wait.
pub(crate) fn gcra(
    tat: u64,
    now: u64,
    cost: u64,
    interval: u64,
    burst: u64,
) -> Result<u64, Duration> {
    let tat = tat.max(now);
    let new_tat = tat + cost * interval;
    let allow_at = new_tat.saturating_sub(burst * interval);
    if allow_at > now {
        Err(Duration::from_micros(allow_at - now))
    } else {
        Ok(new_tat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let (interval, burst) = (1000, 10); // 1000 per second, bursts of 10
        let mut tat = 0;
        for _ in 0..10 {
            tat = gcra(tat, 0, 1, interval, burst).unwrap();
        }
        let wait = gcra(tat, 0, 1, interval, burst).unwrap_err();
        assert_eq!(wait, Duration::from_micros(1000));
        assert!(gcra(tat, 1000, 1, interval, burst).is_ok());
        // A cost larger than what has refilled waits for exactly the shortfall.
        assert_eq!(
            gcra(tat, 0, 5, interval, burst).unwrap_err(),
            Duration::from_micros(5000)
        );
    }
}
