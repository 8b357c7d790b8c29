//! Who follows which chunks (the realtime API's subscription index), as the WebSocket handlers
//! will use it: a connection follows chunks of one world, bounded by
//! [`MAX_SUBSCRIBED_CHUNKS`]; a put asks who follows each chunk it changed; a connection that
//! disconnects (or whose delivery answers Gone) is forgotten. This module holds the index and
//! the client-message handling as plain functions of (message, index); the WebSocket API that
//! drives them is not built yet.

use cubewalk_protocol::realtime::{ClientMessage, MAX_SUBSCRIBED_CHUNKS};
use cubewalk_protocol::{ChunkKey, WorldId};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A connection id, as API Gateway names WebSocket connections.
pub type ConnectionId = String;

/// The subscription index.
pub trait Subscriptions: Send + Sync {
    /// Makes `connection` follow exactly `chunks` of `world` (replacing what it followed).
    fn subscribe(&self, connection: &str, world: &WorldId, chunks: &[ChunkKey]);
    /// Stops `connection` following `chunks`.
    fn unsubscribe(&self, connection: &str, chunks: &[ChunkKey]);
    /// Forgets `connection` entirely.
    fn disconnect(&self, connection: &str);
    /// The connections following `chunk` of `world`.
    fn followers(&self, world: &WorldId, chunk: ChunkKey) -> Vec<ConnectionId>;
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

impl Subscriptions for MemorySubscriptions {
    fn subscribe(&self, connection: &str, world: &WorldId, chunks: &[ChunkKey]) {
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
    }

    fn unsubscribe(&self, connection: &str, chunks: &[ChunkKey]) {
        let mut index = self.lock();
        let Some((world, followed)) = index.by_connection.get_mut(connection) else {
            return;
        };
        for c in chunks {
            followed.remove(c);
        }
        let world = world.clone();
        index.drop_chunks(connection, &world, chunks);
    }

    fn disconnect(&self, connection: &str) {
        let mut index = self.lock();
        if let Some((world, followed)) = index.by_connection.remove(connection) {
            let followed: Vec<ChunkKey> = followed.into_iter().collect();
            index.drop_chunks(connection, &world, &followed);
        }
    }

    fn followers(&self, world: &WorldId, chunk: ChunkKey) -> Vec<ConnectionId> {
        let index = self.lock();
        let mut out: Vec<ConnectionId> = index
            .by_chunk
            .get(&(world.clone(), chunk))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// Handles one message a client sent on its connection; `Err` is the text to send back.
pub fn handle_client_message(
    connection: &str,
    text: &str,
    index: &dyn Subscriptions,
) -> Result<(), String> {
    match ClientMessage::parse(text)? {
        ClientMessage::Subscribe { world, chunks } => index.subscribe(connection, &world, &chunks),
        ClientMessage::Unsubscribe { chunks } => index.unsubscribe(connection, &chunks),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(x: i32) -> ChunkKey {
        ChunkKey::new(x, 0, 0)
    }

    #[test]
    fn followers_follow_subscriptions_unsubscriptions_and_disconnects() {
        let index = MemorySubscriptions::new();
        let w = WorldId::default();
        let msg = |chunks: &str| {
            format!(r#"{{"action":"subscribe","world":"default","chunks":{chunks}}}"#)
        };
        handle_client_message("a", &msg("[[0,0,0],[1,0,0]]"), &index).unwrap();
        handle_client_message("b", &msg("[[1,0,0]]"), &index).unwrap();
        assert_eq!(index.followers(&w, k(1)), vec!["a", "b"]);
        assert_eq!(index.followers(&w, k(0)), vec!["a"]);
        // Another world's chunk (0,0,0) is not the same chunk.
        assert!(index
            .followers(&WorldId::new("other").unwrap(), k(0))
            .is_empty());
        // A new subscription replaces the old one.
        handle_client_message("a", &msg("[[2,0,0]]"), &index).unwrap();
        assert_eq!(index.followers(&w, k(1)), vec!["b"]);
        assert_eq!(index.followers(&w, k(2)), vec!["a"]);
        handle_client_message(
            "b",
            r#"{"action":"unsubscribe","chunks":[[1,0,0]]}"#,
            &index,
        )
        .unwrap();
        assert!(index.followers(&w, k(1)).is_empty());
        index.disconnect("a");
        assert!(index.followers(&w, k(2)).is_empty());
        let inner = index.lock();
        assert!(inner.by_chunk.is_empty(), "nothing left behind");
        assert!(!inner.by_connection.contains_key("a"));
    }

    #[test]
    fn bad_messages_are_answered_and_change_nothing() {
        let index = MemorySubscriptions::new();
        assert!(handle_client_message("a", "not json", &index).is_err());
        assert!(handle_client_message(
            "a",
            r#"{"action":"subscribe","world":"bad id","chunks":[]}"#,
            &index
        )
        .is_err());
        let too_many: Vec<String> = (0..=MAX_SUBSCRIBED_CHUNKS as i32)
            .map(|i| format!("[{i},0,0]"))
            .collect();
        let text = format!(
            r#"{{"action":"subscribe","world":"default","chunks":[{}]}}"#,
            too_many.join(",")
        );
        assert!(handle_client_message("a", &text, &index).is_err());
        assert!(index.lock().by_connection.is_empty());
    }
}
