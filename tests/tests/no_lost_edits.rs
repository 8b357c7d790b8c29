//! No acknowledged edit is ever lost: 16 SDK clients (threads, through the C ABI) edit
//! overlapping and disjoint cubes of the same few chunks at once, against the local gateway on
//! real Redis and on a 3-node Redis Cluster. Afterwards every cube holds the value of its last
//! acknowledged edit: for the cubes a client owns, the last one it was acknowledged (its puts
//! are sequential); for the cubes every client writes, an acknowledged value (each edit writes
//! a unique value, so anything else would be a lost or invented write). A put's answer names
//! the chunk's content (its revision), which carries no order across clients.

use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_e2e::*;
use std::collections::HashMap;

const THREADS: u32 = 16;
const PUTS_PER_THREAD: u32 = 250;
const EDITS_PER_PUT: usize = 4;
const CHUNKS: [CwChunkKey; 3] = [
    CwChunkKey { x: 0, y: 0, z: 0 },
    CwChunkKey { x: 1, y: 0, z: 0 },
    CwChunkKey { x: -1, y: 2, z: 5 },
];
/// Cubes every client writes (contended).
const SHARED_CUBES: u32 = 24;
/// Each client also owns 8 cubes no one else writes.
fn own_cube(thread: u32, k: u32) -> u32 {
    1000 + thread * 8 + k
}

/// (chunk index, cube) -> (sequence number of the acknowledging put in its client, value).
type Acked = HashMap<(usize, u32), (u32, i32)>;

fn client_thread(t: u32, world: &'static str) -> (Acked, u32) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(t + 1) * 0x1000_0001);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acked: Acked = HashMap::new();
    let mut edits_made = 0;
    for seq in 0..PUTS_PER_THREAD {
        let mut edits = Vec::with_capacity(EDITS_PER_PUT);
        let mut used = std::collections::HashSet::new();
        while edits.len() < EDITS_PER_PUT {
            let chunk = (next() % 3) as usize;
            let cube = if edits.len() % 2 == 0 {
                (next() % u64::from(SHARED_CUBES)) as u32
            } else {
                own_cube(t, (next() % 8) as u32)
            };
            if !used.insert((chunk, cube)) {
                continue;
            }
            // Unique, non-zero value per edit: thread in the high bits, sequence below.
            let value = (((t + 1) << 20) | (seq << 2) | edits.len() as u32) as i32;
            edits.push((
                chunk,
                CwEdit {
                    chunk: CHUNKS[chunk],
                    index: cube,
                    value,
                },
            ));
        }
        let raw: Vec<CwEdit> = edits.iter().map(|(_, e)| *e).collect();
        let (status, versions) = put(world, &raw);
        assert_eq!(status, Status::Ok, "thread {t} put {seq}: {}", last_error());
        assert_eq!(versions.len(), {
            let mut touched: Vec<usize> = edits.iter().map(|(c, _)| *c).collect();
            touched.sort_unstable();
            touched.dedup();
            touched.len()
        });
        for (chunk, e) in edits {
            acked.insert((chunk, e.index), (seq, e.value));
            edits_made += 1;
        }
    }
    (acked, edits_made)
}

fn hammer(stack: &Stack, world: &'static str) {
    let endpoint = stack.endpoint();
    let s = init_with(&endpoint, |o| {
        o.timeout_ms = 60_000;
        o.max_retries = 20;
        o.max_in_flight = 64;
    });
    assert_eq!(s, Status::Ok);

    let handles: Vec<_> = (0..THREADS)
        .map(|t| std::thread::spawn(move || client_thread(t, world)))
        .collect();
    // Owned cubes: the owner's last acknowledged value. Shared cubes: every value any client
    // was acknowledged for it.
    let mut owned: HashMap<(usize, u32), i32> = HashMap::new();
    let mut shared: HashMap<(usize, u32), std::collections::HashSet<i32>> = HashMap::new();
    let mut edits_made = 0;
    for h in handles {
        let (acked, made) = h.join().unwrap();
        edits_made += made;
        for ((chunk, cube), (_, value)) in acked {
            if cube < SHARED_CUBES {
                shared.entry((chunk, cube)).or_default().insert(value);
            } else {
                owned.insert((chunk, cube), value);
            }
        }
    }

    let mut versions = [CW_NO_VERSION; 3];
    let mut buffers = vec![Box::new([0i32; 4096]); 3];
    let mut changed = [0u8; 3];
    assert_eq!(
        fetch(world, &CHUNKS, &mut versions, &mut buffers, &mut changed),
        Status::Ok
    );
    let mut lost = 0;
    for (&(chunk, cube), &value) in &owned {
        if buffers[chunk][cube as usize] != value {
            lost += 1;
            eprintln!(
                "LOST: chunk {chunk} owned cube {cube}: want {value}, have {}",
                buffers[chunk][cube as usize]
            );
        }
    }
    for (&(chunk, cube), values) in &shared {
        if !values.contains(&buffers[chunk][cube as usize]) {
            lost += 1;
            eprintln!(
                "WRONG: chunk {chunk} shared cube {cube} holds {}, which no client was acknowledged for",
                buffers[chunk][cube as usize]
            );
        }
    }
    let last_len = owned.len() + shared.len();
    println!(
        "no-lost-edits[{world}]: {THREADS} clients, {edits_made} edits acknowledged in {} puts, {} cubes checked, {lost} lost, final versions {versions:?}",
        THREADS * PUTS_PER_THREAD,
        last_len
    );
    assert_eq!(lost, 0, "acknowledged edits were lost");
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn sixteen_clients_lose_no_edit_on_redis() {
    let _g = serial();
    hammer(&Stack::redis(), "nolost-redis");
}

#[test]
fn sixteen_clients_lose_no_edit_on_redis_cluster() {
    let _g = serial();
    hammer(&Stack::cluster(), "nolost-cluster");
}
