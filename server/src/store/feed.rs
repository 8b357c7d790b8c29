//! The change feed in Redis: where the deployed stack's puts leave their changes for the
//! publishers (a Lambda cannot hand them to a process of its own). One stream per shard
//! (`cw:rt:{<n>}`, [`FEED_SHARDS`] of them); a region's changes always go to the same shard,
//! so each chunk's changes stay in order. Each shard has its own lease (`cw:rt:{<n>}:lease`),
//! so one publisher at a time reads it, and its own position (`cw:rt:{<n>}:at`), where the
//! last holder left off; all three keys share the shard's hash slot, so a position is saved
//! atomically with a check of the lease. A publisher run serves one [`FeedGroup`] of the
//! shards: several runs, one per group, publish side by side.

use super::redis::{unavailable, RedisStore};
use super::StoreError;
use cubewalk_protocol::realtime::{Change, Region};
use cubewalk_protocol::WorldId;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// Streams the feed is spread over (each in its own hash slot, so the feed spreads over a
/// cluster's shards).
pub const FEED_SHARDS: usize = 16;
/// Entries each stream keeps (approximately) before the oldest are trimmed: 160,000 changes
/// in all (about 30 MB at most), nearly an hour of 50 puts a second. A publisher further
/// behind than this loses the oldest, and followers see the gaps in the write sequences and
/// refetch.
pub const FEED_MAX_LEN: usize = 10_000;
/// Most entries read from one stream per tick.
const READ_COUNT: usize = 2_000;

/// Renews a lease only while this holder has it. KEYS[1]: the lease; ARGV[1]: the holder;
/// ARGV[2]: the lease time in milliseconds. Answers 1 when renewed.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";
/// Releases a lease only if this holder has it.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";
/// Saves a shard's position only while this holder has its lease, so a run that lost the
/// shard (its lease ran out while it was publishing) never moves the position under the run
/// that took over. KEYS[1]: the lease; KEYS[2]: the position; ARGV[1]: the holder; ARGV[2]:
/// the entry id. Answers 1 when saved.
const SAVE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[2], ARGV[2]) return 1 end
return 0
";

fn stream_key(shard: usize) -> String {
    format!("cw:rt:{{{shard}}}")
}

fn cursor_key(shard: usize) -> String {
    format!("cw:rt:{{{shard}}}:at")
}

fn lease_key(shard: usize) -> String {
    format!("cw:rt:{{{shard}}}:lease")
}

/// The shard a region's changes go to.
pub fn feed_shard(world: &WorldId, region: Region) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (world.as_str(), region.x, region.y, region.z).hash(&mut h);
    (h.finish() % FEED_SHARDS as u64) as usize
}

/// The feed shards one publisher run serves: group `index` of `count` holds the shards `n`
/// with `n % count == index`, so `count` runs (one per group) share the feed evenly and
/// every shard is in exactly one group. `count` divides [`FEED_SHARDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedGroup {
    index: usize,
    count: usize,
}

impl FeedGroup {
    /// The whole feed, for one publisher at a time (group 0 of 1).
    pub const ALL: FeedGroup = FeedGroup { index: 0, count: 1 };

