//! One suite of subscription-index semantics, run against the in-memory index, a real
//! `redis-server`, a Redis Cluster and the deployment's restricted Redis user.

use cubewalk_protocol::realtime::MAX_SUBSCRIBED_CHUNKS;
use cubewalk_protocol::{ChunkKey, WorldId};
use cubewalk_server::realtime::{MemorySubscriptions, Subscriptions, SUBSCRIPTION_TTL};
use cubewalk_server::store::{RedisStore, RedisStoreConfig};
use cubewalk_testkit::{RedisCluster, RedisServer};

mod common;

fn k(x: i32) -> ChunkKey {
    ChunkKey::new(x, -x, 3)
}

async fn followers(index: &dyn Subscriptions, world: &WorldId, x: i32) -> Vec<String> {
    index.followers(world, &[k(x)]).await.unwrap().remove(0)
}

async fn follow_replace_unfollow_disconnect(index: &dyn Subscriptions) {
    let w = WorldId::default();
    let other = WorldId::new("other").unwrap();
    index.subscribe("a", &w, &[k(0), k(1)]).await.unwrap();
    index.subscribe("b", &w, &[k(1)]).await.unwrap();
    assert_eq!(followers(index, &w, 1).await, ["a", "b"]);
    assert_eq!(followers(index, &w, 0).await, ["a"]);
    assert!(
        followers(index, &other, 0).await.is_empty(),
        "worlds are separate"
    );
    // Several chunks in one lookup, in order.
    let many = index.followers(&w, &[k(1), k(9), k(0)]).await.unwrap();
    assert_eq!(many, vec![vec!["a", "b"], vec![], vec!["a"]]);
    // A new subscription replaces the old one, also across worlds.
    index.subscribe("a", &w, &[k(2)]).await.unwrap();
    assert_eq!(followers(index, &w, 1).await, ["b"]);
    assert_eq!(followers(index, &w, 2).await, ["a"]);
    index.subscribe("a", &other, &[k(2)]).await.unwrap();
    assert!(followers(index, &w, 2).await.is_empty());
    assert_eq!(followers(index, &other, 2).await, ["a"]);
    index.unsubscribe("b", &[k(1), k(7)]).await.unwrap();
    assert!(followers(index, &w, 1).await.is_empty());
    index.unsubscribe("nobody", &[k(1)]).await.unwrap();
    index.disconnect("a").await.unwrap();
    index.disconnect("b").await.unwrap();
    index.disconnect("never-connected").await.unwrap();
    assert!(followers(index, &other, 2).await.is_empty());
}

async fn bounded_per_connection(index: &dyn Subscriptions) {
    let w = WorldId::new("bounded").unwrap();
    let chunks: Vec<ChunkKey> = (0..MAX_SUBSCRIBED_CHUNKS as i32 + 100).map(k).collect();
    index.subscribe("big", &w, &chunks).await.unwrap();
    let all = index.followers(&w, &chunks).await.unwrap();
    let followed = all.iter().filter(|f| !f.is_empty()).count();
    assert_eq!(followed, MAX_SUBSCRIBED_CHUNKS);
    index.disconnect("big").await.unwrap();
    let all = index.followers(&w, &chunks).await.unwrap();
    assert!(all.iter().all(Vec::is_empty));
}

/// Whose connections are whose: counted as they register, listed for a ban, forgotten at
/// disconnect (whether or not the connection ever subscribed).
async fn players_connections(index: &dyn Subscriptions) {
    let w = WorldId::default();
    assert_eq!(index.register("p1", "zoe").await.unwrap(), 1);
    assert_eq!(index.register("p2", "zoe").await.unwrap(), 2);
    assert_eq!(index.register("p2", "zoe").await.unwrap(), 2, "idempotent");
    assert_eq!(index.register("q1", "yan").await.unwrap(), 1);
    index.subscribe("p1", &w, &[k(7)]).await.unwrap();
    index.unsubscribe("p1", &[k(7)]).await.unwrap();
    assert_eq!(index.connections_of("zoe").await.unwrap(), ["p1", "p2"]);
    index.disconnect("p1").await.unwrap();
    index.disconnect("p2").await.unwrap();
    index.disconnect("q1").await.unwrap();
    assert!(index.connections_of("zoe").await.unwrap().is_empty());
    assert!(index.connections_of("yan").await.unwrap().is_empty());
}

async fn run_suite(index: &dyn Subscriptions) {
    players_connections(index).await;
    follow_replace_unfollow_disconnect(index).await;
    bounded_per_connection(index).await;
}

#[tokio::test]
async fn memory_index_suite() {
    let index = MemorySubscriptions::new();
    run_suite(&index).await;
    assert_eq!(index.connections(), 0, "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_index_suite_leaves_nothing_and_everything_expires() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    run_suite(&store).await;
    assert_eq!(
        redis.command(&["DBSIZE"]).as_deref(),
        Some(":0"),
        "keys left behind"
    );

    // Every key the index writes expires on its own (a lost $disconnect leaves nothing for
    // long), a little after API Gateway's 2-hour connection lifetime.
    store
        .subscribe("c", &WorldId::default(), &[k(0), k(1)])
        .await
        .unwrap();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "KEYS", "*"])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&out.stdout).to_string();
    let ttl_max = SUBSCRIPTION_TTL.as_secs();
    let mut n = 0;
    for key in keys.lines().filter(|l| l.starts_with("cw:")) {
        let ttl: u64 = redis
            .command(&["TTL", key])
            .unwrap()
            .trim_start_matches(':')
            .parse()
            .unwrap();
        assert!(ttl > 7200 && ttl <= ttl_max, "{key}: ttl {ttl}");
        n += 1;
    }
    assert_eq!(
        n, 3,
        "two chunks' follower sets and the connection's record: {keys}"
    );
    // A follower whose expiry passed is not answered, even while its set lives on.
    redis.command(&["ZADD", "cw:{default:0,0,3}:subs", "1", "stale"]);
    assert_eq!(followers(&store, &WorldId::default(), 0).await, ["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_index_suite() {
    let cluster = RedisCluster::start();
    let mut config = RedisStoreConfig::new(cluster.url());
    config.cluster = true;
    let store = RedisStore::connect(&config).await.unwrap();
    run_suite(&store).await;
    // A connection following chunks spread over every node.
    let w = WorldId::default();
    let chunks: Vec<ChunkKey> = (0..64).map(k).collect();
    store.subscribe("spread", &w, &chunks).await.unwrap();
    let all = store.followers(&w, &chunks).await.unwrap();
    assert!(all.iter().all(|f| f == &["spread"]));
    let keys = cluster.keys_per_node();
    assert!(
        keys.iter().all(|&n| n > 0),
        "follower sets spread over every node: {keys:?}"
    );
    store.disconnect("spread").await.unwrap();
    assert_eq!(cluster.keys_per_node(), vec![0; 3], "nodes kept keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployments_redis_user_can_keep_the_index() {
    let redis = RedisServer::start();
    let url = common::template_user_url(&redis, "cubewalk-realtime");
    let store = RedisStore::connect(&RedisStoreConfig::new(url))
        .await
        .unwrap();
    run_suite(&store).await;
}
