//! The subscription index in Redis, beside the chunks it is about.
//!
//! - Who follows a chunk: a sorted set `cw:{<world>:<x>,<y>,<z>}:subs` (the chunk's own hash
//!   slot), member = connection id, score = when that subscription expires (Unix seconds).
//!   Expired members are never answered and are trimmed whenever the set is written.
//! - What a connection follows: a hash `cw:conn:{<connection id>}` with its world (`w`) and
//!   chunks (`c`, `x,y,z;...`), so `$disconnect` and Gone can remove exactly its entries.
//!
//! - Whose a connection is: field `p` of that hash, and each player's connections: a sorted
//!   set `cw:{p:<player>}:conns` (the player's hash slot), score = expiry as above.
//!
//! Every command touches one key, so the index works on Redis Cluster: commands are issued
//! together and routed per slot. Both kinds of key expire [`SUBSCRIPTION_TTL`] after the last
//! subscribe, a little longer than API Gateway's 2-hour connection lifetime, so a connection
//! whose `$disconnect` never ran (a Lambda failure) leaves nothing behind for long; a delivery
//! answered Gone removes it at once.

use super::index::{ConnectionId, Subscriptions};
use crate::store::redis::unavailable;
use crate::store::{redis_chunk_key, RedisStore, StoreError};
use async_trait::async_trait;
use cubewalk_protocol::realtime::MAX_SUBSCRIBED_CHUNKS;
use cubewalk_protocol::{ChunkKey, WorldId};
use redis::Cmd;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a subscription lives without being renewed: API Gateway closes every WebSocket
/// connection after 2 hours, plus a margin for clocks.
pub const SUBSCRIPTION_TTL: Duration = Duration::from_secs(2 * 3600 + 600);

fn followers_key(world: &WorldId, chunk: ChunkKey) -> String {
    format!("{}:subs", redis_chunk_key(world, chunk))
}

fn connection_key(connection: &str) -> String {
    format!("cw:conn:{{{connection}}}")
}

fn player_connections_key(player: &str) -> String {
    crate::store::redis::player_key(player, "conns")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn encode_chunks(chunks: &HashSet<ChunkKey>) -> String {
    let parts: Vec<String> = chunks
        .iter()
        .map(|c| format!("{},{},{}", c.x, c.y, c.z))
        .collect();
    parts.join(";")
}

fn decode_chunks(text: &str) -> HashSet<ChunkKey> {
    text.split(';')
        .filter_map(|part| {
            let mut it = part.split(',').map(|n| n.parse::<i32>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(x)), Some(Ok(y)), Some(Ok(z))) => Some(ChunkKey::new(x, y, z)),
                _ => None,
            }
        })
        .collect()
}

