//! The exported C functions, called as C would, against the local gateway on the embedded
//! store and on a real redis-server.

use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_e2e::*;
use std::time::{Duration, Instant};

fn round_trip_versions_and_not_modified(stack: &Stack) {
    assert_eq!(init(&stack.endpoint(), TOKEN), Status::Ok);
    let w = "e2e";
    let (s, v) = put(
        w,
        &[
            CwEdit {
                chunk: key(0, 0, 0),
                index: 0,
                value: 42,
            },
            CwEdit {
                chunk: key(0, 0, 0),
                index: 4095,
                value: -1,
            },
            CwEdit {
                chunk: key(-3, 2, 1),
                index: 17,
                value: i32::MIN,
            },
        ],
    );
    assert_eq!(s, Status::Ok, "{}", last_error());
    assert_eq!(v.iter().map(|c| c.key.x).collect::<Vec<_>>(), vec![0, -3]);

    let keys = [key(0, 0, 0), key(-3, 2, 1), key(9, 9, 9)];
    let mut versions = [CW_NO_VERSION; 3];
    let mut buffers = vec![Box::new([7i32; 4096]); 3];
    let mut changed = [9u8; 3];
    assert_eq!(
        fetch(w, &keys, &mut versions, &mut buffers, &mut changed),
        Status::Ok
    );
    // The put answered the revisions that the fetch now reports; never-written is all air.
    assert_eq!(versions, [v[0].version, v[1].version, 0]);
    assert_eq!(changed, [1, 1, 1]);
    assert_eq!(
        (buffers[0][0], buffers[0][4095], buffers[0][1]),
        (42, -1, 0)
    );
    assert_eq!(buffers[1][17], i32::MIN);
    assert!(
        buffers[2].iter().all(|&c| c == 0),
        "never-written chunk reads as air"
    );

    // Refetch holding current versions: nothing written.
    buffers[0][0] = 1234;
    assert_eq!(
        fetch(w, &keys, &mut versions, &mut buffers, &mut changed),
        Status::Ok
    );
    assert_eq!(changed, [0, 0, 0]);
    assert_eq!(buffers[0][0], 1234, "unchanged chunk's buffer left alone");

    // Another edit: only that chunk comes back.
    let held = versions;
    let (s, v2) = put(
        w,
        &[CwEdit {
            chunk: key(-3, 2, 1),
            index: 18,
            value: 5,
        }],
    );
    assert_eq!(s, Status::Ok);
    assert_ne!(v2[0].version, held[1]);
    assert_eq!(
        fetch(w, &keys, &mut versions, &mut buffers, &mut changed),
        Status::Ok
    );
    assert_eq!(
        (changed, versions),
        ([0, 1, 0], [held[0], v2[0].version, 0])
    );
    assert_eq!((buffers[1][17], buffers[1][18]), (i32::MIN, 5));
}

fn wrong_token_is_unauthorized(stack: &Stack) {
    assert_eq!(init(&stack.endpoint(), "not-the-token-42"), Status::Ok);
    let mut versions = [CW_NO_VERSION];
    let mut buffers = vec![Box::new([0i32; 4096])];
    let mut changed = [0u8];
    assert_eq!(
        fetch(
            "e2e",
            &[key(0, 0, 0)],
            &mut versions,
            &mut buffers,
            &mut changed
        ),
        Status::Unauthorized
    );
    let msg = last_error();
    assert!(msg.contains("401"), "{msg}");
    assert!(!msg.contains("not-the-token-42"), "token leaked: {msg}");
    let (s, _) = put(
        "e2e",
        &[CwEdit {
            chunk: key(0, 0, 0),
            index: 0,
            value: 1,
        }],
    );
    assert_eq!(s, Status::Unauthorized);
    // A large body (16,384 edits, about 1 MB) is refused before the gateway reads it; the
    // client still reads the 401 rather than a reset connection.
    let big: Vec<CwEdit> = (0..16384)
        .map(|i| CwEdit {
            chunk: key(i / 4096, 0, 0),
            index: (i % 4096) as u32,
            value: 123_456_789,
        })
        .collect();
    for _ in 0..5 {
        let (s, _) = put("e2e", &big);
        assert_eq!(s, Status::Unauthorized, "{}", last_error());
    }
}

