//! The C ABI against a mock server, called exactly as C would (raw pointers and lengths):
//! argument checks for every function, the poll queue, cancel, re-init with requests in
//! flight, and shutdown followed by init. The library state is global, so these tests run one
//! at a time.

use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_protocol::codec::{blob_to_base64, encode_chunk, fixtures};
use serde_json::json;
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};
use wiremock::ResponseTemplate;

mod common;
use common::{init, last_error, serial, Mock2};

fn terrain_answer(version: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"world": "default", "chunks": [
        {"key": [0, 0, 0], "version": version, "data": blob_to_base64(&encode_chunk(&fixtures::terrain()))}
    ]}))
}

fn fetch_one(buffer: &mut [i32; 4096], version: &mut u64) -> Status {
    let key = CwChunkKey { x: 0, y: 0, z: 0 };
    let ptrs = [buffer.as_mut_ptr()];
    let mut changed = 0u8;
    unsafe {
        cw_fetch_blocks(
            b"default".as_ptr(),
            7,
            &key,
            1,
            version,
            ptrs.as_ptr(),
            &mut changed,
        )
    }
}

fn begin_fetch(buffer: &mut [i32; 4096], version: &mut u64) -> (Status, u64) {
    // SAFETY: each caller keeps the outputs alive until the request ends.
    unsafe { common::begin_fetch_origin(buffer.as_mut_ptr(), version, null_mut()) }
}

