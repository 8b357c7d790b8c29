//! Realtime through the C ABI and the Rust API against the local gateway's MQTT gate and
//! broker: a follower's copy kept right by other clients' puts (memory, Redis and Redis
//! Cluster backends), 100 subscribers, a wrong token refused at connect, reconnect after the
//! gateway restarts with the gap reported, hostile arguments.

use cubewalk::ffi::realtime::*;
use cubewalk::ffi::types::*;
use cubewalk::ffi::*;
use cubewalk::realtime::{Realtime, RealtimeEvent, RealtimeState};
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, Status};
use cubewalk_e2e::*;
use cubewalk_server::gateway::GatewayConfig;
use cubewalk_server::identity::TokenSet;
use cubewalk_server::store::{ChunkStore, MemoryStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORLD: &str = "realtime";

fn start_realtime(endpoint: &str) {
    // SAFETY: a live string.
    let s = unsafe { cw_realtime_start(endpoint.as_ptr(), endpoint.len()) };
    assert_eq!(s, Status::Ok, "{}", last_error());
}

fn follow(chunks: &[CwChunkKey]) {
    // SAFETY: live arrays.
    let s =
        unsafe { cw_realtime_follow(WORLD.as_ptr(), WORLD.len(), chunks.as_ptr(), chunks.len()) };
    assert_eq!(s, Status::Ok, "{}", last_error());
}

fn state() -> i32 {
    let mut st = -1;
    // SAFETY: writable.
    assert_eq!(unsafe { cw_realtime_state(&mut st) }, Status::Ok);
    st
}

/// Polls until an event of `kind` arrives (returning it and everything before it).
fn poll_until(kind: u32, within: Duration) -> Vec<(CwChange, Vec<CwEdit>)> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for ev in poll_realtime() {
            let done = ev.0.kind == kind;
            seen.push(ev);
            if done {
                return seen;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no event of kind {kind} within {within:?}; saw {seen:?}");
}

/// The follower's copy of some chunks, kept by the rule of the header: apply edits when the
/// copy is at `previous`, refetch otherwise.
struct Copy {
    keys: Vec<CwChunkKey>,
    versions: Vec<u64>,
    buffers: Vec<Box<[i32; 4096]>>,
    refetches: usize,
    applied: usize,
}

impl Copy {
    fn new(keys: &[CwChunkKey]) -> Self {
        Self {
            keys: keys.to_vec(),
            versions: vec![CW_NO_VERSION; keys.len()],
            buffers: vec![Box::new([0; 4096]); keys.len()],
            refetches: 0,
            applied: 0,
        }
    }

    fn refetch(&mut self) {
        let mut changed = vec![0u8; self.keys.len()];
        let s = fetch(
            WORLD,
            &self.keys,
            &mut self.versions,
            &mut self.buffers,
            &mut changed,
        );
        assert_eq!(s, Status::Ok, "{}", last_error());
        self.refetches += 1;
    }

    fn take(&mut self, (change, edits): &(CwChange, Vec<CwEdit>)) {
        match change.kind {
            CW_CHANGE_SUBSCRIBED | CW_CHANGE_GAP => self.refetch(),
            CW_CHANGE_EDITS | CW_CHANGE_REFETCH => {
                let i = self
                    .keys
                    .iter()
                    .position(|k| *k == change.chunk)
                    .expect("followed");
                if self.versions[i] == change.version {
                    return;
                }
                if change.kind == CW_CHANGE_EDITS && self.versions[i] == change.previous {
                    for e in edits {
                        self.buffers[i][e.index as usize] = e.value;
                    }
                    self.versions[i] = change.version;
                    self.applied += 1;
                } else {
                    self.refetch();
                }
            }
            other => panic!("unknown kind {other}"),
        }
    }
}

fn put_from_another_client(endpoint: &str, edits: Vec<ChunkEdit>) -> Vec<(ChunkKey, u64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(endpoint, TOKEN, ClientOptions::default()).unwrap();
    let answer = rt.block_on(client.put(WORLD, &edits)).unwrap();
    answer.iter().map(|v| (v.key, v.version)).collect()
}

fn followers_copy_matches_a_fresh_fetch(stack: &Stack) {
    assert_eq!(init(&stack.endpoint(), TOKEN), Status::Ok);
    start_realtime(&stack.realtime_endpoint());
    let keys = [key(0, 0, 0), key(1, 0, 0), key(0, 1, 0)];
    follow(&keys);
    let mut copy = Copy::new(&keys);
    for ev in poll_until(CW_CHANGE_SUBSCRIBED, Duration::from_secs(5)) {
        copy.take(&ev);
    }
    assert_eq!(state(), CW_REALTIME_CONNECTED);

    // Another player: single cubes, a big edit, an unfollowed chunk, several puts in a row.
    let k = |c: &CwChunkKey| ChunkKey::new(c.x, c.y, c.z);
    let mut expected: HashMap<ChunkKey, u64> = HashMap::new();
    let puts: Vec<Vec<ChunkEdit>> = vec![
        vec![ChunkEdit::at_index(k(&keys[0]), 7, 42)],
        vec![
            ChunkEdit::at_index(k(&keys[0]), 8, 43),
            ChunkEdit::at_index(k(&keys[1]), 4095, -1),
            ChunkEdit::at_index(ChunkKey::new(9, 9, 9), 1, 1),
        ],
        (0..500u16)
            .map(|i| ChunkEdit::at_index(k(&keys[2]), i, i32::from(i)))
            .collect(),
        vec![ChunkEdit::at_index(k(&keys[0]), 7, 0)],
    ];
    for edits in puts {
        for (chunk, version) in put_from_another_client(&stack.endpoint(), edits) {
            expected.insert(chunk, version);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let current = |copy: &Copy| {
        copy.keys
            .iter()
            .zip(&copy.versions)
            .all(|(c, v)| expected.get(&k(c)).is_none_or(|e| e == v))
    };
    while !current(&copy) {
        assert!(
            Instant::now() < deadline,
            "copy not current: {:?}",
            copy.versions
        );
        for ev in poll_realtime() {
            copy.take(&ev);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Puts within one tick reach followers as one coalesced change per chunk.
    assert!(
        copy.applied >= 1,
        "small changes applied in place: {}",
        copy.applied
    );
    // The followed copy equals a fresh fetch, cube for cube.
    let mut fresh = Copy::new(&keys);
    fresh.refetch();
    assert_eq!(fresh.versions, copy.versions);
    for (a, b) in fresh.buffers.iter().zip(&copy.buffers) {
        assert!(a[..] == b[..], "followed copy differs from a fresh fetch");
    }
    assert_eq!(cw_realtime_stop(), Status::Ok);
    assert_eq!(state(), CW_REALTIME_OFF);
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn a_followers_copy_matches_a_fresh_fetch_on_the_embedded_store() {
    let _s = serial();
    followers_copy_matches_a_fresh_fetch(&Stack::memory());
}

#[test]
fn a_followers_copy_matches_a_fresh_fetch_on_redis() {
    let _s = serial();
    followers_copy_matches_a_fresh_fetch(&Stack::redis());
}

#[test]
fn a_followers_copy_matches_a_fresh_fetch_on_redis_cluster() {
    let _s = serial();
    followers_copy_matches_a_fresh_fetch(&Stack::cluster());
}

#[test]
fn a_wrong_token_is_refused_at_connect_and_not_retried() {
    let _s = serial();
    let stack = Stack::memory();
    assert_eq!(init(&stack.endpoint(), "not-the-token-123"), Status::Ok);
    start_realtime(&stack.realtime_endpoint());
    let deadline = Instant::now() + Duration::from_secs(5);
    while state() != CW_REALTIME_REFUSED {
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(last_error().contains("401"), "{}", last_error());
    assert!(poll_realtime().is_empty());
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn after_the_gateway_restarts_the_follower_reconnects_and_is_told_of_the_gap() {
    let _s = serial();
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new());
    let start = |port: u16| {
        let store = store.clone();
        TestGateway::start_realtime_at(
            port,
            GatewayConfig::default(),
            TokenSet::new([TOKEN]).into(),
            None,
            move || async move { store },
        )
    };
    let gateway = start(0);
    let port = gateway.port;
    assert_eq!(init(&gateway.blocks_url(), TOKEN), Status::Ok);
    start_realtime(&gateway.realtime_url());
    let keys = [key(0, 0, 0)];
    follow(&keys);
    let mut copy = Copy::new(&keys);
    for ev in poll_until(CW_CHANGE_SUBSCRIBED, Duration::from_secs(5)) {
        copy.take(&ev);
    }
    drop(gateway);
    // Edited while the follower is cut off: no message can reach it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let edit = vec![(
        ChunkKey::new(0, 0, 0),
        vec![cubewalk_protocol::CubeRef {
            index: 3,
            value: 33,
        }],
    )];
    let world = cubewalk_protocol::WorldId::new(WORLD).unwrap();
    let revision = rt.block_on(store.apply(&world, &edit, None)).unwrap()[0];
    let gateway = start(port);
    let events = poll_until(CW_CHANGE_GAP, Duration::from_secs(10));
    for ev in &events {
        copy.take(ev);
    }
    assert_eq!(
        copy.versions[0], revision,
        "the gap was closed by a refetch"
    );
    assert_eq!(copy.buffers[0][3], 33);
    put_from_another_client(
        &gateway.blocks_url(),
        vec![ChunkEdit::at_index(ChunkKey::new(0, 0, 0), 4, 44)],
    );
    let events = poll_until(CW_CHANGE_EDITS, Duration::from_secs(5));
    for ev in &events {
        copy.take(ev);
    }
    assert_eq!(copy.buffers[0][4], 44);
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn a_hundred_subscribers_each_receive_the_change() {
    let stack = Stack::redis();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(&stack.endpoint(), TOKEN, ClientOptions::default()).unwrap();
    let world = cubewalk_protocol::WorldId::new(WORLD).unwrap();
    let chunk = ChunkKey::new(2, 2, 2);
    let followers: Vec<Realtime> = rt.block_on(async {
        (0..100)
            .map(|_| {
                let r = Realtime::start(&client, &stack.realtime_endpoint()).unwrap();
                r.follow(&world, &[chunk]).unwrap();
                r
            })
            .collect()
    });
    let wait_for = |what: &dyn Fn(&RealtimeEvent) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pending: Vec<usize> = (0..followers.len()).collect();
        while !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} followers did not hear",
                pending.len()
            );
            pending.retain(|&i| {
                let mut heard = false;
                followers[i].drain(usize::MAX, |e| {
                    heard |= what(e);
                    true
                });
                !heard
            });
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(&|e| *e == RealtimeEvent::Subscribed);
    let answer = rt
        .block_on(client.put(WORLD, &[ChunkEdit::at_index(chunk, 100, 5)]))
        .unwrap();
    let version = answer[0].version;
    wait_for(
        &|e| matches!(e, RealtimeEvent::Changed(c) if c.version == version && c.edits.as_deref() == Some(&[(100, 5)][..])),
    );
    assert!(followers
        .iter()
        .all(|f| f.state() == RealtimeState::Connected));
}

#[test]
fn hostile_realtime_arguments_get_clear_errors() {
    let _s = serial();
    let stack = Stack::memory();
    let mut changes = [CwChange::default(); 4];
    let mut edits = [CwEdit::default(); 64];
    let (mut n, mut e) = (0usize, 0usize);
    let (changes_ptr, edits_ptr) = (changes.as_mut_ptr(), edits.as_mut_ptr());
    // SAFETY: the pointers are valid for the lengths given unless null on purpose.
    let mut poll = |changes: *mut CwChange, capacity, edit_capacity, out: *mut usize| unsafe {
        cw_realtime_poll(changes, capacity, edits_ptr, edit_capacity, out, &mut e)
    };
    let start = |url: &str| unsafe { cw_realtime_start(url.as_ptr(), url.len()) };
    let follow = |world: &str, chunks: *const CwChunkKey, count| unsafe {
        cw_realtime_follow(world.as_ptr(), world.len(), chunks, count)
    };
    assert_eq!(cw_shutdown(), Status::Ok);
    let url = stack.realtime_endpoint();
    assert_eq!(start(&url), Status::NotInitialized, "before cw_init");
    assert_eq!(init(&stack.endpoint(), TOKEN), Status::Ok);
    assert_eq!(
        poll(changes_ptr, 4, 64, &mut n),
        Status::InvalidArgument,
        "not started"
    );
    // SAFETY: a null endpoint on purpose.
    let null_url = unsafe { cw_realtime_start(std::ptr::null(), 5) };
    assert_eq!(null_url, Status::InvalidArgument);
    for bad in [
        "http://127.0.0.1:1/prod",
        "ws://example.com/prod",
        "not a url",
        "",
    ] {
        assert_eq!(start(bad), Status::InvalidArgument, "{bad}");
    }
    assert_eq!(start(&url), Status::Ok);
    assert_eq!(
        poll(changes_ptr, 4, 63, &mut n),
        Status::InvalidArgument,
        "room for fewer edits than one change may carry"
    );
    assert!(last_error().contains("64"), "{}", last_error());
    assert_eq!(poll(changes_ptr, 0, 64, &mut n), Status::InvalidArgument);
    assert_eq!(
        poll(std::ptr::null_mut(), 4, 64, &mut n),
        Status::InvalidArgument
    );
    assert_eq!(
        poll(changes_ptr, 4, 64, std::ptr::null_mut()),
        Status::InvalidArgument
    );
    let many = vec![key(0, 0, 0); CW_MAX_FOLLOWED_CHUNKS + 1];
    assert_eq!(
        follow(WORLD, many.as_ptr(), many.len()),
        Status::InvalidArgument
    );
    assert_eq!(
        follow("bad world", many.as_ptr(), 1),
        Status::InvalidArgument
    );
    assert_eq!(follow(WORLD, std::ptr::null(), 1), Status::InvalidArgument);
    // Following nothing is allowed, with no array at all.
    assert_eq!(follow(WORLD, std::ptr::null(), 0), Status::Ok);
    // SAFETY: a null out pointer on purpose.
    assert_eq!(
        unsafe { cw_realtime_state(std::ptr::null_mut()) },
        Status::InvalidArgument
    );
    assert_eq!(cw_realtime_stop(), Status::Ok);
    assert_eq!(cw_realtime_stop(), Status::Ok, "stopping twice is harmless");
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn a_subscription_refused_while_redis_is_down_is_sent_again_until_it_holds() {
    let mut stack = Stack::redis();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(&stack.endpoint(), TOKEN, ClientOptions::default()).unwrap();
    let world = cubewalk_protocol::WorldId::new(WORLD).unwrap();
    let chunk = ChunkKey::new(3, 3, 3);
    stack.redis_server().kill();
    let follower = rt.block_on(async {
        let r = Realtime::start(&client, &stack.realtime_endpoint()).unwrap();
        r.follow(&world, &[chunk]).unwrap();
        r
    });
    // The broker's authorizer cannot read the ban flag: the connection is answered 503 (not
    // 401, so the token is not given up): no event, so a caller keeps polling, the error is
    // reported and the follower retries.
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.last_error().is_none_or(|e| !e.contains("503")) {
        assert!(
            Instant::now() < deadline,
            "no error reported: {:?}",
            follower.last_error()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(follower.drain(usize::MAX, |_| true), 0);
    stack.redis_server().restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut subscribed = false;
    while !subscribed {
        assert!(
            Instant::now() < deadline,
            "never subscribed after Redis came back"
        );
        follower.drain(usize::MAX, |e| {
            subscribed |= *e == RealtimeEvent::Subscribed;
            true
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = rt
        .block_on(client.put(WORLD, &[ChunkEdit::at_index(chunk, 9, 9)]))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut heard = false;
    while !heard {
        assert!(
            Instant::now() < deadline,
            "the resent subscription does not hold"
        );
        follower.drain(usize::MAX, |e| {
            heard |= matches!(e, RealtimeEvent::Changed(c) if c.version == answer[0].version);
            true
        });
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn realtime_calls_racing_on_four_threads_with_shutdown_and_init_always_return_a_status() {
    let _s = serial();
    let stack = Stack::memory();
    let endpoint = stack.endpoint();
    let url = stack.realtime_endpoint();
    assert_eq!(init(&endpoint, TOKEN), Status::Ok);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let allowed = [Status::Ok, Status::InvalidArgument, Status::NotInitialized];
    let mut threads = Vec::new();
    for role in 0..4 {
        let (stop, url, endpoint) = (stop.clone(), url.clone(), endpoint.clone());
        threads.push(std::thread::spawn(move || {
            let mut calls = 0u32;
            let mut changes = [CwChange::default(); 8];
            let mut edits = [CwEdit::default(); 512];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (mut n, mut e) = (0, 0);
                // SAFETY: live arrays and strings of the stated lengths.
                let s = unsafe {
                    match role {
                        0 => cw_realtime_poll(
                            changes.as_mut_ptr(),
                            8,
                            edits.as_mut_ptr(),
                            512,
                            &mut n,
                            &mut e,
                        ),
                        1 => {
                            let keys = [key(calls as i32 % 7, 0, 0), key(0, 1, 0)];
                            cw_realtime_follow(WORLD.as_ptr(), WORLD.len(), keys.as_ptr(), 2)
                        }
                        2 => match calls % 3 {
                            0 => cw_realtime_start(url.as_ptr(), url.len()),
                            1 => cw_realtime_stop(),
                            _ => {
                                let mut st = 0;
                                cw_realtime_state(&mut st)
                            }
                        },
                        _ => {
                            if calls.is_multiple_of(10) {
                                cw_shutdown()
                            } else {
                                init(&endpoint, TOKEN)
                            }
                        }
                    }
                };
                assert!(
                    allowed.contains(&s),
                    "role {role} call {calls}: {s:?} {}",
                    last_error()
                );
                calls += 1;
                if role == 3 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            calls
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(calls.iter().all(|&c| c > 10), "{calls:?}");
    // Still usable afterwards.
    assert_eq!(init(&endpoint, TOKEN), Status::Ok);
    start_realtime(&url);
    follow(&[key(0, 0, 0)]);
    poll_until(CW_CHANGE_SUBSCRIBED, Duration::from_secs(5));
    assert_eq!(cw_shutdown(), Status::Ok);
}
