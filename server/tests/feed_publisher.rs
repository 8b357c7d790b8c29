//! The deployed stack's realtime path against a real redis-server: puts' changes appended to
//! the change feed, publishers taking turns under the lease, every change published once per
//! tick and region, none lost at a hand-over, none published twice. The sink logs in as the
//! template's blocks user and the publisher as its realtime user, with their exact
//! `AccessString`s.

mod common;

use async_trait::async_trait;
use cubewalk_protocol::realtime::{parse_region_message, region_topic, Change, Region};
use cubewalk_protocol::{ChunkKey, WorldId};
use cubewalk_server::realtime::{run_feed_publisher, ChangeSink, Publish, RedisSink};
use cubewalk_server::store::{RedisStore, RedisStoreConfig};
use cubewalk_testkit::RedisServer;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    // Three publishers started at once, each for 1.5 s after it gets the lease... only one
    // holds it at a time; the others wait and take over as each ends.
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let (store, out) = (store.clone(), recorder.clone());
            tokio::spawn(async move {
                let mut held = Vec::new();
                let deadline = now() + Duration::from_secs(6);
                while now() < deadline {
                    let until = (now() + Duration::from_millis(1500)).min(deadline);
                    let r = run_feed_publisher(&store, out.clone(), &format!("p{i}"), until, None)
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
async fn a_publisher_that_dies_is_replaced_once_its_lease_runs_out() {
    let redis = RedisServer::start();
    let store = Arc::new(
        RedisStore::connect(&RedisStoreConfig::new(redis.url()))
            .await
            .unwrap(),
    );
    // A publisher took the lease and died (never released it).
    assert!(store
        .take_publisher_lease("dead", Duration::from_millis(800))
        .await
        .unwrap());
    let recorder = Arc::new(Recorder::default());
    let started = tokio::time::Instant::now();
    let report = run_feed_publisher(
        &store,
        recorder,
        "next",
        started + Duration::from_secs(2),
        None,
    )
    .await
    .unwrap();
    assert!(report.held);
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(!store
        .renew_publisher_lease("dead", Duration::from_secs(1))
        .await
        .unwrap());
}
