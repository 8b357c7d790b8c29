//! What a client holds stays true, and what it sends twice lands once.
//!
//! - A chunk's version names its content: after Redis loses data (FLUSHALL, a restart without
//!   persistence, a failover to a replica that missed the last write) and another player
//!   writes the chunk again, a client still holding the old version gets the current data,
//!   never "not modified".
//! - A put whose answer is lost after the server applied it is retried by the SDK under the
//!   same idempotency key: the retry changes nothing, even when another player set the same
//!   cube in between (a fault-injecting relay drops the answer and runs the other player's
//!   put before the retry).
//! - Two non-blocking puts of one chunk from one client apply in the order they were begun,
//!   even when the first one's request is held back on the network.
//! - A put the SDK gave up on (its request held back on the network past the timeout) is
//!   fenced before the call answers: when its request finally reaches the server, after a
//!   later put of the same cube was acknowledged, it is refused and the later edit stays.

use cubewalk::ffi::*;
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, Status};
use cubewalk_e2e::*;
use cubewalk_testkit::Relay;
use std::time::{Duration, Instant};

const WORLD: &str = "stale";

fn client(endpoint: &str) -> Client {
    let mut options = ClientOptions::default();
    options.retry.max_retries = 10;
    options.retry.base_delay = Duration::from_millis(20);
    Client::new(endpoint, TOKEN, options).unwrap()
}

fn set(index: u16, value: i32) -> ChunkEdit {
    ChunkEdit::at_index(ChunkKey::new(0, 0, 0), index, value)
}

