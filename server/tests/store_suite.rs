//! One suite of store semantics, run against the embedded store and a real `redis-server`.

use cubewalk_protocol::codec::{decode_chunk, fixtures};
use cubewalk_protocol::{ChunkKey, CubeRef, IdempotencyKey, WorldId, EMPTY_REVISION};
use cubewalk_server::store::{
    ChunkStore, ExpectedEdit, Limit, MemoryStore, PlayerLimits, Put, RedisStore, RedisStoreConfig,
    StoreError, WorldBudget,
};
use cubewalk_testkit::RedisServer;
use std::sync::Arc;

mod common;

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
    assert_eq!((got[0].seq, got[0].revision), (0, EMPTY_REVISION));
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
            None,
        )
        .await
        .unwrap();
    let got = store
        .fetch(&w, &[b, a, ChunkKey::new(9, 9, 9)])
        .await
        .unwrap();
    // The answer names the stored content.
    assert_eq!(v, vec![got[1].revision, got[0].revision]);
    assert!(got[1].seq > 0);
    let first_seq = got[1].seq;
    let cb = decode_chunk(&got[0].blob).unwrap();
    let ca = decode_chunk(&got[1].blob).unwrap();
    assert_eq!((ca[0], ca[4095], ca[1]), (7, -9, 0));
    assert_eq!(cb[17], i32::MAX);
    assert_eq!(got[2].seq, 0);
    // A later edit of the same cube in one batch wins.
    let v = store
        .apply(&w, &[(a, vec![set(1, 1), set(1, 2)])], None)
        .await
        .unwrap();
    let again = store.fetch(&w, &[a]).await.unwrap();
    assert_eq!(v, vec![again[0].revision]);
    assert!(
        again[0].seq > first_seq,
        "the sequence grows with every write"
    );
    let ca = decode_chunk(&again[0].blob).unwrap();
    assert_eq!((ca[0], ca[1]), (7, 2));
}

async fn unchanged_batch_keeps_version_and_emptied_chunk_keeps_version(store: &dyn ChunkStore) {
    let w = world("versions");
    let k = ChunkKey::new(3, 3, 3);
    let first = store
        .apply(&w, &[(k, vec![set(5, 1)])], None)
        .await
        .unwrap();
    assert_ne!(first, vec![EMPTY_REVISION]);
    assert_eq!(
        store
            .apply(&w, &[(k, vec![set(5, 1)])], None)
            .await
            .unwrap(),
        first
    );
    let seq = store.fetch(&w, &[k]).await.unwrap()[0].seq;
    assert!(seq > 0);
    // Back to all air: the revision of all air, whatever happened before.
    assert_eq!(
        store
            .apply(&w, &[(k, vec![set(5, 0)])], None)
            .await
            .unwrap(),
        vec![EMPTY_REVISION]
    );
    let got = store.fetch(&w, &[k]).await.unwrap();
    assert!(got[0].seq > seq, "emptying is a write");
    assert!(got[0].blob.is_empty(), "an emptied chunk stores no data");
    // The same content written again gets a new revision: revisions are drawn per write,
    // not derived from the content, so no one can search for two contents sharing one.
    let again = store
        .apply(&w, &[(k, vec![set(5, 1)])], None)
        .await
        .unwrap();
    assert_ne!(again, first);
    assert_ne!(again, vec![EMPTY_REVISION]);
}

