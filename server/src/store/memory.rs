//! The embedded in-memory store: zero setup, same semantics as Redis, gone when the process ends.

use super::{edit_blob, ChunkStore, StoreError, StoredChunk};
use async_trait::async_trait;
use cubewalk_protocol::messages::ChunkEdits;
use cubewalk_protocol::{ChunkKey, WorldId};
use std::collections::HashMap;
use std::sync::Mutex;

/// Shards spread lock contention between chunks; a chunk always lives in one shard, so holding
/// its shard's lock while editing makes the edit atomic.
const SHARDS: usize = 64;

type Shard = HashMap<(WorldId, ChunkKey), StoredChunk>;

/// Chunks held in process memory.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, key: ChunkKey) -> &Mutex<Shard> {
        let h = (key.x as u32)
            .wrapping_mul(73_856_093)
            .wrapping_add((key.y as u32).wrapping_mul(19_349_663))
            .wrapping_add((key.z as u32).wrapping_mul(83_492_791));
        &self.shards[h as usize % SHARDS]
    }

    fn lock(&self, key: ChunkKey) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a chunk half-written (the map entry is
        // replaced in one assignment), so a poisoned lock is safe to keep using.
        self.shard(key).lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ChunkStore for MemoryStore {
    async fn fetch(
        &self,
        world: &WorldId,
        keys: &[ChunkKey],
    ) -> Result<Vec<StoredChunk>, StoreError> {
        Ok(keys
            .iter()
            .map(|&k| {
                self.lock(k)
                    .get(&(world.clone(), k))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn apply(&self, world: &WorldId, edits: &[ChunkEdits]) -> Result<Vec<u64>, StoreError> {
        let mut versions = Vec::with_capacity(edits.len());
        for (key, cubes) in edits {
            let mut shard = self.lock(*key);
            let id = (world.clone(), *key);
            let current = shard.get(&id);
            let blob = current.map(|c| c.blob.as_slice()).unwrap_or(&[]);
            let version = current.map_or(0, |c| c.version);
            match edit_blob(world, *key, blob, cubes)? {
                Some(blob) => {
                    shard.insert(
                        id,
                        StoredChunk {
                            version: version + 1,
                            blob,
                        },
                    );
                    versions.push(version + 1);
                }
                None => versions.push(version),
            }
        }
        Ok(versions)
    }
}