impl RedisStore {
    /// What `connection` follows now, if anything.
    async fn followed(
        &self,
        connection: &str,
    ) -> Result<Option<(WorldId, HashSet<ChunkKey>)>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(connection_key(connection)).arg("w").arg("c");
        let mut answers: Vec<(Option<String>, Option<String>)> =
            self.run_all(vec![cmd]).await.map_err(|e| unavailable(&e))?;
        let (world, chunks) = answers.pop().unwrap_or((None, None));
        Ok(match world.as_deref().map(WorldId::new) {
            Some(Ok(world)) => Some((world, decode_chunks(chunks.as_deref().unwrap_or("")))),
            _ => None,
        })
    }

    /// Writes the connection's record and its followers' entries: removes it from `dropped`,
    /// adds it (with a fresh expiry) to `kept`.
    async fn write_followed(
        &self,
        connection: &str,
        world: &WorldId,
        dropped: &[ChunkKey],
        old_world: Option<&WorldId>,
        kept: &HashSet<ChunkKey>,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let ttl = SUBSCRIPTION_TTL.as_secs();
        let mut cmds: Vec<Cmd> = Vec::new();
        for &c in dropped {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(followers_key(old_world.unwrap_or(world), c))
                .arg(connection);
            cmds.push(cmd);
        }
        for &c in kept {
            let key = followers_key(world, c);
            // ZADD, then trim the expired and renew the key's own expiry: one script would be
            // atomic, but each step is harmless alone (a member is answered only while its
            // score is in the future).
            let mut add = redis::cmd("ZADD");
            add.arg(&key).arg(now + ttl).arg(connection);
            let mut trim = redis::cmd("ZREMRANGEBYSCORE");
            trim.arg(&key).arg("-inf").arg(now);
            let mut expire = redis::cmd("EXPIRE");
            expire.arg(&key).arg(ttl);
            cmds.extend([add, trim, expire]);
        }
        let record = connection_key(connection);
        if kept.is_empty() {
            // The player field stays: `$disconnect` needs it to forget the connection.
            let mut del = redis::cmd("HDEL");
            del.arg(&record).arg("w").arg("c");
            cmds.push(del);
        } else {
            let mut set = redis::cmd("HSET");
            set.arg(&record)
                .arg("w")
                .arg(world.as_str())
                .arg("c")
                .arg(encode_chunks(kept));
            let mut expire = redis::cmd("EXPIRE");
            expire.arg(&record).arg(ttl);
            cmds.extend([set, expire]);
        }
        let _: Vec<redis::Value> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

#[async_trait]
impl Subscriptions for RedisStore {
    async fn subscribe(
        &self,
        connection: &str,
        world: &WorldId,
        chunks: &[ChunkKey],
    ) -> Result<(), StoreError> {
        let new: HashSet<ChunkKey> = chunks.iter().copied().take(MAX_SUBSCRIBED_CHUNKS).collect();
        let old = self.followed(connection).await?;
        let (old_world, dropped) = match &old {
            Some((w, old)) if w == world => (Some(w), old.difference(&new).copied().collect()),
            Some((w, old)) => (Some(w), old.iter().copied().collect()),
            None => (None, Vec::new()),
        };
        self.write_followed(connection, world, &dropped, old_world, &new)
            .await
    }

    async fn unsubscribe(&self, connection: &str, chunks: &[ChunkKey]) -> Result<(), StoreError> {
        let Some((world, mut followed)) = self.followed(connection).await? else {
            return Ok(());
        };
        let dropped: Vec<ChunkKey> = chunks
            .iter()
            .copied()
            .filter(|c| followed.remove(c))
            .collect();
        self.write_followed(connection, &world, &dropped, Some(&world), &followed)
            .await
    }

    async fn register(&self, connection: &str, player: &str) -> Result<usize, StoreError> {
        let now = now_secs();
        let ttl = SUBSCRIPTION_TTL.as_secs();
        let record = connection_key(connection);
        let conns = player_connections_key(player);
        let mut set = redis::cmd("HSET");
        set.arg(&record).arg("p").arg(player);
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(&record).arg(ttl);
        self.run_all::<redis::Value>(vec![set, expire])
            .await
            .map_err(|e| unavailable(&e))?;
        let mut add = redis::cmd("ZADD");
        add.arg(&conns).arg(now + ttl).arg(connection);
        let mut trim = redis::cmd("ZREMRANGEBYSCORE");
        trim.arg(&conns).arg("-inf").arg(now);
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(&conns).arg(ttl);
        let mut count = redis::cmd("ZCARD");
        count.arg(&conns);
        let answers: Vec<redis::Value> = self
            .run_all(vec![add, trim, expire, count])
            .await
            .map_err(|e| unavailable(&e))?;
        let held = answers
            .last()
            .cloned()
            .map(redis::from_redis_value::<usize>)
            .transpose()
            .map_err(|e| StoreError::Unavailable(format!("unexpected Redis answer: {e}")))?;
        Ok(held.unwrap_or(1))
    }

    async fn connections_of(&self, player: &str) -> Result<Vec<ConnectionId>, StoreError> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(player_connections_key(player))
            .arg(format!("({}", now_secs()))
            .arg("+inf");
        let mut answers: Vec<Vec<ConnectionId>> =
            self.run_all(vec![cmd]).await.map_err(|e| unavailable(&e))?;
        let mut out = answers.pop().unwrap_or_default();
        out.sort();
        Ok(out)
    }

    async fn disconnect(&self, connection: &str) -> Result<(), StoreError> {
        let record = connection_key(connection);
        let mut get = redis::cmd("HGET");
        get.arg(&record).arg("p");
        let mut player: Vec<Option<String>> =
            self.run_all(vec![get]).await.map_err(|e| unavailable(&e))?;
        if let Some((world, followed)) = self.followed(connection).await? {
            let dropped: Vec<ChunkKey> = followed.into_iter().collect();
            self.write_followed(connection, &world, &dropped, Some(&world), &HashSet::new())
                .await?;
        }
        let mut cmds = Vec::new();
        if let Some(player) = player.pop().flatten() {
            let mut rem = redis::cmd("ZREM");
            rem.arg(player_connections_key(&player)).arg(connection);
            cmds.push(rem);
        }
        let mut del = redis::cmd("DEL");
        del.arg(&record);
        cmds.push(del);
        self.run_all::<redis::Value>(cmds)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn followers(
        &self,
        world: &WorldId,
        chunks: &[ChunkKey],
    ) -> Result<Vec<Vec<ConnectionId>>, StoreError> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_secs();
        let cmds = chunks
            .iter()
            .map(|&c| {
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(followers_key(world, c))
                    .arg(format!("({now}"))
                    .arg("+inf");
                cmd
            })
            .collect();
        let mut answers: Vec<Vec<ConnectionId>> =
            self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        for a in &mut answers {
            a.sort();
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lists_round_trip_and_keys_share_the_chunks_slot() {
        let set: HashSet<ChunkKey> = [ChunkKey::new(-1, 2, 3), ChunkKey::new(0, 0, 0)].into();
        assert_eq!(decode_chunks(&encode_chunks(&set)), set);
        assert!(decode_chunks("").is_empty());
        let w = WorldId::default();
        let k = ChunkKey::new(1, 2, 3);
        assert_eq!(
            followers_key(&w, k),
            format!("{}:subs", redis_chunk_key(&w, k))
        );
        assert_eq!(connection_key("abc="), "cw:conn:{abc=}");
    }
}
