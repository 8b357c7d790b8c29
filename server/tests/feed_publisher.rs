//! The deployed stack's realtime path against a real redis-server (and a Redis Cluster): puts'
//! changes appended to the change feed, publisher runs taking turns under each shard's lease,
//! runs of different groups publishing side by side, every change published once per tick and
//! region, none lost at a hand-over, none published twice, a dead run replaced once its
//! leases run out, a lost shard dropped. The sink logs in as the template's blocks user and
//! the publisher as its realtime user, with their exact `AccessString`s.

mod common;

use async_trait::async_trait;
use cubewalk_protocol::realtime::{
    parse_region_message, region_topic, Change, Region, REGION_CHUNKS,
};
use cubewalk_protocol::{ChunkKey, WorldId};
use cubewalk_server::realtime::{
    run_feed_publisher, ChangeSink, FeedReport, Publish, RedisSink, LEASE_TTL,
};
use cubewalk_server::store::{feed_shard, FeedGroup, RedisStore, RedisStoreConfig};
use cubewalk_testkit::RedisServer;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Records what would go to IoT Core.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String)>>);

#[async_trait]
impl Publish for Recorder {
    async fn publish(&self, topic: &str, payload: String) -> Result<(), String> {
        self.0.lock().unwrap().push((topic.to_owned(), payload));
        Ok(())
    }
}

/// Records what would go to IoT Core and when.
#[derive(Default)]
struct TimedRecorder(Mutex<Vec<(Instant, String, String)>>);

#[async_trait]
impl Publish for TimedRecorder {
    async fn publish(&self, topic: &str, payload: String) -> Result<(), String> {
        let now = Instant::now();
        self.0
            .lock()
            .unwrap()
            .push((now, topic.to_owned(), payload));
        Ok(())
    }
}

impl TimedRecorder {
    /// (topic, payload) of each publish, in order.
    fn payloads(&self) -> Vec<(String, String)> {
        let got = self.0.lock().unwrap();
        got.iter().map(|(_, t, p)| (t.clone(), p.clone())).collect()
    }

    fn first(&self) -> Option<Instant> {
        self.0.lock().unwrap().iter().map(|(t, _, _)| *t).min()
    }

    fn last(&self) -> Option<Instant> {
        self.0.lock().unwrap().iter().map(|(t, _, _)| *t).max()
    }
}

fn change(chunk: ChunkKey, seq: u64) -> Change {
    Change {
        chunk,
        previous: seq,
        version: seq + 1,
        from_seq: seq - 1,
        seq,
        edits: Some(vec![((seq % 4096) as u16, seq as i32)]),
    }
}

