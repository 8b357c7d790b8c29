//! The C ABI's promises about caller memory once a call has returned, tried as a game would
//! break them: shutdown with requests finished and in flight, `cw_poll` and `cw_cancel` racing
//! on two threads (also run under valgrind by `scripts/memcheck.sh`), one buffer given twice,
//! a panic inside a request, a redirect that would carry the token away, puts that fail
//! part way, and the realtime functions across init/shutdown cycles.

use cubewalk::ffi::realtime::*;
use cubewalk::ffi::types::{CW_CHANGE_EDITS, CW_CHANGE_SUBSCRIBED};
use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_protocol::codec::{blob_to_base64, encode_chunk, fixtures};
use serde_json::json;
use std::ptr::null_mut;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, ResponseTemplate};

mod common;
use common::{last_error, serial, Mock2};

const TOKEN: &str = "lifecycle-token-1";
const SENTINEL: i32 = 0x5A5A_5A5A;

fn terrain(delay: Duration) -> Mock {
    Mock::given(method("GET")).respond_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({"world": "default", "chunks": [
                {"key": [0, 0, 0], "version": 7, "data": blob_to_base64(&encode_chunk(&fixtures::terrain()))}
            ]}))
            .set_delay(delay),
    )
}

fn init(endpoint: &str) -> Status {
    common::init(endpoint, TOKEN)
}

/// Begins a fetch of chunk (0,0,0) into `buffer`, `version` and `changed`.
fn begin_fetch(buffer: *mut i32, version: *mut u64, changed: *mut u8) -> (Status, u64) {
    // SAFETY: each caller keeps the outputs alive until the request ends.
    unsafe { common::begin_fetch_origin(buffer, version, changed) }
}

