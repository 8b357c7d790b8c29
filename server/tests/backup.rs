//! World export and import against a real `redis-server` (and a Redis Cluster): the restore
//! drill (export, flush, import: every chunk byte-identical with the same revision and
//! sequence), refusals that write nothing, and the `world` commands of the binary.

use cubewalk_protocol::codec::encode_chunk;
use cubewalk_protocol::{ChunkKey, CubeRef, IdempotencyKey, WorldId, CHUNK_CUBES};
use cubewalk_server::store::backup::{
    export_world, import_world, parse_chunk_key, BackupError, ImportMode,
};
use cubewalk_server::store::{redis_chunk_key, ChunkStore, Put, RedisStore, RedisStoreConfig};
use cubewalk_testkit::{RedisCluster, RedisServer};
use rand::Rng;
use std::collections::BTreeMap;

fn world(s: &str) -> WorldId {
    WorldId::new(s).unwrap()
}

/// A raw connection, to write what the store's API cannot (chunks of an older version) and
/// to read each chunk's hash exactly as stored.
enum Raw {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn open(url: &str, cluster: bool) -> Self {
        if cluster {
            let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
            Self::Cluster(client.get_async_connection().await.unwrap())
        } else {
            let client = redis::Client::open(url).unwrap();
            Self::Single(client.get_multiplexed_async_connection().await.unwrap())
        }
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Self::Single(c) => cmd.query_async(c).await.unwrap(),
            Self::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }

    /// Every field of each chunk's hash, as stored.
    async fn chunks(
        &mut self,
        w: &WorldId,
        keys: &[ChunkKey],
    ) -> BTreeMap<ChunkKey, BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for &k in keys {
            let mut c = redis::cmd("HGETALL");
            c.arg(redis_chunk_key(w, k));
            out.insert(k, self.query(&c).await);
        }
        out
    }
}

/// The store under test and how to empty it.
struct Target {
    store: RedisStore,
    raw: Raw,
    url: String,
    cluster: bool,
    /// Each node's port (one for a single server), for FLUSHALL and DBSIZE.
    ports: Vec<u16>,
}

impl Target {
    async fn new(url: String, cluster: bool, ports: Vec<u16>) -> Self {
        let mut config = RedisStoreConfig::new(url.clone());
        config.cluster = cluster;
        Self {
            store: RedisStore::connect(&config).await.unwrap(),
            raw: Raw::open(&url, cluster).await,
            url,
            cluster,
            ports,
        }
    }

    fn redis_cli(&self, port: u16, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Empties every node, as a lost store would be.
    fn flush_all(&self) {
        for &p in &self.ports {
            assert_eq!(self.redis_cli(p, &["FLUSHALL"]), "OK");
        }
    }

    /// Keys held on each node.
    fn key_counts(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| self.redis_cli(p, &["DBSIZE"]).parse().unwrap())
            .collect()
    }

    fn total_keys(&self) -> u64 {
        self.key_counts().iter().sum()
    }
}

/// A random edit list: a few cubes, or many (long runs and scattered values), on `key`.
fn random_edits(rng: &mut impl Rng, key: ChunkKey) -> (ChunkKey, Vec<CubeRef>) {
    let n = if rng.random_bool(0.2) { 600 } else { 12 };
    let edits = (0..n)
        .map(|_| CubeRef {
            index: rng.random_range(0..CHUNK_CUBES as u16),
            value: if rng.random_bool(0.5) {
                rng.random_range(1..8)
            } else {
                rng.random()
            },
        })
        .collect();
    (key, edits)
}