/// A second apply under the same idempotency key changes nothing and answers the first one's
/// revision, even after another writer changed the chunk in between; another key applies.
async fn idempotency_key_applies_once(store: &dyn ChunkStore) {
    let w = world("idempotent");
    let (k, other) = (ChunkKey::new(4, 4, 4), ChunkKey::new(5, 4, 4));
    let key = IdempotencyKey::new("retry-key-0123456789").unwrap();
    let first = store
        .apply(&w, &[(k, vec![set(0, 111)])], Some(&key))
        .await
        .unwrap();
    // Another player sets the same cube.
    store
        .apply(&w, &[(k, vec![set(0, 222)])], None)
        .await
        .unwrap();
    // The first put's retry (answer lost): nothing changes, the original answer comes back;
    // a chunk the first attempt did not reach is applied.
    let retry = store
        .apply(
            &w,
            &[(k, vec![set(0, 111)]), (other, vec![set(1, 5)])],
            Some(&key),
        )
        .await
        .unwrap();
    assert_eq!(retry[0], first[0]);
    let got = store.fetch(&w, &[k, other]).await.unwrap();
    assert_eq!(
        decode_chunk(&got[0].blob).unwrap()[0],
        222,
        "retry overwrote a newer edit"
    );
    assert_eq!(decode_chunk(&got[1].blob).unwrap()[1], 5);
    // A put that changed nothing leaves no record (players cannot fill the store with
    // records of puts that did nothing): its retry is the same put arriving late, and applies
    // as it would have then.
    let noop = IdempotencyKey::new("noop-key-0123456789a").unwrap();
    store
        .apply(&w, &[(k, vec![set(0, 222)])], Some(&noop))
        .await
        .unwrap();
    store
        .apply(&w, &[(k, vec![set(0, 333)])], None)
        .await
        .unwrap();
    store
        .apply(&w, &[(k, vec![set(0, 222)])], Some(&noop))
        .await
        .unwrap();
    let got = store.fetch(&w, &[k]).await.unwrap();
    assert_eq!(decode_chunk(&got[0].blob).unwrap()[0], 222);
    // A fresh key is a new put.
    let fresh = IdempotencyKey::new("fresh-key-0123456789").unwrap();
    store
        .apply(&w, &[(k, vec![set(0, 444)])], Some(&fresh))
        .await
        .unwrap();
    let got = store.fetch(&w, &[k]).await.unwrap();
    assert_eq!(decode_chunk(&got[0].blob).unwrap()[0], 444);
    // No edits: nothing to do, on every store.
    assert!(store.apply(&w, &[], Some(&fresh)).await.unwrap().is_empty());
    assert!(store.apply(&w, &[], None).await.unwrap().is_empty());
}

async fn worlds_are_separate(store: &dyn ChunkStore) {
    let k = ChunkKey::new(0, 0, 0);
    store
        .apply(&world("w-a"), &[(k, vec![set(0, 1)])], None)
        .await
        .unwrap();
    let other = store.fetch(&world("w-b"), &[k]).await.unwrap();
    assert_eq!(other[0].seq, 0);
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
        store.apply(&w, &[(k, edits)], None).await.unwrap();
        let got = store.fetch(&w, &[k]).await.unwrap();
        assert_eq!(*decode_chunk(&got[0].blob).unwrap(), *chunk);
    }
}

