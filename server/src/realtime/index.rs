//! Who follows which chunks: a connection follows chunks of one world, bounded by
//! [`MAX_SUBSCRIBED_CHUNKS`]; a put asks who follows each chunk it changed; a connection that
//! disconnects (or whose delivery answers Gone) is forgotten. The in-memory index lives here;
//! the Redis one in `redis_index`.

use crate::store::StoreError;
use async_trait::async_trait;
use cubewalk_protocol::realtime::MAX_SUBSCRIBED_CHUNKS;
use cubewalk_protocol::{ChunkKey, WorldId};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A connection id, as API Gateway names WebSocket connections.
pub type ConnectionId = String;

/// The subscription index. Every implementation keeps: a connection follows at most
/// [`MAX_SUBSCRIBED_CHUNKS`] chunks of one world, and after `disconnect` nothing of it is left.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Makes `connection` follow exactly `chunks` of `world` (replacing what it followed).
    async fn subscribe(
        &self,
        connection: &str,
        world: &WorldId,
        chunks: &[ChunkKey],
    ) -> Result<(), StoreError>;
    /// Stops `connection` following `chunks`.
    async fn unsubscribe(&self, connection: &str, chunks: &[ChunkKey]) -> Result<(), StoreError>;
    /// Records that `connection` is `player`'s and answers how many connections the player
    /// holds now, this one included.
    async fn register(&self, connection: &str, player: &str) -> Result<usize, StoreError>;
    /// The connections registered for `player` (sorted).
    async fn connections_of(&self, player: &str) -> Result<Vec<ConnectionId>, StoreError>;
    /// Forgets `connection` entirely (its subscriptions and its player's record of it).
    async fn disconnect(&self, connection: &str) -> Result<(), StoreError>;
    /// The connections following each of `chunks` of `world` (sorted), in order.
    async fn followers(
        &self,
        world: &WorldId,
        chunks: &[ChunkKey],
    ) -> Result<Vec<Vec<ConnectionId>>, StoreError>;
}

/// The index in process memory (the local gateway's, and the tests').
#[derive(Default)]
pub struct MemorySubscriptions {
    inner: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// What each connection follows.
    by_connection: HashMap<ConnectionId, (WorldId, HashSet<ChunkKey>)>,
    /// Who follows each chunk.
    by_chunk: HashMap<(WorldId, ChunkKey), HashSet<ConnectionId>>,
    /// Whose each connection is.
    player_of: HashMap<ConnectionId, String>,
    /// Each player's connections.
    by_player: HashMap<String, HashSet<ConnectionId>>,
}

impl Index {
    fn drop_chunks(&mut self, connection: &str, world: &WorldId, chunks: &[ChunkKey]) {
        for c in chunks {
            let key = (world.clone(), *c);
            if let Some(set) = self.by_chunk.get_mut(&key) {
                set.remove(connection);
                if set.is_empty() {
                    self.by_chunk.remove(&key);
                }
            }
        }
    }
}

impl MemorySubscriptions {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Subscriptions for MemorySubscriptions {
    async fn subscribe(
        &self,
        connection: &str,
        world: &WorldId,
        chunks: &[ChunkKey],
    ) -> Result<(), StoreError> {
        let mut index = self.lock();
        if let Some((old_world, old)) = index.by_connection.remove(connection) {
            let old: Vec<ChunkKey> = old.into_iter().collect();
            index.drop_chunks(connection, &old_world, &old);
        }
        let chunks: HashSet<ChunkKey> =
            chunks.iter().copied().take(MAX_SUBSCRIBED_CHUNKS).collect();
        for c in &chunks {
            index
                .by_chunk
                .entry((world.clone(), *c))
                .or_default()
                .insert(connection.to_owned());
        }
        index
            .by_connection
            .insert(connection.to_owned(), (world.clone(), chunks));
        Ok(())
    }

    async fn unsubscribe(&self, connection: &str, chunks: &[ChunkKey]) -> Result<(), StoreError> {
        let mut index = self.lock();
        let Some((world, followed)) = index.by_connection.get_mut(connection) else {
            return Ok(());
        };
        for c in chunks {
            followed.remove(c);
        }
        let world = world.clone();
        index.drop_chunks(connection, &world, chunks);
        Ok(())
    }

    async fn register(&self, connection: &str, player: &str) -> Result<usize, StoreError> {
        let mut index = self.lock();
        index
            .player_of
            .insert(connection.to_owned(), player.to_owned());
        let mine = index.by_player.entry(player.to_owned()).or_default();
        mine.insert(connection.to_owned());
        Ok(mine.len())
    }

    async fn connections_of(&self, player: &str) -> Result<Vec<ConnectionId>, StoreError> {
        let mut out: Vec<ConnectionId> = self
            .lock()
            .by_player
            .get(player)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        out.sort();
        Ok(out)
    }

    async fn disconnect(&self, connection: &str) -> Result<(), StoreError> {
        let mut index = self.lock();
        if let Some((world, followed)) = index.by_connection.remove(connection) {
            let followed: Vec<ChunkKey> = followed.into_iter().collect();
            index.drop_chunks(connection, &world, &followed);
        }
        if let Some(player) = index.player_of.remove(connection) {
            if let Some(mine) = index.by_player.get_mut(&player) {
                mine.remove(connection);
                if mine.is_empty() {
                    index.by_player.remove(&player);
                }
            }
        }
        Ok(())
    }

    async fn followers(
        &self,
        world: &WorldId,
        chunks: &[ChunkKey],
    ) -> Result<Vec<Vec<ConnectionId>>, StoreError> {
        let index = self.lock();
        Ok(chunks
            .iter()
            .map(|&chunk| {
                let mut out: Vec<ConnectionId> = index
                    .by_chunk
                    .get(&(world.clone(), chunk))
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                out.sort();
                out
            })
            .collect())
    }
}

impl MemorySubscriptions {
    /// How many connections the index holds (for tests and the local gateway's checks).
    pub fn connections(&self) -> usize {
        self.lock().by_connection.len()
    }
}
