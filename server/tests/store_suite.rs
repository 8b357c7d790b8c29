//! One suite of store semantics, run against the embedded store and a real `redis-server`.

use cubewalk_protocol::codec::{decode_chunk, fixtures};
use cubewalk_protocol::{ChunkKey, CubeRef, WorldId};
use cubewalk_server::store::{ChunkStore, MemoryStore, RedisStore, RedisStoreConfig, StoreError};
use cubewalk_testkit::RedisServer;
use std::sync::Arc;

fn world(s: &str) -> WorldId {
    WorldId::new(s).unwrap()
}

fn set(index: u16, value: i32) -> CubeRef {
    CubeRef { index, value }
}

async fn never_written_reads_empty_at_zero(store: &dyn ChunkStore) {
    let got = store
        .fetch(&world("fresh"), &[ChunkKey::new(5, -5, 5)])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, 0);
    assert!(got[0].blob.is_empty());
    assert!(store.fetch(&world("fresh"), &[]).await.unwrap().is_empty());
}

async fn put_then_fetch_round_trips(store: &dyn ChunkStore) {
    let w = world("roundtrip");
    let a = ChunkKey::new(0, 0, 0);
    let b = ChunkKey::new(-1, 2, i32::MIN);
    let v = store
        .apply(
            &w,
            &[
                (a, vec![set(0, 7), set(4095, -9)]),
                (b, vec![set(17, i32::MAX)]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(v, vec![1, 1]);
    let got = store
        .fetch(&w, &[b, a, ChunkKey::new(9, 9, 9)])
        .await
        .unwrap();
    let cb = decode_chunk(&got[0].blob).unwrap();
    let ca = decode_chunk(&got[1].blob).unwrap();
    assert_eq!((ca[0], ca[4095], ca[1]), (7, -9, 0));
    assert_eq!(cb[17], i32::MAX);
    assert_eq!(got[2].version, 0);
    // A later edit of the same cube in one batch wins.
    let v = store
        .apply(&w, &[(a, vec![set(1, 1), set(1, 2)])])
        .await
        .unwrap();
    assert_eq!(v, vec![2]);
    let ca = decode_chunk(&store.fetch(&w, &[a]).await.unwrap()[0].blob).unwrap();
    assert_eq!((ca[0], ca[1]), (7, 2));
}

async fn unchanged_batch_keeps_version_and_emptied_chunk_keeps_version(store: &dyn ChunkStore) {
    let w = world("versions");
    let k = ChunkKey::new(3, 3, 3);
    assert_eq!(
        store.apply(&w, &[(k, vec![set(5, 1)])]).await.unwrap(),
        vec![1]
    );
    assert_eq!(
        store.apply(&w, &[(k, vec![set(5, 1)])]).await.unwrap(),
        vec![1]
    );
    assert_eq!(
        store.apply(&w, &[(k, vec![set(5, 0)])]).await.unwrap(),
        vec![2]
    );
    let got = store.fetch(&w, &[k]).await.unwrap();
    assert_eq!(got[0].version, 2);
    assert!(got[0].blob.is_empty(), "an emptied chunk stores no data");
}

async fn worlds_are_separate(store: &dyn ChunkStore) {
    let k = ChunkKey::new(0, 0, 0);
    store
        .apply(&world("w-a"), &[(k, vec![set(0, 1)])])
        .await
        .unwrap();
    let other = store.fetch(&world("w-b"), &[k]).await.unwrap();
    assert_eq!(other[0].version, 0);
}

async fn whole_chunk_fixtures_survive(store: &dyn ChunkStore) {
    let w = world("fixtures");
    for (i, chunk) in [fixtures::terrain(), fixtures::solid(), fixtures::random(3)]
        .into_iter()
        .enumerate()
    {
        let k = ChunkKey::new(i as i32, 0, 0);
        let edits: Vec<CubeRef> = chunk
            .iter()
            .enumerate()
            .map(|(i, &v)| set(i as u16, v))
            .collect();
        store.apply(&w, &[(k, edits)]).await.unwrap();
        let got = store.fetch(&w, &[k]).await.unwrap();
        assert_eq!(*decode_chunk(&got[0].blob).unwrap(), *chunk);
    }
}

/// `writers` tasks edit one chunk at once: each owns some cubes and also writes one shared cube.
/// Every owned cube must end at its writer's last value (no lost update), and each writer's
/// acknowledged versions must strictly grow.
async fn concurrent_writers_lose_nothing(store: Arc<dyn ChunkStore>, writers: u16, edits: i32) {
    let w = world("contended");
    let k = ChunkKey::new(1, 1, 1);
    let mut tasks = Vec::new();
    for id in 0..writers {
        let store = store.clone();
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut last_version = 0;
            for n in 1..=edits {
                // Two owned cubes per writer, alternating, plus the shared cube 4095.
                let own = id * 2 + (n % 2) as u16;
                let v = store
                    .apply(&w, &[(k, vec![set(own, n), set(4095, i32::from(id))])])
                    .await
                    .expect("apply");
                assert!(v[0] > last_version, "versions must grow for each writer");
                last_version = v[0];
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = store.fetch(&w, &[k]).await.unwrap();
    let c = decode_chunk(&got[0].blob).unwrap();
    for id in 0..writers {
        let (even, odd) = (c[usize::from(id * 2)], c[usize::from(id * 2 + 1)]);
        let expect_even = if edits % 2 == 0 { edits } else { edits - 1 };
        let expect_odd = if edits % 2 == 1 { edits } else { edits - 1 };
        assert_eq!(
            (even, odd),
            (expect_even, expect_odd),
            "writer {id} lost an edit"
        );
    }
    assert!((0..i32::from(writers)).contains(&c[4095]));
    assert!(got[0].version >= u64::from(writers) * 2);
}

async fn run_suite(store: Arc<dyn ChunkStore>) {
    never_written_reads_empty_at_zero(store.as_ref()).await;
    put_then_fetch_round_trips(store.as_ref()).await;
    unchanged_batch_keeps_version_and_emptied_chunk_keeps_version(store.as_ref()).await;
    worlds_are_separate(store.as_ref()).await;
    whole_chunk_fixtures_survive(store.as_ref()).await;
    concurrent_writers_lose_nothing(store, 8, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_suite() {
    run_suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_suite() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    run_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn redis_stores_chunks_compactly() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    let w = world("compact");
    let terrain = fixtures::terrain();
    let edits: Vec<CubeRef> = terrain
        .iter()
        .enumerate()
        .map(|(i, &v)| set(i as u16, v))
        .collect();
    store
        .apply(&w, &[(ChunkKey::new(0, 0, 0), edits)])
        .await
        .unwrap();
    let usage = redis
        .command(&["MEMORY", "USAGE", "cw:{compact:0,0,0}"])
        .unwrap();
    let bytes: usize = usage.trim_start_matches(':').parse().unwrap();
    assert!(bytes < 1024, "terrain chunk uses {bytes} bytes in Redis");
    // Reading a chunk never written stores nothing.
    store.fetch(&w, &[ChunkKey::new(7, 7, 7)]).await.unwrap();
    assert_eq!(
        redis.command(&["EXISTS", "cw:{compact:7,7,7}"]).unwrap(),
        ":0"
    );
}

#[tokio::test]
async fn redis_down_is_unavailable_and_recovers() {
    let mut redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    let w = world("faults");
    let k = ChunkKey::new(0, 0, 0);
    store.apply(&w, &[(k, vec![set(0, 1)])]).await.unwrap();
    redis.kill();
    let err = store.fetch(&w, &[k]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let err = store.apply(&w, &[(k, vec![set(0, 2)])]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    redis.restart();
    // The same store object reconnects by itself (the data was not persisted).
    let mut ok = false;
    for _ in 0..50 {
        if store.fetch(&w, &[k]).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "store did not reconnect after Redis restarted");
}

#[tokio::test]
async fn redis_survives_killed_connection() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    let w = world("killed");
    let k = ChunkKey::new(0, 0, 0);
    store.apply(&w, &[(k, vec![set(0, 1)])]).await.unwrap();
    // What a long idle behind a NAT or a frozen Lambda looks like: the server drops us.
    assert!(redis
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .is_some());
    let got = store
        .fetch(&w, &[k])
        .await
        .expect("fetch after the connection was killed");
    assert_eq!(got[0].version, 1);
    assert!(redis
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .is_some());
    let v = store
        .apply(&w, &[(k, vec![set(1, 5)])])
        .await
        .expect("put after kill");
    assert_eq!(v, vec![2]);
}

#[tokio::test]
async fn unreachable_redis_fails_fast_with_unavailable() {
    let port = cubewalk_testkit::free_port();
    let store =
        RedisStore::connect_lazy(&RedisStoreConfig::new(format!("redis://127.0.0.1:{port}")))
            .unwrap();
    let err = store
        .fetch(&world("x"), &[ChunkKey::new(0, 0, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_suite() {
    let cluster = cubewalk_testkit::RedisCluster::start();
    let mut config = RedisStoreConfig::new(cluster.url());
    config.cluster = true;
    let store = RedisStore::connect(&config).await.unwrap();
    // Chunks of one fetch land on different nodes: the suite's multi-chunk reads and writes
    // cross slots and nodes.
    run_suite(Arc::new(store.clone())).await;
    let keys: Vec<ChunkKey> = (0..64).map(|i| ChunkKey::new(i, -i, 7)).collect();
    let w = world("spread");
    let edits: Vec<_> = keys
        .iter()
        .map(|&k| (k, vec![set(1, k.x + 1000)]))
        .collect();
    assert_eq!(store.apply(&w, &edits).await.unwrap(), vec![1; 64]);
    let got = store.fetch(&w, &keys).await.unwrap();
    for (k, c) in keys.iter().zip(got) {
        assert_eq!(decode_chunk(&c.blob).unwrap()[1], k.x + 1000);
    }
    let mut nodes_with_keys = 0;
    for p in &cluster.ports {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &p.to_string(), "DBSIZE"])
            .output()
            .unwrap();
        let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        nodes_with_keys += u32::from(n > 0);
    }
    assert_eq!(nodes_with_keys, 3, "chunks spread over every node");
}

#[tokio::test]
async fn redis_over_tls_with_user_and_password() {
    let redis = RedisServer::start_tls();
    let mut config = RedisStoreConfig::new(redis.tls_url(cubewalk_testkit::TLS_USER.1));
    config.ca_pem = redis.ca_pem.clone();
    let store = RedisStore::connect(&config)
        .await
        .expect("TLS + ACL connect");
    let w = world("tls");
    let k = ChunkKey::new(0, 0, 0);
    assert_eq!(
        store.apply(&w, &[(k, vec![set(3, 9)])]).await.unwrap(),
        vec![1]
    );
    assert_eq!(
        decode_chunk(&store.fetch(&w, &[k]).await.unwrap()[0].blob).unwrap()[3],
        9
    );

    // A wrong password is refused with a clear error that does not repeat the password.
    let mut wrong = RedisStoreConfig::new(redis.tls_url("not-the-password"));
    wrong.ca_pem = redis.ca_pem.clone();
    let err = RedisStore::connect(&wrong).await.unwrap_err().to_string();
    assert!(
        err.contains("WRONGPASS") || err.to_lowercase().contains("auth"),
        "unclear error: {err}"
    );
    assert!(!err.contains("not-the-password"));

    // Without the private CA the certificate is not trusted.
    let untrusted = RedisStoreConfig::new(redis.tls_url(cubewalk_testkit::TLS_USER.1));
    let err = RedisStore::connect(&untrusted)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate"),
        "unclear error: {err}"
    );
}