/// `writers` tasks edit one chunk at once: each owns some cubes and also writes one shared cube.
/// Every owned cube must end at its writer's last value (no lost update), and the write counter
/// counts at least every changing batch.
async fn concurrent_writers_lose_nothing(store: Arc<dyn ChunkStore>, writers: u16, edits: i32) {
    let w = world("contended");
    let k = ChunkKey::new(1, 1, 1);
    let mut tasks = Vec::new();
    for id in 0..writers {
        let store = store.clone();
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            for n in 1..=edits {
                // Two owned cubes per writer, alternating, plus the shared cube 4095.
                let own = id * 2 + (n % 2) as u16;
                let v = store
                    .apply(
                        &w,
                        &[(k, vec![set(own, n), set(4095, i32::from(id))])],
                        None,
                    )
                    .await
                    .expect("apply");
                assert_ne!(v[0], EMPTY_REVISION);
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
    assert!(got[0].seq > 0);
}

/// What the realtime notifications are built on: each chunk's revision before the put when
/// this very call changed it, and nothing for no-op edits and idempotent replays.
async fn apply_edits_tells_what_changed_from_what(store: &dyn ChunkStore) {
    let w = world("changes");
    let (a, b) = (ChunkKey::new(0, 0, 0), ChunkKey::new(1, 0, 0));
    let first = store
        .apply_edits(
            &w,
            &[(a, vec![set(1, 5)]), (b, vec![set(1, 0)])],
            &Put::system(),
        )
        .await
        .unwrap();
    assert_eq!(first[0].changed_from, Some(EMPTY_REVISION));
    assert_eq!(
        first[1].changed_from, None,
        "air set to air changes nothing"
    );
    let key = IdempotencyKey::new("changes-key-0000001").unwrap();
    let keyed = Put {
        key: Some(&key),
        ..Put::system()
    };
    let second = store
        .apply_edits(&w, &[(a, vec![set(2, 6)])], &keyed)
        .await
        .unwrap();
    assert_eq!(second[0].changed_from, Some(first[0].revision));
    assert!(second[0].seq > first[0].seq, "the write sequence grows");
    assert_eq!(
        second[0].from_seq, first[0].seq,
        "and names the one it grew from"
    );
    assert_eq!(first[1].seq, 0, "no write, no sequence");
    let replay = store
        .apply_edits(&w, &[(a, vec![set(2, 6)])], &keyed)
        .await
        .unwrap();
    assert_eq!(replay[0].revision, second[0].revision);
    assert_eq!(replay[0].changed_from, None, "a replay notifies nothing");
}

fn player<'a>(id: &'a str, key: Option<&'a IdempotencyKey>, hash: u64) -> Put<'a> {
    Put {
        player: id,
        key,
        request_hash: hash,
        limits: None,
        budget: None,
    }
}

async fn cubes(store: &dyn ChunkStore, w: &WorldId, k: ChunkKey) -> Box<[i32; 4096]> {
    decode_chunk(&store.fetch(w, &[k]).await.unwrap()[0].blob).unwrap()
}

/// An idempotency key is the player's own and bound to one request: the same player's key
/// with another body is refused and changes nothing; another player's use of the same key is
/// their own put and leaves the first player's edits alone.
async fn idempotency_is_per_player_and_per_request(store: &dyn ChunkStore) {
    let w = world("idem-players");
    let (a, b) = (ChunkKey::new(0, 0, 0), ChunkKey::new(1, 0, 0));
    let key = IdempotencyKey::new("shared-key-0000000001").unwrap();
    store
        .apply_edits(
            &w,
            &[(a, vec![set(1, 11)])],
            &player("alice", Some(&key), 1),
        )
        .await
        .unwrap();
    let replay = store
        .apply_edits(
            &w,
            &[(a, vec![set(1, 11)])],
            &player("alice", Some(&key), 1),
        )
        .await
        .unwrap();
    assert_eq!(replay[0].changed_from, None, "a replay changes nothing");
    // Another body under the same key: refused, and neither chunk is written.
    let err = store
        .apply_edits(
            &w,
            &[(b, vec![set(2, 99)]), (a, vec![set(1, 99)])],
            &player("alice", Some(&key), 2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyKeyReused), "{err:?}");
    assert_eq!(cubes(store, &w, a).await[1], 11);
    assert_eq!(cubes(store, &w, b).await[2], 0);
    // Mallory replays Alice's key (with her body or his own): his put is his own.
    let theirs = store
        .apply_edits(
            &w,
            &[(a, vec![set(1, 11), set(3, 33)])],
            &player("mallory", Some(&key), 1),
        )
        .await
        .unwrap();
    assert!(theirs[0].changed_from.is_some(), "mallory's put applied");
    let c = cubes(store, &w, a).await;
    assert_eq!((c[1], c[3]), (11, 33));
    // And Alice's replay still answers her own remembered revision, changing nothing.
    let again = store
        .apply_edits(
            &w,
            &[(a, vec![set(1, 11)])],
            &player("alice", Some(&key), 1),
        )
        .await
        .unwrap();
    assert_eq!(again[0].revision, replay[0].revision);
    assert_eq!(cubes(store, &w, a).await[3], 33);
}

/// Every change is logged with its player, value before and after; the player's index finds
/// the chunk; a conditional edit changes only the cubes still holding the expected value.
async fn log_and_conditional_edits(store: &dyn ChunkStore) {
    let w = world("logged");
    let k = ChunkKey::new(2, 3, 4);
    let t0 = cubewalk_server::store::log::now_ms().saturating_sub(1000);
    store
        .apply_edits(
            &w,
            &[(k, vec![set(1, 5), set(2, 6)])],
            &player("alice", None, 0),
        )
        .await
        .unwrap();
    store
        .apply_edits(
            &w,
            &[(k, vec![set(2, 7), set(9, 0)])],
            &player("bob", None, 0),
        )
        .await
        .unwrap();
    let log = store.chunk_log(&w, k, t0).await.unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].player, "alice");
    assert_eq!(
        log[0]
            .changes
            .iter()
            .map(|c| (c.index, c.before, c.after))
            .collect::<Vec<_>>(),
        vec![(1, 0, 5), (2, 0, 6)]
    );
    assert_eq!(log[1].player, "bob");
    // Cube 9 was air and stays air: not a change.
    assert_eq!(
        log[1]
            .changes
            .iter()
            .map(|c| (c.index, c.before, c.after))
            .collect::<Vec<_>>(),
        vec![(2, 6, 7)]
    );
    assert!(log[0].id < log[1].id || log[0].at_ms < log[1].at_ms);
    assert!(log[0].at_ms >= t0);
    assert_eq!(store.player_chunks(&w, "alice", t0).await.unwrap(), vec![k]);
    assert!(store
        .player_chunks(&world("other"), "alice", t0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .chunk_log(&w, k, u64::MAX / 2)
        .await
        .unwrap()
        .is_empty());

    let (applied, mismatched) = store
        .apply_expected(
            &w,
            k,
            &[
                ExpectedEdit {
                    index: 1,
                    expect: 5,
                    value: 0,
                },
                ExpectedEdit {
                    index: 2,
                    expect: 6,
                    value: 0,
                },
            ],
            "admin:root",
        )
        .await
        .unwrap();
    assert!(applied.changed_from.is_some());
    assert_eq!(mismatched, vec![2], "cube 2 holds bob's 7, not 6");
    let c = cubes(store, &w, k).await;
    assert_eq!((c[1], c[2]), (0, 7));
    let log = store.chunk_log(&w, k, t0).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].player, "admin:root");
}