fn poll_until_done(id: u64) -> Status {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = cw_poll(id);
        if s != Status::Pending {
            return s;
        }
        assert!(Instant::now() < deadline, "request {id} never finished");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn every_function_refuses_bad_arguments_with_a_message() {
    let _g = serial();
    let mock = Mock2::new("GET", terrain_answer(1));
    let ep = mock.endpoint();
    let tok = "mock-token-1";
    let check = |s: Status, what: &str| {
        assert_eq!(s, Status::InvalidArgument, "{what}");
        let msg = last_error();
        assert!(!msg.is_empty(), "{what}: empty cw_last_error");
        assert!(!msg.contains(tok), "{what}: token leaked in '{msg}'");
    };
    unsafe {
        check(cw_init(null(), 5, tok.as_ptr(), tok.len()), "null endpoint");
        check(
            cw_init(ep.as_ptr(), 0, tok.as_ptr(), tok.len()),
            "empty endpoint",
        );
        check(cw_init(ep.as_ptr(), ep.len(), null(), 3), "null token");
        check(
            cw_init(ep.as_ptr(), ep.len(), tok.as_ptr(), 0),
            "empty token",
        );
        check(
            cw_init(ep.as_ptr(), ep.len(), tok.as_ptr(), usize::MAX),
            "absurd token length",
        );
        let bad_utf8 = [0xffu8, 0xfe, 0x41];
        check(
            cw_init(bad_utf8.as_ptr(), 3, tok.as_ptr(), tok.len()),
            "endpoint not UTF-8",
        );
        check(
            cw_init(ep.as_ptr(), ep.len(), bad_utf8.as_ptr(), 3),
            "token not UTF-8",
        );
        let remote = "http://example.com/prod/cubewalkblocks";
        check(
            cw_init(remote.as_ptr(), remote.len(), tok.as_ptr(), tok.len()),
            "plain http to a remote host",
        );
        check(cw_options_default(null_mut()), "null options out");
        let mut opts = std::mem::zeroed::<CwOptions>();
        assert_eq!(cw_options_default(&mut opts), Status::Ok);
        let mut wrong = opts;
        wrong.struct_size = 4;
        check(
            cw_init_with_options(ep.as_ptr(), ep.len(), tok.as_ptr(), tok.len(), &wrong),
            "struct_size",
        );
        let mut wrong = opts;
        wrong.max_in_flight = 0;
        check(
            cw_init_with_options(ep.as_ptr(), ep.len(), tok.as_ptr(), tok.len(), &wrong),
            "max_in_flight 0",
        );
        let mut wrong = opts;
        wrong.timeout_ms = 0;
        check(
            cw_init_with_options(ep.as_ptr(), ep.len(), tok.as_ptr(), tok.len(), &wrong),
            "timeout 0",
        );
        let misaligned = (&opts as *const CwOptions as *const u8).add(1) as *const CwOptions;
        check(
            cw_init_with_options(ep.as_ptr(), ep.len(), tok.as_ptr(), tok.len(), misaligned),
            "misaligned options",
        );
        assert_eq!(
            cw_init_with_options(ep.as_ptr(), ep.len(), tok.as_ptr(), tok.len(), &opts),
            Status::Ok
        );

        let key = CwChunkKey::default();
        let mut buf = [0i32; 4096];
        let ptrs = [buf.as_mut_ptr()];
        let mut ver = CW_NO_VERSION;
        let mut id = 0u64;
        let w = b"default";
        check(
            cw_fetch_blocks(null(), 7, &key, 1, &mut ver, ptrs.as_ptr(), null_mut()),
            "null world",
        );
        check(
            cw_fetch_blocks(w.as_ptr(), 0, &key, 1, &mut ver, ptrs.as_ptr(), null_mut()),
            "empty world",
        );
        check(
            cw_fetch_blocks(
                b"a b".as_ptr(),
                3,
                &key,
                1,
                &mut ver,
                ptrs.as_ptr(),
                null_mut(),
            ),
            "bad world id",
        );
        check(
            cw_fetch_blocks(
                w.as_ptr(),
                7,
                null(),
                1,
                &mut ver,
                ptrs.as_ptr(),
                null_mut(),
            ),
            "null keys",
        );
        check(
            cw_fetch_blocks(w.as_ptr(), 7, &key, 0, &mut ver, ptrs.as_ptr(), null_mut()),
            "zero count",
        );
        check(
            cw_fetch_blocks(
                w.as_ptr(),
                7,
                &key,
                usize::MAX,
                &mut ver,
                ptrs.as_ptr(),
                null_mut(),
            ),
            "huge count",
        );
        check(
            cw_fetch_blocks(
                w.as_ptr(),
                7,
                &key,
                1,
                null_mut(),
                ptrs.as_ptr(),
                null_mut(),
            ),
            "null versions",
        );
        check(
            cw_fetch_blocks(w.as_ptr(), 7, &key, 1, &mut ver, null(), null_mut()),
            "null buffers",
        );
        let null_buf = [null_mut::<i32>()];
        check(
            cw_fetch_blocks(
                w.as_ptr(),
                7,
                &key,
                1,
                &mut ver,
                null_buf.as_ptr(),
                null_mut(),
            ),
            "null buffer entry",
        );
        let odd = [(buf.as_mut_ptr() as *mut u8).add(1) as *mut i32];
        check(
            cw_fetch_blocks(w.as_ptr(), 7, &key, 1, &mut ver, odd.as_ptr(), null_mut()),
            "misaligned buffer",
        );
        let dup = [key, key];
        let mut vers = [CW_NO_VERSION; 2];
        let two = [buf.as_mut_ptr(), buf.as_mut_ptr()];
        assert_eq!(
            cw_fetch_blocks(
                w.as_ptr(),
                7,
                dup.as_ptr(),
                2,
                vers.as_mut_ptr(),
                two.as_ptr(),
                null_mut()
            ),
            Status::InvalidArgument,
            "duplicate key"
        );
        check(
            cw_fetch_blocks_begin(
                w.as_ptr(),
                7,
                &key,
                1,
                &mut ver,
                ptrs.as_ptr(),
                null_mut(),
                null_mut(),
            ),
            "null request id",
        );
        check(
            cw_fetch_blocks_begin(
                w.as_ptr(),
                7,
                null(),
                1,
                &mut ver,
                ptrs.as_ptr(),
                null_mut(),
                &mut id,
            ),
            "begin null keys",
        );

        let edit = CwEdit {
            chunk: key,
            index: 1,
            value: 2,
        };
        let mut out = [CwChunkVersion::default(); 1];
        let mut n = 0usize;
        check(
            cw_put_blocks(w.as_ptr(), 7, null(), 1, out.as_mut_ptr(), 1, &mut n),
            "null edits",
        );
        check(
            cw_put_blocks(w.as_ptr(), 7, &edit, 0, out.as_mut_ptr(), 1, &mut n),
            "zero edits",
        );
        check(
            cw_put_blocks(w.as_ptr(), 7, &edit, 1, null_mut(), 1, &mut n),
            "null out_versions",
        );
        check(
            cw_put_blocks(w.as_ptr(), 7, &edit, 1, out.as_mut_ptr(), 1, null_mut()),
            "null out_count",
        );
        let bad_edit = CwEdit {
            chunk: key,
            index: 4096,
            value: 2,
        };
        check(
            cw_put_blocks(w.as_ptr(), 7, &bad_edit, 1, out.as_mut_ptr(), 1, &mut n),
            "index 4096",
        );
        check(
            cw_put_blocks(
                w.as_ptr(),
                7,
                &edit,
                usize::MAX / 64,
                out.as_mut_ptr(),
                1,
                &mut n,
            ),
            "huge edit count",
        );
        check(
            cw_put_blocks_begin(
                w.as_ptr(),
                7,
                &edit,
                1,
                out.as_mut_ptr(),
                1,
                &mut n,
                null_mut(),
            ),
            "put begin null id",
        );

        check(cw_poll(0), "poll id 0");
        check(cw_poll(u64::MAX), "poll unknown id");
        check(cw_cancel(12345678), "cancel unknown id");

        // cw_last_error: its own bad arguments do not replace the message it reports.
        let before = last_error();
        assert_eq!(
            cw_last_error(null_mut(), 10, null_mut()),
            Status::InvalidArgument
        );
        assert_eq!(
            cw_last_error(buf.as_mut_ptr() as *mut u8, 0, null_mut()),
            Status::InvalidArgument
        );
        assert_eq!(last_error(), before);
        let mut small = [0xAAu8; 4];
        let mut full = 0;
        assert_eq!(
            cw_last_error(small.as_mut_ptr(), 4, &mut full),
            Status::BufferTooSmall
        );
        assert_eq!(small[3], 0, "truncated message is NUL-terminated");
        assert_eq!(full, before.len());
    }
    // Nothing above reached the server.
    assert_eq!(mock.requests(), 0);
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn not_initialized_after_shutdown_and_status_names() {
    let _g = serial();
    assert_eq!(cw_shutdown(), Status::Ok);
    assert_eq!(cw_shutdown(), Status::Ok, "shutdown twice is fine");
    let mut buf = [0i32; 4096];
    let mut v = CW_NO_VERSION;
    assert_eq!(fetch_one(&mut buf, &mut v), Status::NotInitialized);
    assert!(last_error().contains("not initialized"));
    let name = unsafe { std::ffi::CStr::from_ptr(cw_status_str(Status::Timeout as i32)) };
    assert_eq!(name.to_str().unwrap(), "CW_STATUS_TIMEOUT");
    let name = unsafe { std::ffi::CStr::from_ptr(cw_status_str(99)) };
    assert_eq!(name.to_str().unwrap(), "CW_UNKNOWN_STATUS");
    assert_eq!(cw_version(), 1 << 8);
}

#[test]
fn blocking_and_polled_fetch_fill_the_buffer_and_map_statuses() {
    let _g = serial();
    let mock = Mock2::new("GET", terrain_answer(7));
    assert_eq!(init(&mock.endpoint(), "mock-token-1"), Status::Ok);
    let mut buf = [-1i32; 4096];
    let mut v = CW_NO_VERSION;
    assert_eq!(fetch_one(&mut buf, &mut v), Status::Ok);
    assert_eq!((v, buf), (7, *fixtures::terrain()));

    let mut buf2 = [-1i32; 4096];
    let mut v2 = CW_NO_VERSION;
    let (s, id) = begin_fetch(&mut buf2, &mut v2);
    assert_eq!(s, Status::Ok);
    assert_ne!(id, 0);
    assert_eq!(poll_until_done(id), Status::Ok);
    assert_eq!((v2, buf2[0]), (7, 1));
    assert_eq!(
        cw_poll(id),
        Status::InvalidArgument,
        "a finished id is forgotten"
    );

    let unauthorized = Mock2::new(
        "GET",
        ResponseTemplate::new(401).set_body_string(r#"{"message":"Unauthorized"}"#),
    );
    assert_eq!(init(&unauthorized.endpoint(), "mock-token-1"), Status::Ok);
    let (s, id) = begin_fetch(&mut buf2, &mut v2);
    assert_eq!(s, Status::Ok);
    assert_eq!(poll_until_done(id), Status::Unauthorized);
    assert!(last_error().contains("Unauthorized"));
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn cancel_leaves_buffers_untouched() {
    let _g = serial();
    let slow = Mock2::new(
        "GET",
        terrain_answer(1).set_delay(Duration::from_millis(300)),
    );
    assert_eq!(init(&slow.endpoint(), "mock-token-1"), Status::Ok);
    let mut buf = [-5i32; 4096];
    let mut v = CW_NO_VERSION;
    let (_, id) = begin_fetch(&mut buf, &mut v);
    assert_eq!(cw_poll(id), Status::Pending);
    assert_eq!(cw_cancel(id), Status::Ok);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cw_poll(id), Status::InvalidArgument);
    assert!(buf.iter().all(|&c| c == -5));
    assert_eq!(v, CW_NO_VERSION);
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn reinit_with_requests_in_flight_finishes_them_with_the_old_settings() {
    let _g = serial();
    let old = Mock2::new(
        "GET",
        terrain_answer(11).set_delay(Duration::from_millis(300)),
    );
    let new = Mock2::new("GET", terrain_answer(22));
    assert_eq!(init(&old.endpoint(), "mock-token-1"), Status::Ok);
    let mut a = [0i32; 4096];
    let mut va = CW_NO_VERSION;
    let (_, id) = begin_fetch(&mut a, &mut va);
    assert_eq!(init(&new.endpoint(), "mock-token-2"), Status::Ok);
    let mut b = [0i32; 4096];
    let mut vb = CW_NO_VERSION;
    assert_eq!(fetch_one(&mut b, &mut vb), Status::Ok);
    assert_eq!(vb, 22, "new requests use the new endpoint");
    assert_eq!(poll_until_done(id), Status::Ok);
    assert_eq!(
        va, 11,
        "the request in flight finished against the old endpoint"
    );
    assert_eq!((old.requests(), new.requests()), (1, 1));
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn shutdown_cancels_in_flight_and_init_works_again() {
    let _g = serial();
    let slow = Mock2::new("GET", terrain_answer(1).set_delay(Duration::from_secs(30)));
    assert_eq!(init(&slow.endpoint(), "mock-token-1"), Status::Ok);
    let mut a = [0i32; 4096];
    let mut va = CW_NO_VERSION;
    let (_, id) = begin_fetch(&mut a, &mut va);
    // A blocking call on another thread, stuck on the slow server.
    let blocked = std::thread::spawn(|| {
        let mut b = [0i32; 4096];
        let mut vb = CW_NO_VERSION;
        fetch_one(&mut b, &mut vb)
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cw_shutdown(), Status::Ok);
    assert_eq!(blocked.join().unwrap(), Status::Cancelled);
    assert_eq!(cw_poll(id), Status::Cancelled);
    assert!(a.iter().all(|&c| c == 0));

    let fresh = Mock2::new("GET", terrain_answer(3));
    assert_eq!(init(&fresh.endpoint(), "mock-token-1"), Status::Ok);
    let mut c = [0i32; 4096];
    let mut vc = CW_NO_VERSION;
    assert_eq!(fetch_one(&mut c, &mut vc), Status::Ok);
    assert_eq!(vc, 3);
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn put_capacity_is_checked_before_sending() {
    let _g = serial();
    let mock = Mock2::new(
        "PUT",
        ResponseTemplate::new(200).set_body_json(json!({"world": "default", "chunks": [
            {"key": [0, 0, 0], "version": 1}, {"key": [1, 0, 0], "version": 4}
        ]})),
    );
    assert_eq!(init(&mock.endpoint(), "mock-token-1"), Status::Ok);
    let edits = [
        CwEdit {
            chunk: CwChunkKey { x: 0, y: 0, z: 0 },
            index: 0,
            value: 1,
        },
        CwEdit {
            chunk: CwChunkKey { x: 1, y: 0, z: 0 },
            index: 0,
            value: 1,
        },
    ];
    let mut out = [CwChunkVersion::default(); 2];
    let mut n = 0usize;
    let s = unsafe {
        cw_put_blocks(
            b"default".as_ptr(),
            7,
            edits.as_ptr(),
            2,
            out.as_mut_ptr(),
            1,
            &mut n,
        )
    };
    assert_eq!((s, n), (Status::BufferTooSmall, 2));
    assert_eq!(mock.requests(), 0);
    let s = unsafe {
        cw_put_blocks(
            b"default".as_ptr(),
            7,
            edits.as_ptr(),
            2,
            out.as_mut_ptr(),
            2,
            &mut n,
        )
    };
    assert_eq!((s, n), (Status::Ok, 2));
    assert_eq!((out[0].version, out[1].key.x, out[1].version), (1, 1, 4));
    assert_eq!(cw_shutdown(), Status::Ok);
}