fn non_blocking_polled_to_completion(stack: &Stack) {
    assert_eq!(init(&stack.endpoint(), TOKEN), Status::Ok);
    let w = b"polled";
    let edits: Vec<CwEdit> = (0..4096)
        .map(|i| CwEdit {
            chunk: key(1, 1, 1),
            index: i,
            value: i as i32,
        })
        .collect();
    let mut out = [CwChunkVersion::default(); 1];
    let mut n = 0usize;
    let mut put_id = 0u64;
    let s = unsafe {
        cw_put_blocks_begin(
            w.as_ptr(),
            w.len(),
            edits.as_ptr(),
            edits.len(),
            out.as_mut_ptr(),
            1,
            &mut n,
            &mut put_id,
        )
    };
    assert_eq!(s, Status::Ok);
    assert_eq!(wait(put_id), Status::Ok);
    assert_eq!(n, 1);
    let put_version = out[0].version;

    let k = key(1, 1, 1);
    let mut version = CW_NO_VERSION;
    let mut buffer = Box::new([0i32; 4096]);
    let ptrs = [buffer.as_mut_ptr()];
    let mut changed = 0u8;
    let mut id = 0u64;
    let s = unsafe {
        cw_fetch_blocks_begin(
            w.as_ptr(),
            w.len(),
            &k,
            1,
            &mut version,
            ptrs.as_ptr(),
            &mut changed,
            &mut id,
        )
    };
    assert_eq!(s, Status::Ok);
    assert_eq!(wait(id), Status::Ok);
    assert_eq!((version, changed), (put_version, 1));
    assert!(buffer.iter().enumerate().all(|(i, &c)| c == i as i32));
}

fn wait(id: u64) -> Status {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cw_poll(id) {
            Status::Pending => {
                assert!(Instant::now() < deadline, "request never finished");
                std::thread::sleep(Duration::from_millis(1));
            }
            s => return s,
        }
    }
}

fn many_threads_at_once(stack: &Stack) {
    assert_eq!(init(&stack.endpoint(), TOKEN), Status::Ok);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let world = "threads";
                for round in 1..=40 {
                    let k = key(t, 0, 0);
                    let (s, v) = put(
                        world,
                        &[CwEdit {
                            chunk: k,
                            index: round as u32,
                            value: round,
                        }],
                    );
                    assert_eq!(s, Status::Ok, "{}", last_error());
                    let mut versions = [CW_NO_VERSION];
                    let mut buffers = vec![Box::new([0i32; 4096])];
                    let mut changed = [0u8];
                    assert_eq!(
                        fetch(world, &[k], &mut versions, &mut buffers, &mut changed),
                        Status::Ok
                    );
                    assert_eq!(buffers[0][round as usize], round);
                    // Only this thread writes this chunk: the fetch sees what the put answered.
                    assert_eq!(versions[0], v[0].version);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn neighbourhood_of_729_chunks(stack: &Stack) {
    assert_eq!(init(&stack.endpoint(), TOKEN), Status::Ok);
    let keys: Vec<CwChunkKey> = (-4..=4)
        .flat_map(|x| (-4..=4).flat_map(move |z| (-4..=4).map(move |y| key(x, y, z))))
        .collect();
    let edits: Vec<CwEdit> = keys
        .iter()
        .map(|&k| CwEdit {
            chunk: k,
            index: 0,
            value: k.x * 100 + k.y * 10 + k.z,
        })
        .collect();
    let mut out = vec![CwChunkVersion::default(); keys.len()];
    let mut n = 0usize;
    let w = b"hood";
    let s = unsafe {
        cw_put_blocks(
            w.as_ptr(),
            w.len(),
            edits.as_ptr(),
            edits.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        )
    };
    assert_eq!((s, n), (Status::Ok, 729), "{}", last_error());
    let mut versions = vec![CW_NO_VERSION; keys.len()];
    let mut buffers = vec![Box::new([0i32; 4096]); keys.len()];
    let mut changed = vec![0u8; keys.len()];
    assert_eq!(
        fetch("hood", &keys, &mut versions, &mut buffers, &mut changed),
        Status::Ok
    );
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(buffers[i][0], k.x * 100 + k.y * 10 + k.z);
    }
    assert_eq!(
        fetch("hood", &keys, &mut versions, &mut buffers, &mut changed),
        Status::Ok
    );
    assert!(changed.iter().all(|&c| c == 0));
}

fn suite(stack: &Stack) {
    round_trip_versions_and_not_modified(stack);
    wrong_token_is_unauthorized(stack);
    non_blocking_polled_to_completion(stack);
    many_threads_at_once(stack);
    neighbourhood_of_729_chunks(stack);
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn c_abi_against_gateway_on_embedded_store() {
    let _g = serial();
    suite(&Stack::memory());
}

#[test]
fn c_abi_against_gateway_on_real_redis() {
    let _g = serial();
    suite(&Stack::redis());
}