/// Past a limit a put is refused with the wait, charges nothing, and other players are not
/// affected; a banned player is refused.
async fn limits_and_bans(store: &dyn ChunkStore) {
    let w = world("limited");
    let limits = PlayerLimits {
        cubes_per_sec: 10,
        cube_burst: 20,
        new_chunks_per_min: 1,
        new_chunk_burst: 2,
        ..PlayerLimits::default()
    };
    let with = |id| Put {
        player: id,
        key: None,
        request_hash: 0,
        limits: Some(&limits),
        budget: None,
    };
    let k = ChunkKey::new(0, 0, 0);
    let twenty: Vec<_> = (0..20).map(|i| set(i, 1)).collect();
    store
        .apply_edits(&w, &[(k, twenty.clone())], &with("flood"))
        .await
        .unwrap();
    let err = store
        .apply_edits(&w, &[(k, vec![set(100, 1)])], &with("flood"))
        .await
        .unwrap_err();
    match err {
        StoreError::RateLimited { limit, retry_after } => {
            assert_eq!(limit, Limit::Cubes);
            assert!(
                retry_after > std::time::Duration::ZERO
                    && retry_after <= std::time::Duration::from_millis(100),
                "{retry_after:?}"
            );
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    assert_eq!(
        cubes(store, &w, k).await[100],
        0,
        "a refused put writes nothing"
    );
    // Another player has a bucket of their own.
    store
        .apply_edits(&w, &[(k, twenty)], &with("honest"))
        .await
        .unwrap();
    // New chunks: two at once pass, a third waits about a minute.
    let new: Vec<_> = (1..3)
        .map(|x| (ChunkKey::new(x, 9, 9), vec![set(0, 1)]))
        .collect();
    store.apply_edits(&w, &new, &with("builder")).await.unwrap();
    let err = store
        .apply_edits(
            &w,
            &[(ChunkKey::new(5, 9, 9), vec![set(0, 1)])],
            &with("builder"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RateLimited { limit: Limit::NewChunks, retry_after }
            if retry_after > std::time::Duration::from_secs(50)),
        "{err:?}"
    );
    // Edits to chunks that exist are not new chunks.
    store
        .apply_edits(
            &w,
            &[(ChunkKey::new(1, 9, 9), vec![set(1, 1)])],
            &with("builder"),
        )
        .await
        .unwrap();
    // Bans.
    assert!(!store.is_banned("flood").await.unwrap());
    store.set_banned("flood", true).await.unwrap();
    assert!(store.is_banned("flood").await.unwrap());
    let err = store
        .apply_edits(&w, &[(k, vec![set(200, 1)])], &with("flood"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Banned), "{err:?}");
    store.set_banned("flood", false).await.unwrap();
    assert!(!store.is_banned("flood").await.unwrap());
    // Chunk writes: each chunk a put names counts, changed or not; so do cancels.
    let writes = PlayerLimits {
        writes_per_sec: 1,
        write_burst: 3,
        ..PlayerLimits::default()
    };
    let writer = Put {
        limits: Some(&writes),
        ..player("writer", None, 0)
    };
    let three: Vec<_> = (0..3)
        .map(|x| (ChunkKey::new(x, 7, 7), vec![set(0, 1)]))
        .collect();
    store.apply_edits(&w, &three, &writer).await.unwrap();
    let err = store
        .apply_edits(&w, &three[..1], &writer)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RateLimited {
                limit: Limit::Writes,
                ..
            }
        ),
        "{err:?}"
    );
    let key = IdempotencyKey::new("writer-cancel-000001").unwrap();
    let err = store
        .cancel(&w, &[k], "writer", &key, Some(&writes))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RateLimited {
                limit: Limit::Writes,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A world's budget: a put that would grow the world past it is refused (nothing written);
/// edits that do not grow it pass; emptying a chunk makes room.
async fn budgets_refuse_growth_only(store: &dyn ChunkStore) {
    let w = world("budgeted");
    let budget = WorldBudget {
        bytes: 2_000,
        account: "budgeted",
    };
    let put = Put {
        budget: Some(budget),
        ..player("grower", None, 0)
    };
    // A chunk of random cubes takes 16 KiB: past the budget at once.
    let random: Vec<CubeRef> = fixtures::random(5)
        .iter()
        .enumerate()
        .map(|(i, &v)| set(i as u16, v))
        .collect();
    let big = ChunkKey::new(100, 0, 0);
    let err = store
        .apply_edits(&w, &[(big, random)], &put)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Full(_)), "{err:?}");
    assert_eq!(store.fetch(&w, &[big]).await.unwrap()[0].seq, 0);
    // Small chunks until the budget is reached.
    let mut written = Vec::new();
    let full = loop {
        let k = ChunkKey::new(written.len() as i32, 0, 0);
        match store.apply_edits(&w, &[(k, vec![set(0, 1)])], &put).await {
            Ok(_) => written.push(k),
            Err(e) => break e,
        }
        assert!(written.len() < 100, "the budget never filled");
    };
    assert!(matches!(full, StoreError::Full(_)), "{full:?}");
    assert!(written.len() >= 5, "only {} chunks fit", written.len());
    // Reads answer; an edit that keeps a chunk's size passes; emptying one makes room.
    assert_eq!(cubes(store, &w, written[0]).await[0], 1);
    store
        .apply_edits(&w, &[(written[0], vec![set(0, 2)])], &put)
        .await
        .unwrap();
    store
        .apply_edits(&w, &[(written[1], vec![set(0, 0)])], &put)
        .await
        .unwrap();
    store
        .apply_edits(&w, &[(written[1], vec![set(0, 3)])], &put)
        .await
        .unwrap();
}

