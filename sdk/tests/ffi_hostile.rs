//! Hostile callers of the C ABI: a property test that calls every exported function with null,
//! misaligned and odd-but-valid pointers, zero and huge lengths, invalid UTF-8 and wrong request
//! ids, from several threads at once, with `cw_shutdown` and `cw_init` racing requests in
//! flight. The process must never abort and every call must return a defined status.

use cubewalk::ffi::*;
use proptest::prelude::*;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());
const SLOTS: usize = 16;

/// A pointer argument as a hostile caller might pass it.
#[derive(Debug, Clone, Copy)]
enum Ptr {
    Null,
    Valid,
    Misaligned,
    /// Valid memory, but the last element of the arena: fine for a count of 1 only.
    Tail,
}

/// A count argument.
#[derive(Debug, Clone, Copy)]
enum Count {
    Zero,
    Small(usize),
    Huge,
    Max,
}

#[derive(Debug, Clone)]
enum Call {
    Init {
        endpoint: Vec<u8>,
        token: Vec<u8>,
        ptr: Ptr,
        len: Count,
        with_options: bool,
        struct_size: u32,
    },
    Fetch {
        world: Vec<u8>,
        keys: Ptr,
        versions: Ptr,
        buffers: Ptr,
        entry: Ptr,
        changed: Ptr,
        count: Count,
        begin: bool,
    },
    Put {
        world: Vec<u8>,
        edits: Ptr,
        out: Ptr,
        count: Count,
        capacity: usize,
        index: u32,
        begin: bool,
    },
    Poll(u64),
    PollOwn,
    Cancel(u64),
    CancelOwn,
    Shutdown,
    LastError {
        ptr: Ptr,
        len: Count,
    },
    OptionsDefault(Ptr),
    StatusStr(i32),
    Version,
}

fn ptr() -> impl Strategy<Value = Ptr> {
    prop_oneof![
        Just(Ptr::Null),
        Just(Ptr::Valid),
        Just(Ptr::Valid),
        Just(Ptr::Misaligned),
        Just(Ptr::Tail)
    ]
}

fn count() -> impl Strategy<Value = Count> {
    prop_oneof![
        Just(Count::Zero),
        (1..=SLOTS).prop_map(Count::Small),
        Just(Count::Huge),
        Just(Count::Max)
    ]
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"default".to_vec()),
        Just(vec![0xff, 0xfe, 0x80]),
        proptest::collection::vec(any::<u8>(), 0..80),
        "[a-z]{1,70}".prop_map(String::into_bytes),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (
            prop_oneof![
                Just(b"http://127.0.0.1:9/prod/cubewalkblocks".to_vec()),
                text()
            ],
            text(),
            ptr(),
            count(),
            any::<bool>(),
            prop_oneof![
                Just(0u32),
                Just(std::mem::size_of::<CwOptions>() as u32),
                any::<u32>()
            ]
        )
            .prop_map(|(endpoint, token, ptr, len, with_options, struct_size)| {
                Call::Init {
                    endpoint,
                    token,
                    ptr,
                    len,
                    with_options,
                    struct_size,
                }
            }),
        (
            text(),
            ptr(),
            ptr(),
            ptr(),
            ptr(),
            ptr(),
            count(),
            any::<bool>()
        )
            .prop_map(
                |(world, keys, versions, buffers, entry, changed, count, begin)| Call::Fetch {
                    world,
                    keys,
                    versions,
                    buffers,
                    entry,
                    changed,
                    count,
                    begin
                }
            ),
        (
            text(),
            ptr(),
            ptr(),
            count(),
            0..=SLOTS,
            prop_oneof![0u32..4096, any::<u32>()],
            any::<bool>()
        )
            .prop_map(
                |(world, edits, out, count, capacity, index, begin)| Call::Put {
                    world,
                    edits,
                    out,
                    count,
                    capacity,
                    index,
                    begin
                }
            ),
        prop_oneof![Just(0u64), (1u64 << 40)..u64::MAX].prop_map(Call::Poll),
        Just(Call::PollOwn),
        prop_oneof![Just(0u64), (1u64 << 40)..u64::MAX].prop_map(Call::Cancel),
        Just(Call::CancelOwn),
        Just(Call::Shutdown),
        (ptr(), count()).prop_map(|(ptr, len)| Call::LastError { ptr, len }),
        ptr().prop_map(Call::OptionsDefault),
        any::<i32>().prop_map(Call::StatusStr),
        Just(Call::Version),
    ]
}