/// Fills the store: `count` chunks of world `w` written through the store (some twice, some
/// under idempotency keys, some written then emptied to all air, two as an older version
/// wrote them, without a revision), and around them what an export must leave out: logs,
/// idempotency records, players' keys and other worlds' chunks (one named like `w` plus a
/// character). Answers `w`'s chunks.
async fn populate(t: &mut Target, w: &WorldId, count: usize) -> Vec<ChunkKey> {
    let mut rng = rand::rng();
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < count {
        keys.insert(ChunkKey::new(
            rng.random_range(-40..40),
            rng.random_range(-8..8),
            rng.random_range(-40..40),
        ));
    }
    let keys: Vec<ChunkKey> = keys.into_iter().collect();
    for (i, batch) in keys.chunks(25).enumerate() {
        let edits: Vec<_> = batch.iter().map(|&k| random_edits(&mut rng, k)).collect();
        let key = IdempotencyKey::new(&format!("backup-drill-{i:08}")).unwrap();
        let put = Put {
            player: "alice",
            key: (i % 2 == 0).then_some(&key),
            request_hash: i as u64,
            ..Put::system()
        };
        t.store.apply_edits(w, &edits, &put).await.unwrap();
    }
    // A second write on some: sequences and revisions that moved on.
    let again: Vec<_> = keys
        .iter()
        .step_by(7)
        .map(|&k| random_edits(&mut rng, k))
        .collect();
    t.store.apply(w, &again, None).await.unwrap();
    // Written, then emptied: all air again, with a sequence and the all-air revision, no blob.
    for &k in keys.iter().skip(3).step_by(40) {
        let set = vec![CubeRef { index: 9, value: 4 }];
        t.store.apply(w, &[(k, set)], None).await.unwrap();
        let current = t.store.fetch(w, &[k]).await.unwrap().remove(0);
        let cubes = cubewalk_protocol::codec::decode_chunk(&current.blob).unwrap();
        let clear: Vec<CubeRef> = (0..CHUNK_CUBES as u16)
            .filter(|&i| cubes[usize::from(i)] != 0)
            .map(|index| CubeRef { index, value: 0 })
            .collect();
        t.store.apply(w, &[(k, clear)], None).await.unwrap();
        let now = t.store.fetch(w, &[k]).await.unwrap().remove(0);
        assert!(now.blob.is_empty() && now.seq > 0);
    }
    // Chunks an older version wrote: a sequence and a blob, no revision field.
    let mut cubes = vec![0i32; CHUNK_CUBES];
    cubes[100] = 77;
    let blob = encode_chunk(&cubes.try_into().unwrap());
    let mut old = Vec::new();
    for k in [ChunkKey::new(500, 1, 500), ChunkKey::new(-500, -1, -500)] {
        let mut c = redis::cmd("HSET");
        c.arg(redis_chunk_key(w, k))
            .arg("v")
            .arg("12")
            .arg("d")
            .arg(&blob);
        t.raw.query::<i64>(&c).await;
        old.push(k);
    }
    // Other worlds, same coordinates: never in `w`'s export.
    for other in [format!("{w}x"), format!("{w}-other")] {
        let other = world(&other);
        let edits: Vec<_> = keys
            .iter()
            .take(30)
            .map(|&k| random_edits(&mut rng, k))
            .collect();
        t.store.apply(&other, &edits, None).await.unwrap();
    }
    let mut all = keys;
    all.extend(old);
    all.sort();
    all
}

/// Exports `w` into memory.
async fn export(t: &Target, w: &WorldId) -> (Vec<u8>, u64) {
    let mut file = Vec::new();
    let summary = export_world(&t.store, w, &mut file).await.unwrap();
    assert_eq!(summary.bytes, file.len() as u64);
    assert_eq!(summary.world, w.as_str());
    (file, summary.chunks)
}