/// Puts until the gateway answers (Redis may still be coming back), returning the version.
async fn put_until_ok(c: &Client, edit: ChunkEdit) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.put(WORLD, std::slice::from_ref(&edit)).await {
            Ok(v) => return v[0].version,
            Err(e) => {
                assert!(Instant::now() < deadline, "put never succeeded: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The shared scenario: player A writes cube 0, client X loads the chunk; `lose` makes Redis
/// lose that write; player B writes cube 5; X asks with the version it holds.
async fn stale_client_gets_current_data(endpoint: &str, lose: impl FnOnce()) {
    let (a, b, x) = (client(endpoint), client(endpoint), client(endpoint));
    let first = put_until_ok(&a, set(0, 111)).await;
    let k = ChunkKey::new(0, 0, 0);
    let held = x.fetch(WORLD, &[(k, None)]).await.unwrap();
    assert_eq!(held[0].version, first);
    assert_eq!(held[0].data.as_ref().unwrap()[0], 111);

    lose();

    let second = put_until_ok(&b, set(5, 222)).await;
    assert_ne!(second, first, "two contents share one version");
    let now = x.fetch(WORLD, &[(k, Some(first))]).await.unwrap();
    let data = now[0]
        .data
        .as_ref()
        .expect("answered 'not modified' for content the client does not hold");
    assert_eq!((data[0], data[5], now[0].version), (0, 222, second));
}

#[test]
fn flushed_redis_never_answers_not_modified_for_other_content() {
    let redis = RedisServer::start();
    let stack = Stack::redis_at(redis.url());
    runtime().block_on(stale_client_gets_current_data(&stack.endpoint(), || {
        assert_eq!(redis.command(&["FLUSHALL"]).as_deref(), Some("+OK"));
    }));
}

#[test]
fn restarted_redis_without_persistence_never_answers_not_modified_for_other_content() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let stack = Stack::redis_at(url);
    let endpoint = stack.endpoint();
    runtime().block_on(stale_client_gets_current_data(&endpoint, || {
        redis.restart();
    }));
}

#[test]
fn promoted_replica_that_missed_the_last_write_never_answers_not_modified() {
    let primary = RedisServer::start();
    let replica = RedisServer::start();
    let pport = primary.port.to_string();
    assert_eq!(
        replica
            .command(&["REPLICAOF", "127.0.0.1", &pport])
            .as_deref(),
        Some("+OK")
    );
    // The gateway reaches Redis through a relay, as a client reaches ElastiCache through its
    // primary endpoint's DNS name, which moves to the replica on failover.
    let relay = Relay::start(primary.port);
    let stack = Stack::redis_at(format!("redis://127.0.0.1:{}", relay.port));
    let endpoint = stack.endpoint();
    let rt = runtime();
    let a = client(&endpoint);
    // An earlier write reaches the replica.
    rt.block_on(put_until_ok(&a, set(1, 7)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while primary.command(&["WAIT", "1", "1000"]).as_deref() != Some(":1") {
        assert!(Instant::now() < deadline, "replica never caught up");
    }
    let k = ChunkKey::new(0, 0, 0);
    // The replica stops receiving, then the primary acknowledges one more write.
    assert_eq!(
        replica.command(&["REPLICAOF", "NO", "ONE"]).as_deref(),
        Some("+OK")
    );
    let last = rt.block_on(put_until_ok(&a, set(0, 111)));
    let x = client(&endpoint);
    let held = rt.block_on(x.fetch(WORLD, &[(k, None)])).unwrap();
    assert_eq!(held[0].version, last);
    // Failover: the endpoint now leads to the promoted replica, which never saw `last`.
    relay.switch(replica.port);
    let b = client(&endpoint);
    let second = rt.block_on(put_until_ok(&b, set(5, 222)));
    assert_ne!(second, last);
    let now = rt.block_on(x.fetch(WORLD, &[(k, Some(last))])).unwrap();
    let data = now[0]
        .data
        .as_ref()
        .expect("answered 'not modified' after a failover lost the write the client holds");
    // The replica's copy: cube 1 from before, cube 5 from B, and A's lost cube 0 is gone.
    assert_eq!((data[0], data[1], data[5]), (0, 7, 222));
}

#[test]
fn retried_put_whose_answer_was_lost_never_overwrites_a_newer_edit() {
    let stack = Stack::redis();
    let direct = stack.endpoint();
    let relay = Relay::start(stack.gateway.port);
    let via_relay = format!("http://127.0.0.1:{}/prod/cubewalkblocks", relay.port);
    let b_endpoint = direct.clone();
    // When A's first answer is lost, B sets the same cube before A retries.
    relay.drop_next_answer(Box::new(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            client(&b_endpoint)
                .put(WORLD, &[set(0, 222)])
                .await
                .expect("B's put");
        });
    }));
    let rt = runtime();
    let a = client(&via_relay);
    let answered = rt.block_on(a.put(WORLD, &[set(0, 111)])).expect("A's put");
    assert_eq!(relay.dropped(), 1, "the relay did not lose A's answer");
    let now = rt
        .block_on(client(&direct).fetch(WORLD, &[(ChunkKey::new(0, 0, 0), None)]))
        .unwrap();
    assert_eq!(
        now[0].data.as_ref().unwrap()[0],
        222,
        "A's retry wrote its older value over B's edit"
    );
    // A was answered what its first (applied) attempt produced, not B's content.
    assert_ne!(answered[0].version, now[0].version);
    assert_ne!(answered[0].version, cubewalk_protocol::EMPTY_REVISION);
}

/// Two contents that share one revision under the earlier scheme (a SHA-256 prefix of the
/// content: found offline in about 2^32 hashes, `tests/fixtures/revision_collision.json`).
/// A player who writes one, lets others fetch it, then writes the other would have every
/// client holding the first told "not modified" forever. With revisions drawn per write, the
/// client holding the first gets the second.
#[test]
fn a_crafted_collision_of_the_old_scheme_is_no_longer_a_collision() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/revision_collision.json")).unwrap();
    let content = |name: &str| -> Vec<ChunkEdit> {
        fixture[name]["cubes_nonzero"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let index = pair[0].as_u64().unwrap() as u16;
                set(index, pair[1].as_i64().unwrap() as i32)
            })
            .collect()
    };
    let cubes = |edits: &[ChunkEdit]| {
        let mut c = [0i32; 4096];
        for e in edits {
            let cube = e.resolve().unwrap();
            c[usize::from(cube.index)] = cube.value;
        }
        c
    };
    let (a, b) = (content("a"), content("b"));
    let old = |edits: &[ChunkEdit]| {
        cubewalk_protocol::content_revision(&cubewalk_protocol::encode_chunk(&cubes(edits)))
    };
    assert_ne!(cubes(&a), cubes(&b));
    assert_eq!(
        old(&a),
        old(&b),
        "the fixture collides under the old scheme"
    );
    let stack = Stack::redis();
    let rt = runtime();
    let c = client(&stack.endpoint());
    let k = ChunkKey::new(0, 0, 0);
    let held = rt.block_on(c.put(WORLD, &a)).unwrap()[0].version;
    // Overwrite every cube of `a` with `b`'s values: the chunk now holds exactly `b`.
    rt.block_on(c.put(WORLD, &b)).unwrap();
    let got = rt.block_on(c.fetch(WORLD, &[(k, Some(held))])).unwrap();
    let data = got[0]
        .data
        .as_ref()
        .expect("answered 'not modified' to a client holding the other content");
    assert_eq!(**data, cubes(&b));
}

