//! Smoke test of a running CubeWalk backend (a deployed stack or the local gateway), as a
//! game would use it: a fetch and a put through the REST API, a wrong token refused, and a
//! put seen by a follower over the WebSocket API, with timings.
//!
//! ```sh
//! cargo run -p cubewalk --example smoke -- <ApiUrl> <RealtimeUrl> <token>
//! ```
//! Exits 0 when every check passes; each check prints one line.

use cubewalk::realtime::{Realtime, RealtimeEvent, RealtimeState};
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, Error};
use cubewalk_protocol::WorldId;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: smoke <ApiUrl> <RealtimeUrl> <token>");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match rt.block_on(smoke(&args[1], &args[2], &args[3])) {
        Ok(()) => println!("smoke: every check passed"),
        Err(why) => {
            eprintln!("smoke: FAILED: {why}");
            std::process::exit(1);
        }
    }
}

async fn smoke(api: &str, realtime: &str, token: &str) -> Result<(), String> {
    let world = WorldId::new("smoke").map_err(|e| e.to_string())?;
    // A chunk far from where anyone plays, different each run.
    // In the deployment's small `smoke` world (the template's default `Worlds` has it:
    // 64 chunks each way, 8 down, 1 MiB), a chunk drawn at random so runs rarely share one.
    let chunk = ChunkKey::new(
        i32::from(rand_u16() % 129) - 64,
        -8,
        i32::from(rand_u16() % 129) - 64,
    );
    let client = Client::new(api, token, ClientOptions::default()).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let fetched = client
        .fetch(world.as_str(), &[(chunk, None)])
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    println!(
        "fetch 1 chunk: ok in {:?} (version {})",
        started.elapsed(),
        fetched[0].version
    );

    let wrong = Client::new(api, "not-the-token-0000", ClientOptions::default())
        .map_err(|e| e.to_string())?;
    match wrong.fetch(world.as_str(), &[(chunk, None)]).await {
        Err(Error::Unauthorized(_)) => println!("wrong token: refused (401)"),
        other => return Err(format!("a wrong token was not refused: {other:?}")),
    }

    let follower = Realtime::start(&client, realtime).map_err(|e| e.to_string())?;
    follower
        .follow(&world, &[chunk])
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    wait(&follower, Duration::from_secs(15), |e| {
        *e == RealtimeEvent::Subscribed
    })
    .await?;
    println!(
        "realtime connect + subscribe: ok in {:?}",
        started.elapsed()
    );

    let value = i32::from(rand_u16()) + 1;
    let started = Instant::now();
    let answer = client
        .put(world.as_str(), &[ChunkEdit::at_index(chunk, 1, value)])
        .await
        .map_err(|e| format!("put: {e}"))?;
    let put_took = started.elapsed();
    let version = answer[0].version;
    wait(&follower, Duration::from_secs(10), |e| {
        matches!(e, RealtimeEvent::Changed(c) if c.version == version && c.edits.as_deref() == Some(&[(1, value)][..]))
    })
    .await?;
    println!(
        "put 1 cube: ok in {put_took:?}; its change reached the follower {:?} after the put began",
        started.elapsed()
    );
    let back = client
        .fetch(world.as_str(), &[(chunk, None)])
        .await
        .map_err(|e| format!("fetch after put: {e}"))?;
    let cubes = back[0].data.as_ref().ok_or("fetch after put: no data")?;
    if cubes[1] != value || back[0].version != version {
        return Err("the put is not what a fetch reads back".into());
    }
    println!("fetch after put: the cube and version match");

    let refused = Realtime::start(&wrong, realtime).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while refused.state() != RealtimeState::Refused {
        if Instant::now() > deadline {
            return Err(format!(
                "a wrong token was not refused at connect: {:?}",
                refused.last_error()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("realtime with a wrong token: refused at connect");
    Ok(())
}

async fn wait(
    follower: &Realtime,
    within: Duration,
    what: impl Fn(&RealtimeEvent) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = false;
        follower.drain(usize::MAX, |e| {
            seen |= what(e);
            true
        });
        if seen {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "realtime: nothing after {within:?} (state {:?}, last problem {:?})",
                follower.state(),
                follower.last_error()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn rand_u16() -> u16 {
    rand::random()
}