    /// Group `index` of `count`; refused unless `count` divides [`FEED_SHARDS`] (so every
    /// group has as many shards) and `index` is below `count`.
    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        // 16 is no multiple of 0: a count of 0 is refused here too.
        if !FEED_SHARDS.is_multiple_of(count) {
            let counts: Vec<String> = (1..=FEED_SHARDS)
                .filter(|&c| FEED_SHARDS.is_multiple_of(c))
                .map(|c| c.to_string())
                .collect();
            return Err(format!(
                "{count} publisher groups: the count must divide the feed's {FEED_SHARDS} shards ({})",
                counts.join(", ")
            ));
        }
        if index >= count {
            return Err(format!(
                "publisher group {index} of {count}: groups are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// This group's number, from 0.
    pub fn index(self) -> usize {
        self.index
    }

    /// How many groups share the feed.
    pub fn count(self) -> usize {
        self.count
    }

    /// Whether `shard` is this group's.
    pub fn contains(self, shard: usize) -> bool {
        shard < FEED_SHARDS && shard % self.count == self.index
    }

    /// This group's shards, in order.
    pub fn shards(self) -> impl Iterator<Item = usize> {
        (0..FEED_SHARDS).filter(move |&n| self.contains(n))
    }
}

impl std::fmt::Display for FeedGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group {} of {}", self.index, self.count)
    }
}

/// What one read of the feed gave: the changes, oldest first per shard, and where each shard
/// now stands.
#[derive(Debug, Default)]
pub struct FeedRead {
    /// The changes read.
    pub changes: Vec<(WorldId, Change)>,
    /// Per shard, the id of the last entry read (unchanged shards absent).
    pub positions: Vec<(usize, String)>,
    /// Entries that could not be read back (skipped).
    pub unreadable: usize,
}

/// One command per shard of `shards`, built by `cmd`.
fn per_shard(shards: &[usize], cmd: impl Fn(usize) -> redis::Cmd) -> Vec<redis::Cmd> {
    shards.iter().map(|&n| cmd(n)).collect()
}

/// The shards of `shards` whose answer was `yes`.
fn answered<T>(shards: &[usize], answers: Vec<T>, yes: impl Fn(&T) -> bool) -> Vec<usize> {
    shards
        .iter()
        .zip(answers)
        .filter(|(_, a)| yes(a))
        .map(|(&n, _)| n)
        .collect()
}

impl RedisStore {
    /// Appends `changes` of `world` to the feed: one command per shard touched, in one round
    /// trip.
    pub async fn append_changes(
        &self,
        world: &WorldId,
        changes: &[Change],
    ) -> Result<(), StoreError> {
        let mut cmds = Vec::new();
        for change in changes {
            let mut c = redis::cmd("XADD");
            c.arg(stream_key(feed_shard(world, Region::of(change.chunk))))
                .arg("MAXLEN")
                .arg("~")
                .arg(FEED_MAX_LEN)
                .arg("*")
                .arg("w")
                .arg(world.as_str())
                .arg("c")
                .arg(change.to_text());
            cmds.push(c);
        }
        if cmds.is_empty() {
            return Ok(());
        }
        let _: Vec<redis::Value> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Where publishing stands in each of `shards`, as `(shard, entry id)`: where the last
    /// holder left off, or, for a shard no publisher read yet, its current end (a first
    /// publisher does not replay history).
    pub async fn feed_positions(
        &self,
        shards: &[usize],
    ) -> Result<Vec<(usize, String)>, StoreError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = per_shard(shards, |n| {
            let mut c = redis::cmd("GET");
            c.arg(cursor_key(n));
            c
        });
        let at: Vec<Option<String>> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        let ends = per_shard(shards, |n| {
            let mut c = redis::cmd("XREVRANGE");
            c.arg(stream_key(n)).arg("+").arg("-").arg("COUNT").arg(1);
            c
        });
        type Last = Vec<(String, Vec<(String, String)>)>;
        let ends: Vec<Last> = self.run_all(ends).await.map_err(|e| unavailable(&e))?;
        Ok(shards
            .iter()
            .zip(at.into_iter().zip(ends))
            .map(|(&n, (at, end))| {
                let id = at
                    .or_else(|| end.into_iter().next().map(|(id, _)| id))
                    .unwrap_or_else(|| "0-0".into());
                (n, id)
            })
            .collect())
    }

    /// Reads what is new after `positions` (`(shard, entry id)`, one per shard read), without
    /// waiting, and moves each position past what was read.
    pub async fn read_feed(
        &self,
        positions: &mut [(usize, String)],
    ) -> Result<FeedRead, StoreError> {
        if positions.is_empty() {
            return Ok(FeedRead::default());
        }
        let cmds = positions
            .iter()
            .map(|(n, at)| {
                let mut c = redis::cmd("XREAD");
                c.arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("STREAMS")
                    .arg(stream_key(*n))
                    .arg(at);
                c
            })
            .collect();
        type Entries = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;
        let replies: Vec<Option<Entries>> =
            self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        let mut read = FeedRead::default();
        for ((n, at), reply) in positions.iter_mut().zip(replies) {
            let entries = reply.into_iter().flatten().flat_map(|(_, e)| e);
            let mut last = None;
            for (id, fields) in entries {
                last = Some(id);
                let field = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
                match (
                    field("w").and_then(|w| WorldId::new(w).ok()),
                    field("c").and_then(|c| Change::parse(c).ok()),
                ) {
                    (Some(w), Some(c)) => read.changes.push((w, c)),
                    _ => read.unreadable += 1,
                }
            }
            if let Some(id) = last {
                at.clone_from(&id);
                read.positions.push((*n, id));
            }
        }
        Ok(read)
    }