/// A put its sender gave up on is fenced: cancelled where it had not applied (and refused
/// there ever after, whatever the retry), reported with its revision where it had.
async fn cancelled_puts_never_apply(store: &dyn ChunkStore) {
    let w = world("fence");
    let (a, b) = (ChunkKey::new(0, 0, 0), ChunkKey::new(1, 0, 0));
    let key = IdempotencyKey::new("fence-key-0000000001").unwrap();
    let put = player("alice", Some(&key), 7);
    // Applied on `a` before the cancel; `b` never reached.
    let applied = store
        .apply_edits(&w, &[(a, vec![set(1, 11)])], &put)
        .await
        .unwrap();
    let outcome = store
        .cancel(&w, &[a, b], "alice", &key, None)
        .await
        .unwrap();
    assert_eq!(outcome, vec![Some(applied[0].revision), None]);
    // The late request (or the function still retrying it) arrives: refused on `b`, nothing
    // written, not even on `a`'s neighbour in the same put.
    let late = store
        .apply_edits(&w, &[(b, vec![set(2, 22)])], &put)
        .await
        .unwrap_err();
    assert!(matches!(late, StoreError::Cancelled), "{late:?}");
    assert_eq!(cubes(store, &w, b).await[2], 0);
    // Cancelling again answers the same; another player's key of that name is theirs.
    let again = store
        .cancel(&w, &[a, b], "alice", &key, None)
        .await
        .unwrap();
    assert_eq!(again, outcome);
    store
        .apply_edits(&w, &[(b, vec![set(3, 33)])], &player("bob", Some(&key), 7))
        .await
        .unwrap();
    assert_eq!(cubes(store, &w, b).await[3], 33);
}