/// Export, flush, import, and every chunk is exactly as it was: each hash field by field
/// (blob bytes, revision, sequence, and no revision where there was none) and what a fetch
/// answers; nothing else came back.
async fn restore_drill(t: &mut Target) {
    let w = world("drill");
    let keys = populate(t, &w, 300).await;
    let before_raw = t.raw.chunks(&w, &keys).await;
    let before = t.store.fetch(&w, &keys).await.unwrap();
    assert!(before_raw.values().all(|h| h.contains_key("v")));
    assert_eq!(
        before_raw.values().filter(|h| !h.contains_key("r")).count(),
        2,
        "the older version's chunks have no revision"
    );
    assert!(
        before_raw.values().any(|h| !h.contains_key("d")),
        "some chunks are all air"
    );

    let (file, chunks) = export(t, &w).await;
    assert_eq!(chunks, keys.len() as u64);
    let text = String::from_utf8(file.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("cubewalk-world-export 1 world=drill time="));
    assert!(lines
        .last()
        .unwrap()
        .starts_with(&format!("end chunks={chunks} sha256=")));
    let exported: Vec<ChunkKey> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut sorted = exported.clone();
    sorted.sort();
    assert_eq!(sorted, keys, "exactly the world's chunks, each once");

    t.flush_all();
    assert_eq!(t.total_keys(), 0);
    let summary = import_world(&t.store, None, &file[..], ImportMode::IntoEmpty)
        .await
        .unwrap();
    assert_eq!(summary.chunks, keys.len() as u64);
    assert_eq!((summary.replaced, summary.bytes), (0, file.len() as u64));
    assert_eq!(summary.world, "drill");
    assert_eq!(t.raw.chunks(&w, &keys).await, before_raw);
    assert_eq!(t.store.fetch(&w, &keys).await.unwrap(), before);
    // Only the chunks came back: no logs, idempotency records, players or other worlds.
    assert_eq!(t.total_keys(), keys.len() as u64);

    // The restored world takes writes, with sequences above every restored one.
    let (k, old) = (keys[0], &before[0]);
    let held = cubewalk_protocol::codec::decode_chunk(&old.blob).unwrap()[1];
    let set = vec![CubeRef {
        index: 1,
        value: held.wrapping_add(1),
    }];
    let applied = t
        .store
        .apply_edits(&w, &[(k, set)], &Put::system())
        .await
        .unwrap();
    assert_eq!(applied[0].changed_from, Some(old.revision));
    assert_eq!(applied[0].from_seq, old.seq);
    assert!(applied[0].seq > old.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill_single_server() {
    let redis = RedisServer::start();
    let mut t = Target::new(redis.url(), false, vec![redis.port]).await;
    restore_drill(&mut t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill_cluster() {
    let cluster = RedisCluster::start();
    let mut t = Target::new(cluster.url(), true, cluster.ports.clone()).await;
    assert!(t.cluster);
    // The world spreads over every primary, so an export that scanned one node would miss
    // chunks (the drill checks it exported all of them).
    let w = world("spread");
    let edits: Vec<_> = (0..40)
        .map(|i| (ChunkKey::new(i, 0, 0), vec![CubeRef { index: 0, value: 1 }]))
        .collect();
    t.store.apply(&w, &edits, None).await.unwrap();
    assert!(
        t.key_counts().iter().all(|&n| n > 0),
        "{:?}",
        t.key_counts()
    );
    t.flush_all();
    restore_drill(&mut t).await;
}

/// Files that are not a whole, intact export are refused, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_truncated_files_write_nothing() {
    let redis = RedisServer::start();
    let mut t = Target::new(redis.url(), false, vec![redis.port]).await;
    let w = world("corrupt");
    populate(&mut t, &w, 40).await;
    let (file, _) = export(&t, &w).await;
    t.flush_all();
    let text = String::from_utf8(file.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let join = |lines: &[&str]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let n = lines.len();
    // A chunk line still well formed, with one digit of its sequence changed.
    let mut reseq: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let fields: Vec<&str> = lines[5].split(' ').collect();
    let seq: u64 = fields[2].parse().unwrap();
    reseq[5] = [
        fields[0],
        fields[1],
        &(seq + 1).to_string(),
        fields[3],
        fields[4],
    ]
    .join(" ");
    let reseq: Vec<&str> = reseq.iter().map(String::as_str).collect();
    // A blob byte changed to another base64 character.
    let mut flipped = file.clone();
    let at = text.find(lines[7]).unwrap() + lines[7].len() - 6;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let renamed = text.replacen("world=corrupt", "world=corrupu", 1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("cut mid-line", file[..file.len() / 2].to_vec(), "truncated"),
        (
            "no trailer",
            join(&lines[..n - 1]).into_bytes(),
            "truncated",
        ),
        (
            "a chunk line missing",
            join(&[&lines[..3], &lines[4..]].concat()).into_bytes(),
            "counts",
        ),
        ("a sequence changed", join(&reseq).into_bytes(), "checksum"),
        ("a blob byte changed", flipped, ""),
        (
            "the header's world changed",
            renamed.into_bytes(),
            "checksum",
        ),
        (
            "data after the trailer",
            format!("{text}{}\n", lines[1]).into_bytes(),
            "after the trailer",
        ),
        ("empty", Vec::new(), "empty"),
        (
            "a line longer than any chunk's",
            format!("{}\nc 0,0,0 1 - {}\n", lines[0], "A".repeat(40_000)).into_bytes(),
            "longer",
        ),
        ("not an export", b"hello\n".to_vec(), "header"),
    ];
    for (what, bytes, says) in cases {
        let err = import_world(&t.store, None, &bytes[..], ImportMode::Replace)
            .await
            .expect_err(what);
        assert!(matches!(err, BackupError::Invalid(_)), "{what}: {err}");
        assert!(err.to_string().contains(says), "{what}: {err}");
        assert_eq!(t.total_keys(), 0, "{what}: nothing written");
    }
    // The intact file still imports.
    import_world(&t.store, None, &file[..], ImportMode::IntoEmpty)
        .await
        .unwrap();
}

/// Without replace, an import into a world holding any chunk is refused and changes
/// nothing; with it, the file's chunks are put back over the current ones; into another
/// (empty) world, the same chunks land there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_a_world_with_chunks_unless_replacing() {
    let redis = RedisServer::start();
    let mut t = Target::new(redis.url(), false, vec![redis.port]).await;
    let w = world("live");
    let keys = populate(&mut t, &w, 60).await;
    let (file, _) = export(&t, &w).await;
    let exported = t.raw.chunks(&w, &keys).await;

    // The world moves on after the backup, and gains a chunk the backup does not have.
    let k = keys[10];
    t.store
        .apply(
            &w,
            &[(
                k,
                vec![CubeRef {
                    index: 5,
                    value: 99,
                }],
            )],
            None,
        )
        .await
        .unwrap();
    let extra = ChunkKey::new(1000, 0, 0);
    t.store
        .apply(&w, &[(extra, vec![CubeRef { index: 5, value: 1 }])], None)
        .await
        .unwrap();
    let moved_on = t.raw.chunks(&w, &keys).await;
    assert_ne!(moved_on, exported);
    let err = import_world(&t.store, None, &file[..], ImportMode::IntoEmpty)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    assert!(err.to_string().contains("--replace"), "{err}");
    assert_eq!(t.raw.chunks(&w, &keys).await, moved_on, "nothing changed");

    // One chunk alone, even one the file does not name, makes a world non-empty.
    let lone = world("lone");
    t.store
        .apply(
            &lone,
            &[(extra, vec![CubeRef { index: 0, value: 1 }])],
            None,
        )
        .await
        .unwrap();
    let err = import_world(&t.store, Some(&lone), &file[..], ImportMode::IntoEmpty)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    assert!(t
        .raw
        .chunks(&lone, &keys)
        .await
        .values()
        .all(|h| h.is_empty()));

    let summary = import_world(&t.store, None, &file[..], ImportMode::Replace)
        .await
        .unwrap();
    assert_eq!(summary.replaced, keys.len() as u64);
    assert_eq!(t.raw.chunks(&w, &keys).await, exported, "back as exported");
    let untouched = t.store.fetch(&w, &[extra]).await.unwrap().remove(0);
    assert!(untouched.seq > 0, "chunks the file does not name stay");

    let copy = world("copy");
    let summary = import_world(&t.store, Some(&copy), &file[..], ImportMode::IntoEmpty)
        .await
        .unwrap();
    assert_eq!(
        (summary.world.as_str(), summary.exported_world.as_str()),
        ("copy", "live")
    );
    assert_eq!(
        t.store.fetch(&copy, &keys).await.unwrap(),
        t.store.fetch(&w, &keys).await.unwrap()
    );
    let copied = t.raw.chunks(&copy, &keys).await;
    assert_eq!(
        copied.values().collect::<Vec<_>>(),
        exported.values().collect::<Vec<_>>()
    );
}

/// The binary's `world export` then `world import`, through a file and through a pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_commands_of_the_binary() {
    let redis = RedisServer::start();
    let mut t = Target::new(redis.url(), false, vec![redis.port]).await;
    let w = world("cli");
    let keys = populate(&mut t, &w, 80).await;
    let before = t.raw.chunks(&w, &keys).await;
    let dir = std::env::temp_dir().join(format!("cubewalk-backup-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cli.cwexport");
    let path_arg = path.to_str().unwrap();
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cubewalk-server"))
            .arg("world")
            .args(args)
            .args(["--redis", &t.url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            std::io::Write::write_all(&mut input, bytes).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };
    let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();

    let out = run(&["export", "--world", "cli", "--out", path_arg], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = json(&out.stdout);
    assert_eq!(exported["chunks"], keys.len());
    assert_eq!(exported["bytes"], std::fs::metadata(&path).unwrap().len());
    assert!(!dir.join("cli.cwexport.partial").exists());

    t.flush_all();
    let out = run(&["import", "--in", path_arg], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported = json(&out.stdout);
    assert_eq!(imported["chunks"], keys.len());
    assert_eq!(imported["sha256"], exported["sha256"]);
    assert_eq!(t.raw.chunks(&w, &keys).await, before);

    // Again into the same world: refused without --replace, nothing written.
    let out = run(&["import", "--in", path_arg], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"));

    // Through pipes: the export on standard output (its summary on standard error), the
    // import from standard input, into another world.
    let out = run(&["export", "--world", "cli", "--out", "-"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out.stderr)["chunks"], keys.len());
    let piped = out.stdout;
    let out = run(&["import", "--in", "-", "--world", "cli2"], Some(&piped));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out.stdout)["world"], "cli2");
    let copy = t.raw.chunks(&world("cli2"), &keys).await;
    assert_eq!(
        copy.values().collect::<Vec<_>>(),
        before.values().collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_exact_chunk_keys_are_chunks() {
    let w = world("w");
    let k = ChunkKey::new(1, -2, 3);
    assert_eq!(
        parse_chunk_key(&w, redis_chunk_key(&w, k).as_bytes()),
        Some(k)
    );
    let log = format!("{}:log", redis_chunk_key(&w, k));
    assert_eq!(parse_chunk_key(&w, log.as_bytes()), None);
}