#[test]
fn a_put_the_sdk_gave_up_on_never_lands_after_a_later_acknowledged_one() {
    let stack = Stack::redis();
    let relay = Relay::start(stack.gateway.port);
    let via_relay = format!("http://127.0.0.1:{}/prod/cubewalkblocks", relay.port);
    let rt = runtime();
    let options = ClientOptions {
        timeout: Duration::from_millis(400),
        ..ClientOptions::default()
    };
    let a = Client::new(&via_relay, TOKEN, options).unwrap();
    // A's first request sits on the network for 1.5 s; the SDK gives up after 0.4 s, fences
    // it (on a new connection, not held back) and answers the timeout.
    relay.delay_next_connection(Duration::from_millis(1500));
    let started = Instant::now();
    let err = rt
        .block_on(a.put(WORLD, &[set(9, 111)]))
        .expect_err("the held-back put must time out");
    assert_eq!(err.status(), Status::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "answered only after the held-back request arrived: {:?}",
        started.elapsed()
    );
    // Then A sets the cube again, and is acknowledged, before the first request arrives.
    let b = rt
        .block_on(a.put(WORLD, &[set(9, 222)]))
        .expect("the later put");
    std::thread::sleep(Duration::from_millis(1800).saturating_sub(started.elapsed()));
    let direct = client(&stack.endpoint());
    let now = rt
        .block_on(direct.fetch(WORLD, &[(ChunkKey::new(0, 0, 0), None)]))
        .unwrap();
    assert_eq!(
        now[0].data.as_ref().unwrap()[9],
        222,
        "the abandoned put landed after the later acknowledged one"
    );
    assert_eq!(now[0].version, b[0].version);
}

#[test]
fn non_blocking_puts_of_one_chunk_apply_in_the_order_begun() {
    let _g = serial();
    let stack = Stack::redis();
    let relay = Relay::start(stack.gateway.port);
    let endpoint = format!("http://127.0.0.1:{}/prod/cubewalkblocks", relay.port);
    assert_eq!(init(&endpoint, TOKEN), Status::Ok);
    let w = "ordered";
    for round in 0..5 {
        // The first put's request is held back on the network; the second is not.
        relay.delay_next_connection(Duration::from_millis(300));
        let mut ids = [0u64; 2];
        let mut outs = [[CwChunkVersion::default(); 1]; 2];
        let mut counts = [0usize; 2];
        for (n, value) in [1, 2].into_iter().enumerate() {
            let edit = CwEdit {
                chunk: key(0, 0, 0),
                index: 0,
                value: round * 10 + value,
            };
            // SAFETY: valid arrays that outlive the request (polled to completion below).
            let s = unsafe {
                cw_put_blocks_begin(
                    w.as_ptr(),
                    w.len(),
                    &edit,
                    1,
                    outs[n].as_mut_ptr(),
                    1,
                    &mut counts[n],
                    &mut ids[n],
                )
            };
            assert_eq!(s, Status::Ok, "{}", last_error());
        }
        for id in ids {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match cw_poll(id) {
                    Status::Pending => {
                        assert!(Instant::now() < deadline);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    s => {
                        assert_eq!(s, Status::Ok, "{}", last_error());
                        break;
                    }
                }
            }
        }
        let mut versions = [CW_NO_VERSION];
        let mut buffers = vec![Box::new([0i32; 4096])];
        let mut changed = [0u8];
        assert_eq!(
            fetch(
                w,
                &[key(0, 0, 0)],
                &mut versions,
                &mut buffers,
                &mut changed
            ),
            Status::Ok
        );
        assert_eq!(
            buffers[0][0],
            round * 10 + 2,
            "round {round}: the put begun first applied last"
        );
        assert_eq!(versions[0], outs[1][0].version);
    }
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn an_empty_put_gets_the_same_answer_from_every_store() {
    let stacks = [
        ("embedded", Stack::memory()),
        ("redis", Stack::redis()),
        ("cluster", Stack::cluster()),
    ];
    let http = reqwest::blocking::Client::new();
    for (name, stack) in &stacks {
        let resp = http
            .put(stack.endpoint())
            .header("token", TOKEN)
            .body(r#"{"edits":[]}"#)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(
            resp.text().unwrap(),
            r#"{"world":"default","chunks":[]}"#,
            "{name}"
        );
    }
}