/// One thread's memory: every pointer handed to the library points in here, and it outlives
/// every request that may write to it (requests are cancelled before it is dropped).
struct Arena {
    bytes: Vec<u64>,
    keys: Vec<CwChunkKey>,
    versions: Vec<u64>,
    changed: Vec<u8>,
    edits: Vec<CwEdit>,
    out: Vec<CwChunkVersion>,
    out_count: usize,
    buffers: Vec<Vec<i32>>,
    pointers: Vec<*mut i32>,
    own_ids: Vec<u64>,
}

// SAFETY: an arena is used by one thread at a time; the raw pointers point into its own vectors.
unsafe impl Send for Arena {}

impl Arena {
    fn new() -> Self {
        let mut buffers: Vec<Vec<i32>> = (0..SLOTS).map(|_| vec![0i32; 4096 + 1]).collect();
        let pointers = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
        Self {
            bytes: vec![0; 512],
            keys: (0..SLOTS as i32)
                .map(|i| CwChunkKey { x: i, y: 0, z: 0 })
                .collect(),
            versions: vec![CW_NO_VERSION; SLOTS],
            changed: vec![0; SLOTS + 1],
            edits: (0..SLOTS as i32)
                .map(|i| CwEdit {
                    chunk: CwChunkKey { x: i, y: 0, z: 0 },
                    index: 0,
                    value: i,
                })
                .collect(),
            out: vec![CwChunkVersion::default(); SLOTS],
            out_count: 0,
            buffers,
            pointers,
            own_ids: Vec::new(),
        }
    }
}

fn pick<T>(v: &mut [T], p: Ptr) -> *mut T {
    match p {
        Ptr::Null => std::ptr::null_mut(),
        Ptr::Valid => v.as_mut_ptr(),
        Ptr::Misaligned => (v.as_mut_ptr() as *mut u8).wrapping_add(1) as *mut T,
        Ptr::Tail => v.as_mut_ptr().wrapping_add(v.len() - 1),
    }
}

/// A count that never lets the library read past what the pointer holds: anything above what
/// is valid for the pointer is clamped to an over-the-limit value (refused before reading).
fn n(c: Count, p: Ptr) -> usize {
    match (c, p) {
        (Count::Zero, _) => 0,
        (Count::Small(k), Ptr::Tail) if k > 1 => usize::MAX,
        (Count::Small(k), _) => k,
        (Count::Huge, _) => 1 << 40,
        (Count::Max, _) => usize::MAX,
    }
}