#[test]
fn after_shutdown_every_request_polls_cancelled_and_writes_nothing() {
    let _g = serial();
    let mock = Mock2::with(vec![terrain(Duration::from_millis(300))]);
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let mut finished = Box::new([SENTINEL; 4096]);
    let mut finished_version = CW_NO_VERSION;
    let mut finished_changed = 9u8;
    let (s, done_id) = begin_fetch(
        finished.as_mut_ptr(),
        &mut finished_version,
        &mut finished_changed,
    );
    assert_eq!(s, Status::Ok);
    // Let it finish without polling it: its result waits in the library.
    std::thread::sleep(Duration::from_millis(900));
    let mut running = Box::new([SENTINEL; 4096]);
    let mut running_version = CW_NO_VERSION;
    let (s, running_id) = begin_fetch(running.as_mut_ptr(), &mut running_version, null_mut());
    assert_eq!(s, Status::Ok);
    assert_eq!(pending_requests(), 2);

    assert_eq!(cw_shutdown(), Status::Ok);
    assert_eq!(
        pending_requests(),
        0,
        "shutdown kept requests no one will poll"
    );
    assert_eq!(cw_poll(running_id), Status::Cancelled);
    assert_eq!(cw_poll(done_id), Status::Cancelled);
    assert_eq!(cw_cancel(done_id), Status::Ok);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        finished.iter().all(|&c| c == SENTINEL),
        "written after shutdown"
    );
    assert!(
        running.iter().all(|&c| c == SENTINEL),
        "written after shutdown"
    );
    assert_eq!((finished_version, finished_changed), (CW_NO_VERSION, 9));
    assert_eq!(running_version, CW_NO_VERSION);
    // Ids never issued stay invalid.
    assert_eq!(cw_poll(0), Status::InvalidArgument);
    assert_eq!(cw_poll(u64::MAX), Status::InvalidArgument);
    // And the library works again after init.
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let (s, id) = begin_fetch(running.as_mut_ptr(), &mut running_version, null_mut());
    assert_eq!(s, Status::Ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cw_poll(id) == Status::Pending {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(running_version, 7);
    assert_eq!(cw_shutdown(), Status::Ok);
}

/// One thread polls a request while another cancels it. Whatever `cw_cancel` answers, once it
/// has returned the canceller owns the memory again: it fills it with a sentinel, and nothing
/// may overwrite that afterwards. The answer (64 chunks, 1 MiB to copy out) is ready before
/// both threads start together, so the cancel often lands while the poll is writing.
#[test]
fn nothing_is_written_after_cancel_returns_even_while_another_thread_polls() {
    const CHUNKS: usize = 64;
    let _g = serial();
    let blob = blob_to_base64(&encode_chunk(&fixtures::terrain()));
    let entries: Vec<_> = (0..CHUNKS)
        .map(|x| json!({"key": [x, 0, 0], "version": 7, "data": blob}))
        .collect();
    let mock = Mock2::with(vec![Mock::given(method("GET")).respond_with(
        ResponseTemplate::new(200).set_body_json(json!({"world": "default", "chunks": entries})),
    )]);
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let rounds: u32 = std::env::var("CUBEWALK_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let keys: Vec<CwChunkKey> = (0..CHUNKS as i32)
        .map(|x| CwChunkKey { x, y: 0, z: 0 })
        .collect();
    let (mut raced, mut cancelled_first) = (0, 0);
    for round in 0..rounds {
        let mut buffers = vec![0i32; 4096 * CHUNKS];
        let ptrs: Vec<*mut i32> = (0..CHUNKS)
            .map(|i| unsafe { buffers.as_mut_ptr().add(i * 4096) })
            .collect();
        let mut versions = vec![CW_NO_VERSION; CHUNKS];
        let mut id = 0;
        let s = unsafe {
            cw_fetch_blocks_begin(
                b"default".as_ptr(),
                7,
                keys.as_ptr(),
                CHUNKS,
                versions.as_mut_ptr(),
                ptrs.as_ptr(),
                null_mut(),
                &mut id,
            )
        };
        assert_eq!(s, Status::Ok, "{}", last_error());
        // Let the answer arrive and decode; it then waits for cw_poll.
        std::thread::sleep(Duration::from_millis(20));
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let go = start.clone();
        let poller = std::thread::spawn(move || {
            go.wait();
            loop {
                let s = cw_poll(id);
                if s != Status::Pending {
                    return s;
                }
            }
        });
        start.wait();
        // Stagger the cancel across the poll's write.
        for _ in 0..(round % 50) * 200 {
            std::hint::spin_loop();
        }
        let cancelled = cw_cancel(id);
        buffers.fill(SENTINEL);
        versions.fill(1234);
        let polled = poller.join().unwrap();
        match (cancelled, polled) {
            (Status::InvalidArgument, Status::Ok) => raced += 1,
            (Status::Ok, _) => cancelled_first += 1,
            other => panic!("round {round}: unexpected {other:?}"),
        }
        assert!(
            buffers.iter().all(|&c| c == SENTINEL) && versions.iter().all(|&v| v == 1234),
            "round {round}: written after cw_cancel returned {cancelled:?} (poll: {polled:?})"
        );
    }
    println!(
        "poll/cancel race: {rounds} rounds, poll completed first in {raced}, cancel first in {cancelled_first}"
    );
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn the_same_or_overlapping_buffers_in_one_fetch_are_refused() {
    let _g = serial();
    let mock = Mock2::with(vec![terrain(Duration::ZERO)]);
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let keys = [
        CwChunkKey { x: 0, y: 0, z: 0 },
        CwChunkKey { x: 1, y: 0, z: 0 },
    ];
    let mut big = vec![0i32; 4096 * 2 + 1];
    let base = big.as_mut_ptr();
    let cases: [(&str, [*mut i32; 2]); 3] = [
        ("same buffer twice", [base, base]),
        ("overlapping by one cube", [base, unsafe { base.add(4095) }]),
        (
            "overlapping, given in reverse",
            [unsafe { base.add(100) }, base],
        ),
    ];
    for (what, ptrs) in cases {
        let mut versions = [CW_NO_VERSION; 2];
        let s = unsafe {
            cw_fetch_blocks(
                b"default".as_ptr(),
                7,
                keys.as_ptr(),
                2,
                versions.as_mut_ptr(),
                ptrs.as_ptr(),
                null_mut(),
            )
        };
        assert_eq!(s, Status::InvalidArgument, "{what}");
        assert!(last_error().contains("overlap"), "{what}: {}", last_error());
        let mut id = 0;
        let s = unsafe {
            cw_fetch_blocks_begin(
                b"default".as_ptr(),
                7,
                keys.as_ptr(),
                2,
                versions.as_mut_ptr(),
                ptrs.as_ptr(),
                null_mut(),
                &mut id,
            )
        };
        assert_eq!(s, Status::InvalidArgument, "{what} (begin)");
    }
    assert_eq!(mock.requests(), 0, "nothing is sent for refused arguments");
    // Adjacent buffers are fine.
    let ptrs = [base, unsafe { base.add(4096) }];
    let mut versions = [CW_NO_VERSION; 2];
    let s = unsafe {
        cw_fetch_blocks(
            b"default".as_ptr(),
            7,
            keys.as_ptr(),
            1,
            versions.as_mut_ptr(),
            ptrs.as_ptr(),
            null_mut(),
        )
    };
    assert_eq!(s, Status::Ok, "{}", last_error());
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn a_panic_inside_a_request_is_internal_not_cancelled() {
    let _g = serial();
    let mock = Mock2::with(vec![terrain(Duration::ZERO)]);
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let id = test_hooks::begin_panicking_request(null_mut()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match cw_poll(id) {
            Status::Pending => {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(2));
            }
            s => break s,
        }
    };
    assert_eq!(status, Status::Internal);
    assert!(
        last_error().contains("deliberate panic"),
        "{}",
        last_error()
    );
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn a_redirect_is_an_error_and_the_token_never_leaves() {
    let _g = serial();
    // The host the redirect points to: another loopback address, watched for any connection.
    let other = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_port = other.local_addr().unwrap().port();
    let location = format!("http://127.0.0.2:{other_port}/prod/cubewalkblocks");
    let mock = Mock2::with(vec![Mock::given(method("GET")).respond_with(
        ResponseTemplate::new(302).insert_header("Location", location.as_str()),
    )]);
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let mut buffer = Box::new([0i32; 4096]);
    let mut version = CW_NO_VERSION;
    let key = CwChunkKey { x: 0, y: 0, z: 0 };
    let ptrs = [buffer.as_mut_ptr()];
    let s = unsafe {
        cw_fetch_blocks(
            b"default".as_ptr(),
            7,
            &key,
            1,
            &mut version,
            ptrs.as_ptr(),
            null_mut(),
        )
    };
    let message = last_error();
    assert_eq!(s, Status::Protocol, "{message}");
    assert!(
        message.contains("302") && message.contains("127.0.0.2"),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        other.accept().is_err(),
        "the SDK followed the redirect to the other host"
    );
    assert_eq!(mock.requests(), 1, "a redirect is not retried");
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn a_split_put_that_fails_part_way_lists_the_chunks_applied() {
    let _g = serial();
    // 300 chunks make two requests (256 + 44); the one holding chunk 299 is refused.
    let answer = |n: std::ops::Range<i32>| json!({"world": "default", "chunks": n.map(|x| json!({"key": [x, 0, 0], "version": 5})).collect::<Vec<_>>()});
    let mock = Mock2::with(vec![
        Mock::given(method("PUT"))
            .and(body_string_contains("[299,0,0]"))
            .respond_with(ResponseTemplate::new(422).set_body_json(
                json!({"error": {"code": "invalid_request", "message": "refused for the test"}}),
            )),
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer(0..256))),
    ]);
    assert_eq!(init(&mock.endpoint()), Status::Ok);
    let edits: Vec<CwEdit> = (0..300)
        .map(|x| CwEdit {
            chunk: CwChunkKey { x, y: 0, z: 0 },
            index: 0,
            value: 1,
        })
        .collect();
    let mut out = vec![CwChunkVersion::default(); 300];
    let mut n = usize::MAX;
    let s = unsafe {
        cw_put_blocks(
            b"default".as_ptr(),
            7,
            edits.as_ptr(),
            edits.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        )
    };
    assert_eq!(s, Status::BadRequest, "{}", last_error());
    assert_eq!(n, 256, "the chunks confirmed applied");
    assert!(out[..256]
        .iter()
        .enumerate()
        .all(|(i, v)| v.key.x == i as i32 && v.version == 5));
    assert!(
        last_error().contains("256 of 300 chunks confirmed applied"),
        "{}",
        last_error()
    );
    // A single-request put that fails confirms nothing.
    let mut n = usize::MAX;
    let s = unsafe {
        cw_put_blocks(
            b"default".as_ptr(),
            7,
            edits[299..].as_ptr(),
            1,
            out.as_mut_ptr(),
            1,
            &mut n,
        )
    };
    assert_eq!((s, n), (Status::BadRequest, 0));
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn the_rust_client_sends_nothing_for_an_empty_put() {
    let mock = Mock2::with(vec![]);
    let client = cubewalk::Client::new(&mock.endpoint(), TOKEN, Default::default()).unwrap();
    let got = mock.rt.block_on(client.put("default", &[])).unwrap();
    assert!(got.is_empty());
    assert_eq!(mock.requests(), 0);
}

/// An MQTT-over-WebSocket broker standing in for the realtime endpoint: accepts CONNECT,
/// acknowledges every SUBSCRIBE and then publishes one change of chunk (0,0,0) on its topic.
/// Runs on its own thread until the process ends.
fn fake_realtime_server() -> String {
    use common::mqtt::{accept_mqtt, read_mqtt, send_mqtt};
    use rumqttc::mqttbytes::v4::{
        ConnAck, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReasonCode,
    };
    use rumqttc::mqttbytes::QoS;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Some(mut ws) = accept_mqtt(s).await else {
                        return;
                    };
                    while let Some(packet) = read_mqtt(&mut ws).await {
                        match packet {
                            Packet::Connect(_) => {
                                let ack = ConnAck::new(ConnectReturnCode::Success, false);
                                send_mqtt(&mut ws, Packet::ConnAck(ack)).await;
                            }
                            Packet::Subscribe(sub) => {
                                let codes = vec![
                                    SubscribeReasonCode::Success(QoS::AtMostOnce);
                                    sub.filters.len()
                                ];
                                send_mqtt(&mut ws, Packet::SubAck(SubAck::new(sub.pkid, codes)))
                                    .await;
                                let change = r#"[[[0,0,0],"AAAAAAAAAAA","AQAAAAAAAAA",0,1,7,42]]"#;
                                let publish = Publish::new(
                                    "cw/default/0/0/0",
                                    QoS::AtMostOnce,
                                    change.as_bytes().to_vec(),
                                );
                                send_mqtt(&mut ws, Packet::Publish(publish)).await;
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
    });
    format!("ws://{}/mqtt", rx.recv().unwrap())
}

/// Realtime through the C ABI across init/shutdown cycles (also under valgrind): events land
/// only in the arrays given to `cw_realtime_poll`, and stop, shutdown and init again leave
/// nothing running that could write anywhere.
#[test]
fn realtime_start_follow_poll_stop_and_shutdown_cycles() {
    let _s = serial();
    let url = fake_realtime_server();
    let world = "default";
    for round in 0..3 {
        assert_eq!(init("http://127.0.0.1:9/prod/cubewalkblocks"), Status::Ok);
        // SAFETY: live strings and arrays of the stated lengths.
        unsafe {
            assert_eq!(cw_realtime_start(url.as_ptr(), url.len()), Status::Ok);
            let key = CwChunkKey { x: 0, y: 0, z: 0 };
            assert_eq!(
                cw_realtime_follow(world.as_ptr(), world.len(), &key, 1),
                Status::Ok
            );
        }
        let mut changes = [CwChange::default(); 4];
        let mut edits = [CwEdit::default(); 64];
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.contains(&CW_CHANGE_EDITS) {
            assert!(
                Instant::now() < deadline,
                "round {round}: saw {seen:?}: {}",
                last_error()
            );
            let (mut n, mut e) = (0usize, 0usize);
            // SAFETY: arrays of the stated lengths.
            let s = unsafe {
                cw_realtime_poll(
                    changes.as_mut_ptr(),
                    4,
                    edits.as_mut_ptr(),
                    64,
                    &mut n,
                    &mut e,
                )
            };
            assert_eq!(s, Status::Ok);
            for c in &changes[..n] {
                seen.push(c.kind);
                if c.kind == CW_CHANGE_EDITS {
                    let edit = edits[c.first_edit as usize];
                    assert_eq!((c.edit_count, edit.index, edit.value), (1, 7, 42));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen[0], CW_CHANGE_SUBSCRIBED);
        if round % 2 == 0 {
            assert_eq!(cw_realtime_stop(), Status::Ok);
        }
        assert_eq!(cw_shutdown(), Status::Ok);
    }
}
