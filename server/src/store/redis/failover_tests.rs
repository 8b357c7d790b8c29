//! Why the check-and-set compares the stored revision and not a counter alone (issue 22):
//! a writer reads a chunk from a primary, a failover loses the write it read, another writer
//! writes new content on the promoted replica, and then the first writer's script is sent
//! (again) to the new primary, as a cluster client resends a command after a failover.
//!
//! Under the old scheme (the sequence `v` a counter, the check comparing `v` alone) the
//! promoted replica counts up to the very `v` the writer read, with other content, so the
//! script passes and overwrites an acknowledged edit. Under the current one the check fails
//! and the writer reads again. Both run on one real failover ([`RedisPair`]); the old script
//! is reproduced here (it is no longer in the store), the current one is the store's own.

use super::{cas_cmd, RedisStore, RedisStoreConfig};
use crate::store::{edit_blob, ChunkStore, Edits, Put};
use cubewalk_protocol::codec::decode_chunk;
use cubewalk_protocol::{ChunkKey, CubeRef, WorldId};
use cubewalk_testkit::RedisPair;

/// The old check-and-set, reduced to its check: the sequence read against the stored one,
/// then the counter incremented.
const OLD_CAS_SCRIPT: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'v', v + 1, 'd', ARGV[2])
return v + 1
";

/// Runs the old script over the chunk `key`: `Some(new v)` when the check passed.
async fn old_put(store: &RedisStore, key: &str, v_read: u64, content: &str) -> Option<u64> {
    let mut c = redis::cmd("EVAL");
    c.arg(OLD_CAS_SCRIPT)
        .arg(1)
        .arg(key)
        .arg(v_read)
        .arg(content);
    store.query(&c).await.unwrap()
}

/// Reads the old-scheme chunk `key`: its `v` and content.
async fn old_read(store: &RedisStore, key: &str) -> (u64, String) {
    let mut c = redis::cmd("HMGET");
    c.arg(key).arg("v").arg("d");
    let (v, d): (Option<u64>, Option<String>) = store.query(&c).await.unwrap();
    (v.unwrap_or(0), d.unwrap_or_default())
}

fn set(index: u16, value: i32) -> CubeRef {
    CubeRef { index, value }
}

/// Waits until the replica holds everything written so far.
async fn replicated(store: &RedisStore) {
    let mut c = redis::cmd("WAIT");
    c.arg(1).arg(5000);
    let reached: u64 = store.query(&c).await.unwrap();
    assert_eq!(reached, 1, "the replica did not catch up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_resent_after_a_failover_passes_only_a_counter_check() {
    let mut pair = tokio::task::block_in_place(RedisPair::start);
    let store = RedisStore::connect(&RedisStoreConfig::new(pair.url()))
        .await
        .unwrap();
    let world = WorldId::new("fence").unwrap();
    let k = ChunkKey::new(0, 0, 0);
    let old_key = "old-scheme-chunk";

    // A1: written and replicated, under both schemes.
    assert_eq!(old_put(&store, old_key, 0, "A1").await, Some(1));
    store
        .apply(&world, &[(k, vec![set(1, 1)])], None)
        .await
        .unwrap();
    replicated(&store).await;

    // A2: acknowledged by the primary, never received by the replica.
    pair.hold_replication();
    assert_eq!(old_put(&store, old_key, 1, "A1 A2").await, Some(2));
    store
        .apply(&world, &[(k, vec![set(2, 2)])], None)
        .await
        .unwrap();

    // X reads both chunks from the old primary and prepares its write.
    let (old_v, old_content) = old_read(&store, old_key).await;
    assert_eq!((old_v, old_content.as_str()), (2, "A1 A2"));
    let read = store.fetch(&world, &[k]).await.unwrap().remove(0);
    let x_edit = [set(3, 3)];
    let edited = edit_blob(&world, k, &read, Edits::Plain(&x_edit)).unwrap();

    // Failover: the promoted replica never saw A2.
    tokio::task::block_in_place(|| pair.fail_over());
    let mut promoted = None;
    for _ in 0..50 {
        match store.fetch(&world, &[k]).await {
            Ok(mut c) => {
                promoted = Some(c.remove(0));
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let promoted = promoted.expect("the promoted replica never answered");
    assert_eq!(decode_chunk(&promoted.blob).unwrap()[2], 0, "A2 was lost");

    // B writes new content over what the promoted replica holds, and is acknowledged.
    let (b_v, _) = old_read(&store, old_key).await;
    assert_eq!(b_v, 1);
    assert_eq!(old_put(&store, old_key, b_v, "A1 B").await, Some(2));
    store
        .apply_edits(&world, &[(k, vec![set(5, 222)])], &Put::system())
        .await
        .unwrap();

    // X's script arrives now. The old check sees the `v` it read (B's write counted up to it
    // again) and overwrites B's acknowledged edit with content derived from the lost A2.
    assert_eq!(old_put(&store, old_key, old_v, "A1 A2 X").await, Some(3));
    assert_eq!(
        old_read(&store, old_key).await.1,
        "A1 A2 X",
        "B's edit is gone"
    );

    // The store's check compares the revision X read, which no later write can draw again.
    let c = cas_cmd(
        &world,
        k,
        &Put::system(),
        &read,
        &read.revision.to_string(),
        &edited,
        &format!("{:016x}", 0),
    );
    let answer: Option<String> = store.query(&c).await.unwrap();
    assert_eq!(answer, None, "the stale check-and-set passed");

    // Refused, X's put reads again and applies over B's content: B's edit stays, the lost A2
    // does not come back.
    store
        .apply_edits(&world, &[(k, x_edit.to_vec())], &Put::system())
        .await
        .unwrap();
    let now = store.fetch(&world, &[k]).await.unwrap().remove(0);
    let cubes = decode_chunk(&now.blob).unwrap();
    assert_eq!((cubes[1], cubes[2], cubes[3], cubes[5]), (1, 0, 3, 222));
}