fn run(call: &Call, a: &mut Arena) -> i32 {
    unsafe {
        let status = match call {
            Call::Init {
                endpoint,
                token,
                ptr,
                len,
                with_options,
                struct_size,
            } => {
                let ep = if matches!(ptr, Ptr::Null) {
                    std::ptr::null()
                } else {
                    endpoint.as_ptr()
                };
                let ep_len = match len {
                    Count::Huge | Count::Max => usize::MAX,
                    Count::Zero => 0,
                    _ => endpoint.len(),
                };
                let mut o = std::mem::zeroed::<CwOptions>();
                cw_options_default(&mut o);
                o.struct_size = *struct_size;
                o.timeout_ms = 300;
                o.max_retries = 0;
                if *with_options {
                    cw_init_with_options(ep, ep_len, token.as_ptr(), token.len(), &o)
                } else {
                    cw_init(ep, ep_len, token.as_ptr(), token.len())
                }
            }
            Call::Fetch {
                world,
                keys,
                versions,
                buffers,
                entry,
                changed,
                count,
                begin,
            } => {
                let tail = [keys, versions, buffers, changed]
                    .iter()
                    .any(|p| matches!(p, Ptr::Tail));
                // A tail pointer holds one element: any larger count must be one the library
                // refuses before reading (over its limit), or the test itself would be at fault.
                let k = match n(*count, Ptr::Valid) {
                    k if tail && k > 1 => usize::MAX,
                    k => k,
                };
                for (i, p) in a.pointers.iter_mut().enumerate() {
                    let base = a.buffers[i].as_mut_ptr();
                    *p = match entry {
                        Ptr::Null if i == 0 => std::ptr::null_mut(),
                        Ptr::Misaligned if i == 0 => (base as *mut u8).wrapping_add(1) as *mut i32,
                        _ => base,
                    };
                }
                let kp = pick(&mut a.keys, *keys);
                let vp = pick(&mut a.versions, *versions);
                let bp = pick(&mut a.pointers, *buffers);
                let cp = pick(&mut a.changed, *changed);
                if *begin {
                    let mut id = 0u64;
                    let s = cw_fetch_blocks_begin(
                        world.as_ptr(),
                        world.len(),
                        kp,
                        k,
                        vp,
                        bp,
                        cp,
                        &mut id,
                    );
                    if id != 0 {
                        a.own_ids.push(id);
                    }
                    s
                } else {
                    cw_fetch_blocks(world.as_ptr(), world.len(), kp, k, vp, bp, cp)
                }
            }
            Call::Put {
                world,
                edits,
                out,
                count,
                capacity,
                index,
                begin,
            } => {
                let k = n(*count, *edits);
                for e in a.edits.iter_mut() {
                    e.index = *index;
                }
                let cap = if matches!(out, Ptr::Tail) {
                    (*capacity).min(1)
                } else {
                    *capacity
                };
                let ep = pick(&mut a.edits, *edits);
                let op = pick(&mut a.out, *out);
                if *begin {
                    let mut id = 0u64;
                    let s = cw_put_blocks_begin(
                        world.as_ptr(),
                        world.len(),
                        ep,
                        k,
                        op,
                        cap,
                        &mut a.out_count,
                        &mut id,
                    );
                    if id != 0 {
                        a.own_ids.push(id);
                    }
                    s
                } else {
                    cw_put_blocks(
                        world.as_ptr(),
                        world.len(),
                        ep,
                        k,
                        op,
                        cap,
                        &mut a.out_count,
                    )
                }
            }
            Call::Poll(id) => cw_poll(*id),
            Call::PollOwn => match a.own_ids.pop() {
                Some(id) => {
                    let s = cw_poll(id);
                    if s == cubewalk::Status::Pending {
                        a.own_ids.push(id);
                    }
                    s
                }
                None => cw_poll(0),
            },
            Call::Cancel(id) => cw_cancel(*id),
            Call::CancelOwn => cw_cancel(a.own_ids.pop().unwrap_or(0)),
            Call::Shutdown => cw_shutdown(),
            Call::LastError { ptr, len } => {
                let bytes = a.bytes.len() * 8;
                let p = pick(&mut a.bytes, *ptr) as *mut u8;
                let l = match (len, ptr) {
                    (Count::Zero, _) => 0,
                    (_, Ptr::Tail) => 8,
                    (Count::Small(k), _) => *k,
                    _ => bytes - 8,
                };
                cw_last_error(p, l, std::ptr::null_mut())
            }
            Call::OptionsDefault(p) => {
                let mut o = [std::mem::zeroed::<CwOptions>(); 2];
                cw_options_default(pick(&mut o, *p))
            }
            Call::StatusStr(s) => {
                assert!(!cw_status_str(*s).is_null());
                return 0;
            }
            Call::Version => {
                cw_version();
                return 0;
            }
        };
        status as i32
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]
    #[test]
    fn hostile_calls_from_many_threads_always_return_a_status(
        scripts in proptest::collection::vec(proptest::collection::vec(call(), 1..40), 4)
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut arenas: Vec<Arena> = (0..scripts.len()).map(|_| Arena::new()).collect();
        let results: Vec<Vec<i32>> = std::thread::scope(|s| {
            let handles: Vec<_> = scripts
                .iter()
                .zip(arenas.iter_mut())
                .map(|(script, arena)| {
                    s.spawn(move || {
                        let statuses: Vec<i32> = script.iter().map(|c| run(c, arena)).collect();
                        // Nothing may write into this arena once the thread is done.
                        for id in arena.own_ids.drain(..) {
                            cw_cancel(id);
                        }
                        statuses
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a call panicked through the ABI")).collect()
        });
        cw_shutdown();
        for statuses in results {
            for s in statuses {
                prop_assert!((0..=13).contains(&s), "undefined status {}", s);
            }
        }
    }
}