/// Per chunk, the sequence ranges published, in order.
fn ranges(published: &[(String, String)]) -> BTreeMap<ChunkKey, Vec<(u64, u64)>> {
    let mut out: BTreeMap<ChunkKey, Vec<(u64, u64)>> = BTreeMap::new();
    for (_, payload) in published {
        for c in parse_region_message(payload.as_bytes()).unwrap() {
            out.entry(c.chunk).or_default().push((c.from_seq, c.seq));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_take_turns_and_every_change_is_published_once() {
    let redis = RedisServer::start();
    let connect = |user: &str| {
        let url = common::template_user_url(&redis, user);
        async move {
            Arc::new(
                RedisStore::connect(&RedisStoreConfig::new(url))
                    .await
                    .unwrap(),
            )
        }
    };
    let store = connect("cubewalk-realtime").await;
    let world = WorldId::new("w").unwrap();
    let sink = RedisSink(connect("cubewalk-blocks").await);
    // The broker authorizer's ban check, as the same user; and nothing more: no ban written,
    // no chunk read or written.
    use cubewalk_server::store::ChunkStore;
    assert!(!store.is_banned("someone").await.unwrap());
    let url = common::template_user_url(&redis, "cubewalk-realtime");
    let mut raw = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for cmd in [
        vec!["SET", "cw:{p:someone}:ban", "1"],
        vec!["DEL", "cw:{p:someone}:ban"],
        vec!["GET", "cw:{w:0,0,0}"],
        vec!["SET", "cw:{w:0,0,0}", "x"],
    ] {
        let mut c = redis::cmd(cmd[0]);
        for a in &cmd[1..] {
            c.arg(*a);
        }
        let err = c
            .query_async::<redis::Value>(&mut raw)
            .await
            .expect_err(&format!("{cmd:?} was allowed"));
        assert!(
            err.to_string().to_lowercase().contains("noperm"),
            "{cmd:?}: {err}"
        );
    }
    // Changes written before any publisher ran are history: not replayed.
    sink.send(&world, vec![change(ChunkKey::new(50, 0, 0), 1)])
        .await;

    let recorder = Arc::new(Recorder::default());
    let now = tokio::time::Instant::now;
    // Three publishers of the whole feed started at once, each for 1.5 s at a time: one holds
    // the shards' leases at a time; the others wait and take over as each ends.
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let (store, out) = (store.clone(), recorder.clone());
            tokio::spawn(async move {
                let mut held = Vec::new();
                let deadline = now() + Duration::from_secs(6);
                while now() < deadline {
                    let until = (now() + Duration::from_millis(1500)).min(deadline);
                    let holder = format!("p{i}");
                    let r = run_feed_publisher(
                        &store,
                        out.clone(),
                        &holder,
                        FeedGroup::ALL,
                        until,
                        None,
                    )
                    .await
                    .unwrap();
                    held.push(r.held);
                }
                held
            })
        })
        .collect();
    // Meanwhile, puts: two chunks of one region edited 40 times each, one chunk far away.
    let (a, b, far) = (
        ChunkKey::new(0, 0, 0),
        ChunkKey::new(1, 0, 0),
        ChunkKey::new(-9, 0, 0),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in 1..=40u64 {
        sink.send(&world, vec![change(a, seq), change(b, seq)])
            .await;
        if seq % 10 == 0 {
            sink.send(&world, vec![change(far, seq / 10)]).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in runs {
        r.await.unwrap();
    }
    let published = recorder.0.lock().unwrap().clone();
    let got = ranges(&published);
    assert!(
        !got.contains_key(&ChunkKey::new(50, 0, 0)),
        "history replayed"
    );
    for (chunk, last) in [(a, 40), (b, 40), (far, 4)] {
        let r = &got[&chunk];
        // Contiguous: each published change starts where the one before ended, from 0 to the
        // last write, so nothing was lost or published twice across the hand-overs.
        assert_eq!(r.first().unwrap().0, 0, "{chunk}: {r:?}");
        assert_eq!(r.last().unwrap().1, last, "{chunk}: {r:?}");
        assert!(r.windows(2).all(|w| w[0].1 == w[1].0), "{chunk}: {r:?}");
    }
    // One message per region per tick: a and b travel together.
    let topic_of = |k: ChunkKey| region_topic(&world, Region::of(k));
    assert_eq!(topic_of(a), topic_of(b));
    assert_ne!(topic_of(a), topic_of(far));
    assert!(published
        .iter()
        .all(|(t, _)| *t == topic_of(a) || *t == topic_of(far)));
    let together = published
        .iter()
        .filter(|(_, p)| parse_region_message(p.as_bytes()).unwrap().len() == 2)
        .count();
    assert!(
        together >= 20,
        "{together} of {} messages held both chunks",
        published.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_that_dies_is_replaced_once_its_leases_run_out() {
    let redis = RedisServer::start();
    let store = connect(redis.url(), false).await;
    // A publisher of the whole feed took every shard's lease, recorded where it starts, and
    // died (never released them).
    let all: Vec<usize> = FeedGroup::ALL.shards().collect();
    assert_eq!(
        store
            .take_feed_leases("dead", &all, Duration::from_millis(800))
            .await
            .unwrap(),
        all
    );
    let at = store.feed_positions(&all).await.unwrap();
    assert!(store
        .save_feed_positions("dead", &at)
        .await
        .unwrap()
        .is_empty());
    let recorder = Arc::new(TimedRecorder::default());
    let started = Instant::now();
    let world = WorldId::new("w").unwrap();
    let sink = RedisSink(store.clone());
    let run = {
        let (store, out) = (store.clone(), recorder.clone());
        tokio::spawn(async move {
            let until = started + Duration::from_secs(2);
            run_feed_publisher(&store, out, "next", FeedGroup::ALL, until, None).await
        })
    };
    // Written while the dead publisher still holds the feed: published by its replacement.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let chunk = ChunkKey::new(0, 0, 0);
    sink.send(&world, vec![change(chunk, 1)]).await;
    let report = run.await.unwrap().unwrap();
    assert!(report.held);
    assert_eq!(report.taken, 16, "{report:?}");
    let first = recorder.first().expect("nothing published");
    assert!(first - started >= Duration::from_millis(700));
    assert_each_once(&recorder.payloads(), &[chunk], 1);
    assert!(store
        .renew_feed_leases("dead", &all, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());
}

/// A store connected to `url` as its default user.
async fn connect(url: String, cluster: bool) -> Arc<RedisStore> {
    let mut config = RedisStoreConfig::new(url);
    config.cluster = cluster;
    Arc::new(RedisStore::connect(&config).await.unwrap())
}

/// One chunk in each of `n` regions along x: their changes spread over the feed's shards.
fn spread_chunks(n: i32) -> Vec<ChunkKey> {
    (0..n)
        .map(|i| ChunkKey::new(i * REGION_CHUNKS, 0, 0))
        .collect()
}

fn shard_of(world: &WorldId, chunk: ChunkKey) -> usize {
    feed_shard(world, Region::of(chunk))
}

/// The chunks of `chunks` whose changes go to `group`'s shards.
fn chunks_of(world: &WorldId, chunks: &[ChunkKey], group: FeedGroup) -> Vec<ChunkKey> {
    let mine: Vec<ChunkKey> = chunks
        .iter()
        .copied()
        .filter(|&c| group.contains(shard_of(world, c)))
        .collect();
    assert!(!mine.is_empty(), "no chunk of the test in {group}");
    mine
}

/// Writes `rounds` changes to each chunk of `chunks`, one round every `every` (the k-th
/// change of chunk c is `change(c, k)`).
async fn write_rounds(
    sink: &RedisSink,
    world: &WorldId,
    chunks: &[ChunkKey],
    rounds: u64,
    every: Duration,
) {
    for seq in 1..=rounds {
        sink.send(world, chunks.iter().map(|&c| change(c, seq)).collect())
            .await;
        tokio::time::sleep(every).await;
    }
}

/// Asserts each chunk of `chunks` was published as ranges of write sequences that follow on
/// from each other, from 0 to `last`: nothing lost, nothing published twice.
fn assert_each_once(published: &[(String, String)], chunks: &[ChunkKey], last: u64) {
    let got = ranges(published);
    for chunk in chunks {
        let r = got
            .get(chunk)
            .unwrap_or_else(|| panic!("{chunk}: never published"));
        assert_eq!(r.first().unwrap().0, 0, "{chunk}: {r:?}");
        assert_eq!(r.last().unwrap().1, last, "{chunk}: {r:?}");
        assert!(r.windows(2).all(|w| w[0].1 == w[1].0), "{chunk}: {r:?}");
    }
}

/// Asserts every change in `published` belongs to one of `group`'s shards.
fn assert_only_group(world: &WorldId, published: &[(String, String)], group: FeedGroup) {
    for chunk in ranges(published).keys() {
        let shard = shard_of(world, *chunk);
        assert!(
            group.contains(shard),
            "{group} published {chunk} (shard {shard})"
        );
    }
}

/// Two groups of two, each group's runs taking turns (two runs at once per group, each for
/// 1 s at a time) while puts go to 32 regions: every change is published exactly once, and
/// each group's runs publish only that group's shards.
async fn two_groups_publish_every_change_once(store: Arc<RedisStore>, sink: RedisSink) {
    let world = WorldId::new("w").unwrap();
    let chunks = spread_chunks(32);
    let groups = [FeedGroup::new(0, 2).unwrap(), FeedGroup::new(1, 2).unwrap()];
    let recorders: Vec<Arc<Recorder>> = groups.iter().map(|_| Arc::default()).collect();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut runs = Vec::new();
    for (group, out) in groups.iter().zip(&recorders) {
        for i in 0..2 {
            let (store, out, group) = (store.clone(), out.clone(), *group);
            runs.push(tokio::spawn(async move {
                let mut reports = Vec::new();
                while Instant::now() < deadline {
                    let until = (Instant::now() + Duration::from_secs(1)).min(deadline);
                    let holder = format!("{group}, publisher {i}, run {}", reports.len());
                    let r = run_feed_publisher(&store, out.clone(), &holder, group, until, None)
                        .await
                        .unwrap();
                    reports.push(r);
                }
                reports
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_rounds(&sink, &world, &chunks, 40, Duration::from_millis(100)).await;
    let mut reports: Vec<FeedReport> = Vec::new();
    for r in runs {
        reports.extend(r.await.unwrap());
    }
    for (group, out) in groups.iter().zip(&recorders) {
        let published = out.0.lock().unwrap().clone();
        assert_only_group(&world, &published, *group);
        assert_each_once(&published, &chunks_of(&world, &chunks, *group), 40);
    }
    assert!(reports.iter().all(|r| r.lost == 0), "{reports:?}");
    assert!(reports.iter().all(|r| r.taken <= 8), "{reports:?}");
    assert!(reports.iter().all(|r| r.failed == 0), "{reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_groups_publish_every_change_once_each_only_its_own_shards() {
    let redis = RedisServer::start();
    let user = |name: &str| connect(common::template_user_url(&redis, name), false);
    // As the template's users: the realtime user may take, renew and release the shards'
    // leases and save positions under them.
    let store = user("cubewalk-realtime").await;
    let sink = RedisSink(user("cubewalk-blocks").await);
    two_groups_publish_every_change_once(store, sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_groups_publish_every_change_once_on_a_redis_cluster() {
    // The feed's shards, their leases and positions spread over three primaries.
    let cluster = cubewalk_testkit::RedisCluster::start();
    let store = connect(cluster.url(), true).await;
    let sink = RedisSink(connect(cluster.url(), true).await);
    two_groups_publish_every_change_once(store, sink).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_different_groups_do_not_wait_for_each_other() {
    let redis = RedisServer::start();
    let store = connect(redis.url(), false).await;
    let (g0, g1) = (FeedGroup::new(0, 2).unwrap(), FeedGroup::new(1, 2).unwrap());
    let run = |holder: &'static str, group: FeedGroup, secs: f64| {
        let store = store.clone();
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs_f64(secs);
            let out = Arc::new(Recorder::default());
            run_feed_publisher(&store, out, holder, group, until, None)
                .await
                .unwrap()
        })
    };
    let first = run("group 0", g0, 3.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While group 0's run publishes: a run of group 1 takes its 8 shards at once, and a
    // second run of group 0 gets none of group 0's.
    let other = run("group 1", g1, 1.0);
    let same = run("group 0, second", g0, 1.0);
    let (other, same) = (other.await.unwrap(), same.await.unwrap());
    assert!(
        other.held && other.taken == 8 && other.lost == 0,
        "{other:?}"
    );
    assert!(other.ticks >= 8, "group 1 waited: {other:?}");
    assert!(!same.held && same.taken == 0, "{same:?}");
    let first = first.await.unwrap();
    assert!(
        first.held && first.taken == 8 && first.lost == 0,
        "{first:?}"
    );
    assert!(first.ticks >= 25, "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_groups_next_run_takes_over_each_shard_as_the_one_before_lets_go() {
    let redis = RedisServer::start();
    let store = connect(redis.url(), false).await;
    let sink = RedisSink(store.clone());
    let world = WorldId::new("w").unwrap();
    let chunks = spread_chunks(32);
    let group = FeedGroup::new(1, 2).unwrap();
    let (before, after) = (
        Arc::new(TimedRecorder::default()),
        Arc::new(TimedRecorder::default()),
    );
    let start = Instant::now();
    let run = |holder: &'static str, out: &Arc<TimedRecorder>, secs: f64| {
        let (store, out) = (store.clone(), out.clone());
        tokio::spawn(async move {
            let until = start + Duration::from_secs_f64(secs);
            let report = run_feed_publisher(&store, out, holder, group, until, None)
                .await
                .unwrap();
            (report, Instant::now())
        })
    };
    // The group's run until 1.5 s, and the next one (the schedule's) from 0.3 s to 3.5 s.
    let first = run("first", &before, 1.5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = run("second", &after, 3.5);
    // Puts from 0.3 s to about 2.8 s, to every region: the other group's too, which no run
    // here publishes.
    write_rounds(&sink, &world, &chunks, 25, Duration::from_millis(100)).await;
    let ((first, first_ended), (second, _)) = (first.await.unwrap(), second.await.unwrap());
    assert!(
        first.held && first.taken == 8 && first.lost == 0,
        "{first:?}"
    );
    assert!(
        second.held && second.taken == 8 && second.lost == 0,
        "{second:?}"
    );
    // The next run published nothing while the first held the group, and took over at once.
    let (last_before, first_after) = (before.last().unwrap(), after.first().unwrap());
    assert!(first_after >= last_before);
    assert!(
        first_after < first_ended + Duration::from_millis(500),
        "took over {:?} after the first run ended",
        first_after - first_ended
    );
    assert!(second.ticks >= 15, "{second:?}");
    // Together: each change of the group's chunks once, none of the other group's.
    let mut published = before.payloads();
    published.extend(after.payloads());
    assert_only_group(&world, &published, group);
    assert_each_once(&published, &chunks_of(&world, &chunks, group), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_groups_dead_run_is_replaced_once_its_leases_run_out_and_other_groups_go_on() {
    let redis = RedisServer::start();
    let store = connect(redis.url(), false).await;
    let sink = RedisSink(store.clone());
    let world = WorldId::new("w").unwrap();
    let (g0, g1) = (FeedGroup::new(0, 2).unwrap(), FeedGroup::new(1, 2).unwrap());
    let chunks = spread_chunks(32);
    let (c0, c1) = (
        chunks_of(&world, &chunks, g0)[0],
        chunks_of(&world, &chunks, g1)[0],
    );
    // A run of group 1 took its leases, recorded where it starts, and died.
    let shards: Vec<usize> = g1.shards().collect();
    let ttl = Duration::from_millis(800);
    assert_eq!(
        store.take_feed_leases("dead", &shards, ttl).await.unwrap(),
        shards
    );
    let at = store.feed_positions(&shards).await.unwrap();
    assert!(store
        .save_feed_positions("dead", &at)
        .await
        .unwrap()
        .is_empty());
    let start = Instant::now();
    let run = |holder: &'static str, group: FeedGroup, out: &Arc<TimedRecorder>| {
        let (store, out) = (store.clone(), out.clone());
        tokio::spawn(async move {
            let until = start + Duration::from_secs(2);
            run_feed_publisher(&store, out, holder, group, until, None)
                .await
                .unwrap()
        })
    };
    let (out0, out1) = (
        Arc::new(TimedRecorder::default()),
        Arc::new(TimedRecorder::default()),
    );
    let (r0, r1) = (run("group 0", g0, &out0), run("group 1", g1, &out1));
    // Written while the dead run's leases still hold group 1.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.send(&world, vec![change(c0, 1), change(c1, 1)]).await;
    let (r0, r1) = (r0.await.unwrap(), r1.await.unwrap());
    assert!(r0.taken == 8 && r1.taken == 8, "{r0:?} {r1:?}");
    // Group 0 published at once; group 1's change waited for the dead run's leases to run
    // out and was published then, not lost.
    assert!(out0.first().unwrap() - start < ttl - Duration::from_millis(200));
    assert!(out1.first().unwrap() - start >= ttl - Duration::from_millis(100));
    assert_each_once(&out0.payloads(), &[c0], 1);
    assert_each_once(&out1.payloads(), &[c1], 1);
    assert!(store
        .renew_feed_leases("dead", &shards, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_drops_a_shard_whose_lease_it_lost_and_never_publishes_it_again() {
    let redis = RedisServer::start();
    let store = connect(redis.url(), false).await;
    let sink = RedisSink(store.clone());
    let world = WorldId::new("w").unwrap();
    let chunks = spread_chunks(32);
    let (stolen, kept) = (
        chunks[0],
        chunks[1..]
            .iter()
            .copied()
            .find(|&c| shard_of(&world, c) != shard_of(&world, chunks[0]))
            .unwrap(),
    );
    let shard = shard_of(&world, stolen);
    let out = Arc::new(Recorder::default());
    let run = {
        let (store, out) = (store.clone(), out.clone());
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_millis(1500);
            run_feed_publisher(&store, out, "first", FeedGroup::ALL, until, None)
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The lease ran out (as if the run had stalled past LEASE_TTL) and another run took it:
    // in one step, or the first run could take the free shard back in between.
    let lease = format!("cw:rt:{{{shard}}}:lease");
    let ttl = LEASE_TTL.as_millis().to_string();
    let taken = redis.command(&["SET", &lease, "thief", "PX", &ttl]);
    assert_eq!(taken.as_deref(), Some("+OK"));
    let at = store.feed_positions(&[shard]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.send(&world, vec![change(stolen, 1), change(kept, 1)])
        .await;
    let report = run.await.unwrap();
    assert_eq!(report.lost, 1, "{report:?}");
    let published = out.0.lock().unwrap().clone();
    let got = ranges(&published);
    assert!(got.contains_key(&kept));
    assert!(
        !got.contains_key(&stolen),
        "published a shard it no longer held"
    );
    // Its position is the new holder's to move: the first run left it as it was.
    assert_eq!(store.feed_positions(&[shard]).await.unwrap(), at);
}