async fn run_suite(store: Arc<dyn ChunkStore>) {
    budgets_refuse_growth_only(store.as_ref()).await;
    cancelled_puts_never_apply(store.as_ref()).await;
    idempotency_is_per_player_and_per_request(store.as_ref()).await;
    log_and_conditional_edits(store.as_ref()).await;
    limits_and_bans(store.as_ref()).await;
    never_written_reads_empty_at_zero(store.as_ref()).await;
    apply_edits_tells_what_changed_from_what(store.as_ref()).await;
    put_then_fetch_round_trips(store.as_ref()).await;
    unchanged_batch_keeps_version_and_emptied_chunk_keeps_version(store.as_ref()).await;
    worlds_are_separate(store.as_ref()).await;
    whole_chunk_fixtures_survive(store.as_ref()).await;
    idempotency_key_applies_once(store.as_ref()).await;
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
        .apply(&w, &[(ChunkKey::new(0, 0, 0), edits)], None)
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
    store
        .apply(&w, &[(k, vec![set(0, 1)])], None)
        .await
        .unwrap();
    redis.kill();
    let err = store.fetch(&w, &[k]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let err = store
        .apply(&w, &[(k, vec![set(0, 2)])], None)
        .await
        .unwrap_err();
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
    store
        .apply(&w, &[(k, vec![set(0, 1)])], None)
        .await
        .unwrap();
    // What a long idle behind a NAT or a frozen Lambda looks like: the server drops us.
    assert!(redis
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .is_some());
    let got = store
        .fetch(&w, &[k])
        .await
        .expect("fetch after the connection was killed");
    assert!(got[0].seq > 0);
    assert!(redis
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .is_some());
    let v = store
        .apply(&w, &[(k, vec![set(1, 5)])], None)
        .await
        .expect("put after kill");
    assert_eq!(v, vec![store.fetch(&w, &[k]).await.unwrap()[0].revision]);
}

/// A flush (or a failover to a replica that missed the last writes) loses chunks: the next
/// write still gets a sequence above every one handed out before, and a new revision, so no
/// follower holding the lost content can take the new content for it.
#[tokio::test]
async fn a_lost_store_never_repeats_a_sequence_or_revision() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&RedisStoreConfig::new(redis.url()))
        .await
        .unwrap();
    let w = world("lost");
    let k = ChunkKey::new(0, 0, 0);
    let mut seen = Vec::new();
    for n in 0..3 {
        let a = store
            .apply_edits(&w, &[(k, vec![set(0, n + 1)])], &Put::system())
            .await
            .unwrap();
        seen.push((a[0].seq, a[0].revision));
    }
    redis.command(&["FLUSHALL"]).unwrap();
    let after = store
        .apply_edits(&w, &[(k, vec![set(0, 99)])], &Put::system())
        .await
        .unwrap();
    assert_eq!(after[0].from_seq, 0, "the chunk was lost");
    assert!(
        seen.iter().all(|(seq, _)| after[0].seq > *seq),
        "sequence {} repeats one of {seen:?}",
        after[0].seq
    );
    assert!(seen.iter().all(|(_, r)| after[0].revision != *r));
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
    let revisions = store.apply(&w, &edits, None).await.unwrap();
    let got = store.fetch(&w, &keys).await.unwrap();
    let fetched: Vec<u64> = got.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, fetched);
    for (k, c) in keys.iter().zip(got) {
        assert_eq!(decode_chunk(&c.blob).unwrap()[1], k.x + 1000);
    }
    let keys = cluster.keys_per_node();
    assert!(
        keys.iter().all(|&n| n > 0),
        "chunks spread over every node: {keys:?}"
    );
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
        store
            .apply(&w, &[(k, vec![set(3, 9)])], None)
            .await
            .unwrap()
            .len(),
        1
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

/// The deployment's Redis user, exactly as `template.yaml` defines it, can do everything the
/// store does and nothing keyless that could destroy or stall the world.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn template_access_string_allows_the_store_and_nothing_else() {
    let redis = RedisServer::start();
    let url = common::template_user_url(&redis, "cubewalk-blocks");
    let store = RedisStore::connect(&RedisStoreConfig::new(url.clone()))
        .await
        .expect("the template's user connects");
    run_suite(Arc::new(store)).await;

    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for cmd in [
        vec!["FLUSHALL"],
        vec!["FLUSHDB"],
        vec!["CONFIG", "GET", "maxmemory"],
        vec!["SCRIPT", "FLUSH"],
        vec!["KEYS", "*"],
        vec!["CLIENT", "KILL", "TYPE", "normal"],
        vec!["DEL", "other:key"],
    ] {
        let mut c = redis::cmd(cmd[0]);
        for a in &cmd[1..] {
            c.arg(*a);
        }
        let err = c
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err(&format!("{cmd:?} was allowed"));
        assert!(
            err.to_string().to_lowercase().contains("noperm"),
            "{cmd:?}: unexpected error {err}"
        );
    }
    // The world is still there.
    assert_eq!(redis.command(&["DBSIZE"]).map(|n| n != ":0"), Some(true));
}
