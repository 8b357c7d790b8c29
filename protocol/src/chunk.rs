//! Chunk geometry: keys and the game's cube order.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Cubes along one edge of a chunk.
pub const CHUNK_SIDE: usize = 16;
/// Cubes in one chunk (16 x 16 x 16).
pub const CHUNK_CUBES: usize = CHUNK_SIDE * CHUNK_SIDE * CHUNK_SIDE;

/// Position of a chunk inside a world, in chunk units, one signed 32-bit integer per axis.
///
/// On the wire it is the JSON array `[x, y, z]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "[i32; 3]", into = "[i32; 3]")]
pub struct ChunkKey {
    /// Chunk x.
    pub x: i32,
    /// Chunk y (up).
    pub y: i32,
    /// Chunk z.
    pub z: i32,
}

impl ChunkKey {
    /// A key from its three coordinates.
    pub const fn new(x: i32, y: i32, z: i32) -> Self {
        Self { x, y, z }
    }
}

impl From<[i32; 3]> for ChunkKey {
    fn from([x, y, z]: [i32; 3]) -> Self {
        Self { x, y, z }
    }
}

impl From<ChunkKey> for [i32; 3] {
    fn from(k: ChunkKey) -> Self {
        [k.x, k.y, k.z]
    }
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.x, self.y, self.z)
    }
}

/// The text form was not `x,y,z` with three 32-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a chunk is x,y,z with 32-bit integers")]
pub struct ChunkKeyParseError;

/// The inverse of [`fmt::Display`]: `x,y,z`.
impl std::str::FromStr for ChunkKey {
    type Err = ChunkKeyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',').map(str::parse::<i32>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(x)), Some(Ok(y)), Some(Ok(z)), None) => Ok(ChunkKey::new(x, y, z)),
            _ => Err(ChunkKeyParseError),
        }
    }
}

/// Index of the cube at local (x, y, z) in the game's flat chunk array: `x * 256 + z * 16 + y`
/// (y varies fastest, then z, then x). Returns `None` when a coordinate is outside 0..16.
pub fn cube_index(x: u32, y: u32, z: u32) -> Option<u16> {
    let side = CHUNK_SIDE as u32;
    if x >= side || y >= side || z >= side {
        return None;
    }
    Some((x * 256 + z * 16 + y) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cube_index_follows_game_order() {
        assert_eq!(cube_index(0, 0, 0), Some(0));
        assert_eq!(cube_index(0, 1, 0), Some(1));
        assert_eq!(cube_index(0, 0, 1), Some(16));
        assert_eq!(cube_index(1, 0, 0), Some(256));
        assert_eq!(cube_index(15, 15, 15), Some(4095));
        assert_eq!(cube_index(16, 0, 0), None);
        assert_eq!(cube_index(0, 16, 0), None);
        assert_eq!(cube_index(0, 0, 16), None);
    }

    #[test]
    fn key_is_a_json_triple() {
        let k = ChunkKey::new(-1, 2, i32::MAX);
        let s = serde_json::to_string(&k).unwrap();
        assert_eq!(s, "[-1,2,2147483647]");
        assert_eq!(serde_json::from_str::<ChunkKey>(&s).unwrap(), k);
    }
}
