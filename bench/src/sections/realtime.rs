//! Section 7: realtime. Edit-to-notification latency through the local gateway's WebSocket
//! API (Redis store and Redis subscription index), requests per idle player-hour polling
//! against following, and what 1,000 player-hours cost at AWS list prices.

use crate::env::*;
use crate::prices;
use crate::report::*;
use crate::stats::{ms, Samples};
use cubewalk::realtime::{Realtime, RealtimeEvent, KEEPALIVE as PING_INTERVAL};
use cubewalk::{ChunkEdit, ChunkKey};
use cubewalk_protocol::limits::MAX_CHUNKS_PER_FETCH;
use cubewalk_protocol::WorldId;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Assumed mean billed duration of one invocation (a Redis round trip in the VPC at the
/// template's memory size; the Cost section measures each kind).
const ASSUMED_INVOCATION_SECONDS: f64 = 0.010;
/// API Gateway closes every WebSocket connection after 2 hours.
const CONNECTION_LIFETIME_HOURS: f64 = 2.0;

pub(crate) fn realtime(env: &Env) -> Section {
    let mut b = String::new();
    let mut goals = Vec::new();
    let world = WorldId::new("realtime-bench").unwrap();
    let chunk = ChunkKey::new(0, 0, 0);
    let endpoint = env.stack.realtime_endpoint();
    let quick = env.rounds < 1000;

    writeln!(b, "A put through the REST API (local gateway on Redis, subscription index in Redis) and the followers' WebSocket connections (the SDK's `Realtime`, as `cw_realtime_poll` drains it); time from the start of the put to the moment each follower's poll returns the change. Followers poll in a tight loop; a game that polls once per frame adds up to one frame (16.7 ms at 60 fps). The put answers only once its notifications are posted (a Lambda may be frozen after it answers), so the last column is what following costs the player who edits.\n").unwrap();
    writeln!(
        b,
        "| followers | puts | notifications received | missed (3 s) | p50 | p95 | p99 | the put itself, p50 |"
    )
    .unwrap();
    writeln!(b, "|---|---|---|---|---|---|---|---|").unwrap();
    for (followers, puts) in [
        (0usize, if quick { 100 } else { 400 }),
        (1, if quick { 100 } else { 400 }),
        (100, if quick { 10 } else { 40 }),
    ] {
        let (s, put, missed) = latency(env, &endpoint, &world, chunk, followers, puts);
        if followers == 0 {
            writeln!(
                b,
                "| 0 | {puts} | - | - | - | - | - | {} |",
                ms(put.median())
            )
            .unwrap();
            continue;
        }
        writeln!(
            b,
            "| {followers} | {puts} | {} | {missed} | {} | {} | {} | {} |",
            s.len(),
            ms(s.median()),
            ms(s.q(0.95)),
            ms(s.p99()),
            ms(put.median())
        )
        .unwrap();
        let p95 = s.q(0.95).as_secs_f64() * 1000.0;
        goals.push(goal(
            &format!("edit-to-notification p95, {followers} follower(s), local gateway"),
            "< 250 ms",
            p95,
            p95 < 250.0,
            " ms",
        ));
    }

    // Idle follower, measured: what following costs once set up.
    let idle = idle_follower(env, &endpoint, &world);
    writeln!(b, "\n**Requests per idle player-hour.** Measured: an idle follower of 27 chunks did {} REST fetch(es), sent {} subscribe message(s) and received {} answer(s) while setting up, then nothing during {:.0} s idle (no message either way). Per hour, that setup happens once per connection, and API Gateway ends each connection after {CONNECTION_LIFETIME_HOURS} h (0.5 setups per hour); the SDK pings every {} s, {} pings per hour, counted as messages here though API Gateway may not bill control frames. Polling every 0.5 s costs one request per 256 chunks ({MAX_CHUNKS_PER_FETCH} per request) per refresh.\n", idle.fetches, idle.sent, idle.received, idle.quiet.as_secs_f64(), PING_INTERVAL.as_secs(), 3600 / PING_INTERVAL.as_secs()).unwrap();
    let setups_per_hour = 1.0 / CONNECTION_LIFETIME_HOURS;
    let pings = (3600 / PING_INTERVAL.as_secs()) as f64;
    let sub_rest = setups_per_hour * idle.fetches as f64;
    let sub_messages = setups_per_hour * (idle.sent + idle.received) as f64 + pings;
    // Lambda invocations per setup: the authorizer and $connect, subscribe, $disconnect routes.
    let sub_invocations = setups_per_hour * 4.0 + sub_rest;
    writeln!(
        b,
        "| per idle player-hour | polling 27 chunks | polling 729 chunks | following (any size up to 1,024 chunks) |"
    )
    .unwrap();
    writeln!(b, "|---|---|---|---|").unwrap();
    let poll = |chunks: usize| 7200.0 * chunks.div_ceil(MAX_CHUNKS_PER_FETCH) as f64;
    writeln!(
        b,
        "| REST requests | {:.0} | {:.0} | {sub_rest:.1} |",
        poll(27),
        poll(729)
    )
    .unwrap();
    writeln!(b, "| WebSocket messages | 0 | 0 | {sub_messages:.1} |").unwrap();
    writeln!(b, "| WebSocket connection minutes | 0 | 0 | 60 |").unwrap();
    writeln!(
        b,
        "| Lambda invocations (authorizer answers cached 60 s, the template's ReauthorizeEvery) | {:.0} | {:.0} | {sub_invocations:.1} |",
        poll(27) + 60.0,
        poll(729) + 60.0
    )
    .unwrap();
    let ratio = poll(27) / (sub_rest + sub_messages);
    writeln!(b, "\nPolling 27 chunks makes {ratio:.0}x more API requests (REST requests against REST requests plus WebSocket messages) than following.\n").unwrap();
    goals.push(goal(
        "API requests per idle player-hour, polling 0.5 s / following",
        ">= 100x",
        ratio,
        ratio >= 100.0,
        "x",
    ));

    // Cost per 1,000 idle player-hours.
    let lambda = |invocations: f64| {
        prices::LAMBDA_REQUEST.of(invocations)
            + prices::LAMBDA_ARM_GB_SECOND
                .of(invocations * ASSUMED_INVOCATION_SECONDS * super::cost::memory_mb() / 1024.0)
    };
    let hours = 1000.0;
    let polling_cost = |chunks: usize| {
        let rest = poll(chunks) * hours;
        (
            prices::REST_REQUEST.of(rest),
            0.0,
            lambda((poll(chunks) + 60.0) * hours),
        )
    };
    let following_cost = (
        prices::REST_REQUEST.of(sub_rest * hours),
        prices::WEBSOCKET_MESSAGE.of(sub_messages * hours)
            + prices::WEBSOCKET_MINUTE.of(60.0 * hours),
        lambda(sub_invocations * hours),
    );
    writeln!(b, "**Cost of 1,000 idle player-hours** at the list prices of the Cost section (`bench/src/prices.rs`), Lambda at the template's {:.0} MB and an assumed 10 ms per invocation, computed from the counts above; ElastiCache and data transfer are the same either way and left out. Not checked against a real AWS bill.\n", super::cost::memory_mb()).unwrap();
    writeln!(
        b,
        "| | API Gateway REST | API Gateway WebSocket | Lambda | total |"
    )
    .unwrap();
    writeln!(b, "|---|---|---|---|---|").unwrap();
    for (name, (rest, ws, l)) in [
        ("polling 27 chunks every 0.5 s", polling_cost(27)),
        ("polling 729 chunks every 0.5 s", polling_cost(729)),
        ("following (realtime)", following_cost),
    ] {
        writeln!(
            b,
            "| {name} | {rest:.4} USD | {ws:.4} USD | {l:.4} USD | **{:.4} USD** |",
            rest + ws + l
        )
        .unwrap();
    }
    writeln!(b, "\nEdits cost the same either way to make (one REST put each); following adds one WebSocket message per follower of the edited chunk: 1,000 edits seen by 10 followers each are 10,000 messages, 0.01 USD.").unwrap();

    Section {
        title: "7. Realtime (WebSocket change notifications)",
        body: b,
        goals,
    }
}

/// Time from the start of each put to each follower's poll returning its change.
fn latency(
    env: &Env,
    endpoint: &str,
    world: &WorldId,
    chunk: ChunkKey,
    followers: usize,
    puts: usize,
) -> (Samples, Samples, usize) {
    let _g = env.rt.enter();
    let subs: Vec<Realtime> = (0..followers)
        .map(|_| {
            let r = Realtime::start(&env.client, endpoint).unwrap();
            r.follow(world, &[chunk]).unwrap();
            r
        })
        .collect();
    wait_all(&subs, |e| *e == RealtimeEvent::Subscribed);
    let mut samples = Vec::with_capacity(followers * puts);
    let mut put_times = Vec::with_capacity(puts);
    let mut missed = 0;
    for n in 0..puts + 5 {
        // A value no earlier put wrote there, so every put changes the chunk and its change
        // is recognised by its edit.
        let (index, value) = ((n % 4096) as u16, (followers * 100_000 + n + 1) as i32);
        let edit = [ChunkEdit::at_index(chunk, index, value)];
        let start = Instant::now();
        // The put runs on the runtime while this thread polls the followers, as a game's frame
        // loop would: a change that arrives before the put has answered counts from then.
        let put = env.rt.spawn(env.client.put(world.as_str(), &edit));
        let mut put_took = None;
        let mut pending: Vec<usize> = (0..followers).collect();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !pending.is_empty() || put_took.is_none() {
            if put_took.is_none() && put.is_finished() {
                put_took = Some(start.elapsed());
            }
            if Instant::now() > deadline && put_took.is_some() {
                // Delivery is best effort (a follower that misses one sees a gap later).
                missed += pending.len();
                break;
            }
            pending.retain(|&i| {
                let mut heard = false;
                subs[i].drain(usize::MAX, |e| {
                    heard |= matches!(e, RealtimeEvent::Changed(c) if c.edits.as_deref() == Some(&[(index, value)][..]));
                    true
                });
                if heard && n >= 5 {
                    samples.push(start.elapsed());
                }
                !heard
            });
            // A short sleep, not a spin: the followers, the gateway and Redis share 2 cores.
            std::thread::sleep(Duration::from_micros(100));
        }
        env.rt.block_on(put).unwrap().unwrap();
        if n >= 5 {
            put_times.push(put_took.unwrap_or_else(|| start.elapsed()));
        }
    }
    (Samples::new(samples), Samples::new(put_times), missed)
}

fn wait_all(subs: &[Realtime], what: impl Fn(&RealtimeEvent) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pending: Vec<usize> = (0..subs.len()).collect();
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "followers not subscribed");
        pending.retain(|&i| {
            let mut seen = false;
            subs[i].drain(usize::MAX, |e| {
                seen |= what(e);
                true
            });
            !seen
        });
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What an idle follower of 27 chunks exchanged: set-up traffic, then silence.
struct Idle {
    fetches: usize,
    sent: usize,
    received: usize,
    quiet: Duration,
}

fn idle_follower(env: &Env, endpoint: &str, world: &WorldId) -> Idle {
    let _g = env.rt.enter();
    let mut keys = Vec::new();
    for x in -1..=1 {
        for z in -1..=1 {
            for y in -1..=1 {
                keys.push((ChunkKey::new(x, y, z), None));
            }
        }
    }
    let chunks: Vec<ChunkKey> = keys.iter().map(|(k, _)| *k).collect();
    let r = Realtime::start(&env.client, endpoint).unwrap();
    r.follow(world, &chunks).unwrap();
    let (mut fetches, mut received) = (0, 0);
    let settle = Instant::now() + Duration::from_secs(2);
    let mut after_quiet = 0;
    let quiet_until = settle + Duration::from_secs(if env.rounds < 1000 { 3 } else { 10 });
    while Instant::now() < quiet_until {
        let mut refetch = false;
        let n = r.drain(usize::MAX, |e| {
            refetch |= matches!(e, RealtimeEvent::Subscribed | RealtimeEvent::Gap);
            true
        });
        if Instant::now() > settle {
            after_quiet += n;
        } else {
            received += n;
        }
        if refetch {
            env.rt
                .block_on(env.client.fetch(world.as_str(), &keys))
                .unwrap();
            fetches += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(after_quiet, 0, "an idle follower heard something");
    Idle {
        fetches,
        sent: 1,
        received,
        quiet: quiet_until - settle,
    }
}