    /// Remembers where `holder` stands in each shard of `positions` (for the next holder),
    /// in each shard whose lease it still holds; answers the shards it no longer holds (whose
    /// positions were left as they were).
    pub async fn save_feed_positions(
        &self,
        holder: &str,
        positions: &[(usize, String)],
    ) -> Result<Vec<usize>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = positions
            .iter()
            .map(|(n, id)| {
                let mut c = redis::cmd("EVAL");
                c.arg(SAVE_SCRIPT)
                    .arg(2)
                    .arg(lease_key(*n))
                    .arg(cursor_key(*n))
                    .arg(holder)
                    .arg(id);
                c
            })
            .collect();
        let saved: Vec<i64> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        let shards: Vec<usize> = positions.iter().map(|(n, _)| *n).collect();
        Ok(answered(&shards, saved, |s| *s != 1))
    }

    /// Takes, for `ttl`, the lease of each shard of `shards` that nobody holds (all in one
    /// round trip); answers the shards taken.
    pub async fn take_feed_leases(
        &self,
        holder: &str,
        shards: &[usize],
        ttl: Duration,
    ) -> Result<Vec<usize>, StoreError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = per_shard(shards, |n| {
            let mut c = redis::cmd("SET");
            c.arg(lease_key(n))
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64);
            c
        });
        let taken: Vec<Option<String>> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(answered(shards, taken, Option::is_some))
    }

    /// Extends, for `ttl`, each lease of `shards` that `holder` still has; answers the shards
    /// it still holds.
    pub async fn renew_feed_leases(
        &self,
        holder: &str,
        shards: &[usize],
        ttl: Duration,
    ) -> Result<Vec<usize>, StoreError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = per_shard(shards, |n| {
            let mut c = redis::cmd("EVAL");
            c.arg(RENEW_SCRIPT)
                .arg(1)
                .arg(lease_key(n))
                .arg(holder)
                .arg(ttl.as_millis() as u64);
            c
        });
        let renewed: Vec<i64> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(answered(shards, renewed, |r| *r == 1))
    }

    /// Gives up each lease of `shards` that `holder` still has, so the next run of its group
    /// takes those shards over at once.
    pub async fn release_feed_leases(
        &self,
        holder: &str,
        shards: &[usize],
    ) -> Result<(), StoreError> {
        if shards.is_empty() {
            return Ok(());
        }
        let cmds = per_shard(shards, |n| {
            let mut c = redis::cmd("EVAL");
            c.arg(RELEASE_SCRIPT).arg(1).arg(lease_key(n)).arg(holder);
            c
        });
        let _: Vec<i64> = self.run_all(cmds).await.map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_the_shards_evenly_and_each_shard_is_in_exactly_one() {
        for count in [1, 2, 4, 8, 16] {
            let groups: Vec<FeedGroup> = (0..count)
                .map(|i| FeedGroup::new(i, count).unwrap())
                .collect();
            for n in 0..FEED_SHARDS {
                assert_eq!(groups.iter().filter(|g| g.contains(n)).count(), 1);
            }
            for g in &groups {
                let shards: Vec<usize> = g.shards().collect();
                assert_eq!(shards.len(), FEED_SHARDS / count);
                assert!(shards.iter().all(|&n| g.contains(n)));
            }
        }
        assert_eq!(FeedGroup::ALL, FeedGroup::new(0, 1).unwrap());
        assert_eq!(
            FeedGroup::new(1, 4).unwrap().shards().collect::<Vec<_>>(),
            [1, 5, 9, 13]
        );
        assert_eq!(FeedGroup::new(3, 8).unwrap().to_string(), "group 3 of 8");
    }

    #[test]
    fn a_group_that_does_not_split_the_shards_evenly_is_refused_by_name() {
        for count in [0, 3, 5, 32] {
            let e = FeedGroup::new(0, count).unwrap_err();
            assert!(e.contains(&format!("{count} publisher groups")), "{e}");
            assert!(e.contains("1, 2, 4, 8, 16"), "{e}");
        }
        let e = FeedGroup::new(2, 2).unwrap_err();
        assert_eq!(e, "publisher group 2 of 2: groups are numbered 0 to 1");
    }

    #[test]
    fn a_shards_keys_share_its_hash_slot() {
        // Redis Cluster hashes only the text between the first `{` and the next `}`.
        let tag = |key: String| {
            let open = key.find('{').unwrap();
            let close = open + key[open..].find('}').unwrap();
            key[open + 1..close].to_owned()
        };
        for n in 0..FEED_SHARDS {
            assert_eq!(tag(stream_key(n)), n.to_string());
            assert_eq!(tag(cursor_key(n)), n.to_string());
            assert_eq!(tag(lease_key(n)), n.to_string());
        }
    }
}
