//! Section 7: realtime through an MQTT broker. A crowd of real MQTT followers (the SDK's
//! `Realtime`, over WebSocket through `serve`'s gate to its embedded broker) watching one
//! region while puts arrive at a steady rate, against the same puts with no follower; a chunk
//! edited 100 times a second; and, on paper with IoT Core's quotas and prices, the three
//! crowds the design is for.

use crate::env::*;
use crate::prices;
use crate::quotas;
use crate::report::*;
use crate::stats::{ms, Samples};
use cubewalk::realtime::{Realtime, RealtimeEvent, KEEPALIVE, RECONCILE_INTERVAL};
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions};
use cubewalk_protocol::realtime::{REGION_CHUNKS, TICK_MS};
use cubewalk_protocol::WorldId;
use cubewalk_server::realtime::PUBLISH_CONCURRENCY;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The static token `serve` is started with (one player: every follower and the editor).
const TOKEN: &str = "bench-realtime-token-0001";
/// Followers of the crowd, and puts a second.
const CROWD: usize = 1000;
const PUTS_PER_SEC: f64 = 50.0;
/// Followers of the hot chunk, and its edits a second.
const HOT_FOLLOWERS: usize = 100;
const HOT_EDITS_PER_SEC: f64 = 100.0;

pub(crate) fn realtime(env: &Env) -> Section {
    let mut b = String::new();
    let mut goals = Vec::new();
    let quick = env.rounds < 1000;
    let secs = if quick { 4.0 } else { 10.0 };
    raise_fd_limit();
    let server = start_serve();
    let blocks = server.url.clone();
    let mqtt = format!(
        "ws://{}/mqtt",
        blocks
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
    );
    let client = Client::new(&blocks, TOKEN, ClientOptions::default()).unwrap();
    let (rss_idle, _) = rss_mib(server.pid());

    writeln!(b, "`cubewalk-server serve` as its own process (in-memory store, the embedded rumqttd behind the gate, the in-process publisher: a put's changes are queued and published per region every {TICK_MS} ms; the gate holds one subscription on the broker and fans each change out to the sessions holding its region). `serve` runs its realtime side (broker, gate sessions, publisher) at a lower priority and off the first CPU, which it leaves to the put path: on one machine the deliveries would otherwise hold up the put, in the kernel's loopback path as much as for the CPU (measured: without this the put's p99 rose 6 to 38 times). Followers are the SDK's `Realtime` (MQTT 3.1.1 over its own WebSocket, through the gate, one connection each) in the bench process, placed the same way (they stand for other players' machines), drained in a loop as a game's frames would (every few ms); each follows the 27 chunks (3x3x3) of one region of {REGION_CHUNKS}x{REGION_CHUNKS}x{REGION_CHUNKS} chunks. Puts: {PUTS_PER_SEC:.0} a second, open loop, one cube each, round robin over the 27 chunks, through the SDK. *Edit to applied*: from the start of a put to the moment a follower's drain returns a change covering it (the change of that put, or a later one of the chunk that includes it). *Missed*: puts a follower never saw covered, plus jumps in a chunk's write sequence.\n").unwrap();
    let none = crowd(env, &client, &mqtt, 0, secs);
    let many = crowd(env, &client, &mqtt, CROWD, secs);
    let (rss_crowd, hwm_crowd) = rss_mib(server.pid());
    writeln!(b, "| followers | puts | put p50 | put p99 | edit to applied p50 | p95 | p99 | messages received | missed | follower messages / s |\n|---|---|---|---|---|---|---|---|---|---|").unwrap();
    for r in [&none, &many] {
        writeln!(
            b,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.followers,
            r.puts.len(),
            ms(r.puts.median()),
            ms(r.puts.p99()),
            r.applied.as_ref().map_or("-".into(), |s| ms(s.median())),
            r.applied.as_ref().map_or("-".into(), |s| ms(s.q(0.95))),
            r.applied.as_ref().map_or("-".into(), |s| ms(s.p99())),
            r.messages,
            r.missed,
            r.messages as f64 / r.followers.max(1) as f64 / secs,
        )
        .unwrap();
    }
    let ratio =
        |f: fn(&Samples) -> Duration| f(&many.puts).as_secs_f64() / f(&none.puts).as_secs_f64();
    let (p50_ratio, p99_ratio) = (ratio(Samples::median), ratio(Samples::p99));
    let p95 = many
        .applied
        .as_ref()
        .map_or(f64::NAN, |s| s.q(0.95).as_secs_f64() * 1000.0);
    writeln!(b, "\nWith {CROWD} followers the put takes {p50_ratio:.2}x (p50) and {p99_ratio:.2}x (p99) as long as with none: it answers after the store's step and queues its change, whoever follows. `serve` (gateway, gate, broker and publisher in one process) held {rss_idle:.0} MiB before the crowd and {rss_crowd:.0} MiB with it (peak {hwm_crowd:.0} MiB); the {CROWD} followers' own side (the bench process) {:.0} MiB.\n", many.follower_rss_mib).unwrap();
    goals.push(goal(
        &format!("put p50 with {CROWD} followers / with none"),
        "<= 1.1",
        p50_ratio,
        p50_ratio <= 1.1,
        "x",
    ));
    goals.push(goal(
        &format!("put p99 with {CROWD} followers / with none"),
        "<= 1.1",
        p99_ratio,
        p99_ratio <= 1.1,
        "x",
    ));
    goals.push(goal(
        &format!("edit to applied p95, {CROWD} MQTT followers"),
        "< 250 ms",
        p95,
        p95 < 250.0,
        " ms",
    ));
    goals.push(goal(
        &format!("changes missed, {CROWD} followers"),
        "0",
        many.missed as f64,
        many.missed == 0,
        "",
    ));

    // A chunk edited 100 times a second.
    let hot = hot_chunk(env, &client, &mqtt, secs);
    writeln!(b, "**A hot chunk.** {HOT_FOLLOWERS} followers of one chunk while it is edited {HOT_EDITS_PER_SEC:.0} times a second for {secs:.0} s ({} puts): each follower received {:.1} messages a second (at most one per region per tick), {} changes in all, {} missed; every follower's last change is the chunk's last write.\n", hot.puts, hot.per_follower_per_sec, hot.messages, hot.missed).unwrap();
    goals.push(goal(
        "messages per follower per second, a chunk edited 100 times a second",
        "<= 10",
        hot.per_follower_per_sec,
        hot.per_follower_per_sec <= 10.0,
        "",
    ));
    drop(server);

    // Idle follower traffic, from the SDK's constants.
    writeln!(b, "**An idle follower** sends one PINGREQ every {} s ({} an hour) and reconciles every {} s: one conditional fetch of what it follows (3 requests for 729 chunks, each unchanged chunk answered in a few bytes). A crossing that moves its regions (one in {REGION_CHUNKS}, for a 9x9x9 neighbourhood) is one UNSUBSCRIBE of {:.0} topics and SUBSCRIBEs of as many.\n", KEEPALIVE.as_secs(), 3600 / KEEPALIVE.as_secs(), RECONCILE_INTERVAL.as_secs(), super::cost::regions_per_axis().powi(2)).unwrap();

    let ceiling = super::publisher::ceiling(env, super::publisher::backlog(quick));
    writeln!(b, "{}", super::publisher::describe(&ceiling)).unwrap();

    on_paper(&mut b, ceiling.on_lambda());
    Section {
        title: "7. Realtime (MQTT broker, coalesced per region)",
        body: b,
        goals,
    }
}

/// Lets the bench and the `serve` it starts hold thousands of sockets.
fn raise_fd_limit() {
    let want = 65_536;
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < want {
            l.rlim_max = l.rlim_max.max(want);
            l.rlim_cur = want.min(l.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                let mut soft = l;
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut soft);
                soft.rlim_cur = soft.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
        }
    }
}

/// `cubewalk-server serve` built for release and started with the bench's token.
fn start_serve() -> cubewalk_testkit::ServerProcess {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--locked", "-p", "cubewalk-server"])
        .status()
        .expect("cargo");
    assert!(status.success(), "cannot build cubewalk-server");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let bin = std::path::Path::new(&target).join("release/cubewalk-server");
    cubewalk_testkit::ServerProcess::start(
        &bin,
        &["--seed-radius", "0", "--max-connections", "65536"],
        &[("CUBEWALK_TOKENS", TOKEN)],
    )
}

/// Where the followers' connections run: their own threads, at a lower CPU priority than the
/// puts measured. The followers stand for other players' machines; on this one they share two
/// cores with the editor, and without it the measure would be of their CPU, not of the put.
fn followers_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| cubewalk_server::background::runtime().expect("followers' runtime"))
}

/// Starts `n` followers of `chunks` of `world` and waits until each is subscribed.
fn followers(
    client: &Client,
    mqtt: &str,
    world: &WorldId,
    chunks: &[ChunkKey],
    n: usize,
) -> Vec<Realtime> {
    let _g = followers_runtime().enter();
    let subs: Vec<Realtime> = (0..n)
        .map(|_| {
            let r = Realtime::start(client, mqtt).unwrap();
            r.follow(world, chunks).unwrap();
            r
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<usize> = (0..n).collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} followers never subscribed: {:?}",
            pending.len(),
            subs[pending[0]].last_error()
        );
        pending.retain(|&i| {
            let mut done = false;
            subs[i].drain(usize::MAX, |e| {
                done |= *e == RealtimeEvent::Subscribed;
                true
            });
            !done
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    subs
}

/// One change as a follower received it.
#[derive(Clone, Copy)]
struct Arrival {
    chunk: ChunkKey,
    version: u64,
    from_seq: u64,
    seq: u64,
    at: Instant,
}

/// Drains every follower in a loop on its own thread until `stop`, timestamping changes.
fn drain_all(
    subs: Arc<Vec<Realtime>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Vec<Arrival>>> {
    std::thread::spawn(move || {
        // A game's frame loop on another machine: it yields to the puts, as its connections do.
        cubewalk_server::background::lower_this_thread();
        let mut got: Vec<Vec<Arrival>> = subs.iter().map(|_| Vec::new()).collect();
        while !stop.load(Ordering::Relaxed) {
            for (i, s) in subs.iter().enumerate() {
                let at = Instant::now();
                s.drain(usize::MAX, |e| {
                    if let RealtimeEvent::Changed(c) = e {
                        got[i].push(Arrival {
                            chunk: c.chunk,
                            version: c.version,
                            from_seq: c.from_seq,
                            seq: c.seq,
                            at,
                        });
                    }
                    true
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    })
}

/// Puts one cube at a time, `rate` a second for `secs`, round robin over `chunks`, open loop;
/// answers each put's (chunk, start, answer time, version).
fn paced_puts(
    env: &Env,
    client: &Client,
    world: &WorldId,
    chunks: &[ChunkKey],
    rate: f64,
    secs: f64,
) -> Vec<(ChunkKey, Instant, Instant, u64)> {
    let n = (rate * secs) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let due = started + gap.mul_f64(i as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let chunk = chunks[i % chunks.len()];
        let edit = [ChunkEdit::at_index(chunk, (i % 4096) as u16, i as i32 + 1)];
        let put = client.put(world.as_str(), &edit);
        let out = out.clone();
        handles.push(env.rt.spawn(async move {
            let start = Instant::now();
            let answer = put.await.expect("put");
            out.lock()
                .unwrap()
                .push((chunk, start, Instant::now(), answer[0].version));
        }));
    }
    for h in handles {
        env.rt.block_on(h).unwrap();
    }
    let mut v = std::mem::take(&mut *out.lock().unwrap());
    v.sort_by_key(|p| p.1);
    v
}

struct Crowd {
    followers: usize,
    puts: Samples,
    applied: Option<Samples>,
    messages: usize,
    missed: usize,
    follower_rss_mib: f64,
}

fn crowd(env: &Env, client: &Client, mqtt: &str, n: usize, secs: f64) -> Crowd {
    let world = WorldId::new(&format!("crowd-{n}")).unwrap();
    let chunks: Vec<ChunkKey> = (0..27)
        .map(|i| ChunkKey::new(i % 3, (i / 3) % 3, i / 9))
        .collect();
    let subs = Arc::new(followers(client, mqtt, &world, &chunks, n));
    let stop = Arc::new(AtomicBool::new(false));
    let drain = drain_all(subs.clone(), stop.clone());
    let puts = paced_puts(env, client, &world, &chunks, PUTS_PER_SEC, secs);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let arrivals = drain.join().unwrap();
    let (follower_rss_mib, _) = rss_mib(0);
    let put_times = Samples::new(puts.iter().map(|p| p.2 - p.1).collect());
    if n == 0 {
        return Crowd {
            followers: 0,
            puts: put_times,
            applied: None,
            messages: 0,
            missed: 0,
            follower_rss_mib,
        };
    }
    // Per chunk, its puts in order (one chunk's puts are sequential: 27 chunks, 50 a second).
    let mut per_chunk: HashMap<ChunkKey, Vec<(Instant, u64)>> = HashMap::new();
    for (chunk, start, _, version) in &puts {
        per_chunk
            .entry(*chunk)
            .or_default()
            .push((*start, *version));
    }
    let mut latencies = Vec::with_capacity(n * puts.len());
    let (mut missed, mut messages) = (0, 0);
    for got in &arrivals {
        messages += got.len();
        for (chunk, list) in &per_chunk {
            let index: HashMap<u64, usize> =
                list.iter().enumerate().map(|(i, (_, v))| (*v, i)).collect();
            let mut covered = 0; // puts of this chunk covered so far
            let mut last_seq = 0;
            for a in got.iter().filter(|a| a.chunk == *chunk) {
                if a.from_seq != last_seq {
                    missed += 1;
                }
                last_seq = a.seq;
                if let Some(&k) = index.get(&a.version) {
                    while covered <= k {
                        latencies.push(a.at.saturating_duration_since(list[covered].0));
                        covered += 1;
                    }
                }
            }
            missed += list.len() - covered;
        }
    }
    drop(subs);
    Crowd {
        followers: n,
        puts: put_times,
        applied: Some(Samples::new(latencies)),
        messages,
        missed,
        follower_rss_mib,
    }
}

struct Hot {
    puts: usize,
    messages: usize,
    missed: usize,
    per_follower_per_sec: f64,
}

fn hot_chunk(env: &Env, client: &Client, mqtt: &str, secs: f64) -> Hot {
    let world = WorldId::new("hot").unwrap();
    let chunk = [ChunkKey::new(0, 0, 0)];
    let subs = Arc::new(followers(client, mqtt, &world, &chunk, HOT_FOLLOWERS));
    let stop = Arc::new(AtomicBool::new(false));
    let drain = drain_all(subs.clone(), stop.clone());
    let puts = paced_puts(env, client, &world, &chunk, HOT_EDITS_PER_SEC, secs);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let arrivals = drain.join().unwrap();
    let last = puts.last().map(|p| p.3);
    let (mut messages, mut missed) = (0, 0);
    for got in &arrivals {
        messages += got.len();
        let mut last_seq = 0;
        for a in got {
            if a.from_seq != last_seq {
                missed += 1;
            }
            last_seq = a.seq;
        }
        if got.last().map(|a| a.version) != last {
            missed += 1;
        }
    }
    Hot {
        puts: puts.len(),
        messages,
        missed,
        per_follower_per_sec: messages as f64 / HOT_FOLLOWERS as f64 / secs,
    }
}

/// The three crowds on paper: IoT Core's messages and quotas from the design's own rules (one
/// message per region per tick, 27 regions of 4x4x4 chunks a follower); `per_run` is what one
/// publisher run posts a second at most (measured above).
fn on_paper(b: &mut String, per_run: f64) {
    let ticks = 1000.0 / TICK_MS as f64; // a second
    let overreach = super::cost::region_overdelivery();
    let regions = super::cost::followed_regions();
    // (a) 1,000 players at the spawn, all subscribed to its regions; 50 edit once a second.
    let a_regions_busy = regions * (1.0 - (-50.0 / (regions * ticks)).exp());
    let a_published = a_regions_busy * ticks;
    let a_delivered = a_published * 1000.0;
    // (b) 50,000 players spread over a large world, each editing 6 times a minute, each edit
    // followed by 5 others and the editor; little coalescing when spread.
    let b_edits = 50_000.0 * 6.0 / 60.0;
    let b_published = b_edits;
    let b_delivered = b_edits * 6.0 * overreach;
    // (c) one chunk edited 100 times a second, its region followed by 100 players.
    let c_published = ticks;
    let c_delivered = c_published * 100.0;
    let hourly = |published: f64, delivered: f64, connections: f64, puts: f64| {
        prices::IOT_MESSAGE.of((published + delivered) * 3600.0)
            + prices::IOT_CONNECTION_MINUTE.of(connections * 60.0)
            + prices::REST_REQUEST.of(puts * 3600.0)
    };
    writeln!(b, "\n**On paper, with IoT Core's quotas and prices** ({}; prices us-east-1 from `bench/src/prices.rs`). Published: the publisher's posts to IoT Core (at most one per region per {TICK_MS} ms tick); delivered: each copy IoT Core sends a subscriber. A follower subscribes to the {regions:.0} regions of {REGION_CHUNKS}x{REGION_CHUNKS}x{REGION_CHUNKS} chunks around it and so receives {overreach:.2} times the changes of the 729 chunks it follows. Per hour: IoT messages and connection minutes, and the REST puts themselves; Lambda, the store and fixed costs are in section 8.\n", quotas::SOURCE).unwrap();
    writeln!(b, "| crowd | published / s | delivered / s | per follower / s | USD per hour | quota to raise |\n|---|---|---|---|---|---|").unwrap();
    let raise = |delivered: f64, published: f64, connections: f64, subscriptions: f64| {
        let mut out = Vec::new();
        if delivered > quotas::OUTBOUND_PUBLISHES_PER_SEC {
            out.push(format!(
                "outbound publishes per account: {:.0}/s needed, default {:.0}/s",
                delivered,
                quotas::OUTBOUND_PUBLISHES_PER_SEC
            ));
        }
        if published > quotas::INBOUND_PUBLISHES_PER_SEC {
            out.push(format!("inbound publishes per account: {published:.0}/s"));
        }
        if connections > quotas::CONNECTIONS_PER_ACCOUNT {
            out.push("connections per account".into());
        }
        if subscriptions > quotas::SUBSCRIPTIONS_PER_ACCOUNT {
            out.push("subscriptions per account".into());
        }
        if out.is_empty() {
            "none".into()
        } else {
            out.join("; ")
        }
    };
    for (name, published, delivered, per_follower, connections, puts) in [
        (
            "(a) 1,000 players at the spawn, 50 editing once a second",
            a_published,
            a_delivered,
            a_published,
            1000.0,
            50.0,
        ),
        (
            "(b) 50,000 players spread over a large world, 6 edits a minute each",
            b_published,
            b_delivered,
            6.0 * b_edits / 50_000.0 * overreach * 5.0,
            50_000.0,
            b_edits,
        ),
        (
            "(c) one chunk edited 100 times a second, 100 followers",
            c_published,
            c_delivered,
            c_published,
            100.0,
            100.0,
        ),
    ] {
        writeln!(
            b,
            "| {name} | {published:.0} | {delivered:.0} | {per_follower:.1} | {:.2} | {} |",
            hourly(published, delivered, connections, puts),
            raise(delivered, published, connections, connections * regions)
        )
        .unwrap();
    }
    // The fewest groups the template offers (PublisherGroups) whose runs, together, post (b)'s
    // messages at the rate one run was measured at.
    let b_groups = match [1usize, 2, 4, 8]
        .into_iter()
        .find(|&g| g as f64 * per_run >= b_published)
    {
        Some(g) => format!(
            "{g} publisher groups (`PublisherGroups={g}`: {:.0} a second at most)",
            g as f64 * per_run
        ),
        None => format!(
            "more than the template's 8 publisher groups ({:.0} a second at most)",
            8.0 * per_run
        ),
    };
    writeln!(b, "\nA follower holds {regions:.0} of IoT Core's {:.0} subscriptions per connection ({:.0} SUBSCRIBEs within its {:.0} filters each); at most {:.0} regions can be followed. It may receive up to {regions:.0} regions x {ticks:.0} ticks = {:.0} messages a second, past IoT Core's {:.0} publishes a second per connection (not adjustable; with 8 regions of 8x8x8 chunks the bound was 80): that takes more than about {:.0} region-changes a second around one player, far above (a), where a follower receives about {a_published:.0}. Past it IoT Core throttles: the follower misses messages, sees the jump in the chunk's write sequence and refetches (never silently wrong, but it costs REST fetches). (b) holds 50,000 connections ({:.0} thousand subscriptions: past the account's default {:.0} thousand, a quota to raise) and a mass reconnect at the default {:.0} CONNECTs a second takes {:.0} s (the SDK's jittered backoff spreads it). A publisher run posts with {PUBLISH_CONCURRENCY} requests in flight: at about 20 ms each, at most some {per_run:.0} messages a second (measured above, within the function's CPU share), enough for (a) and (c); (b)'s {b_published:.0} a second needs the feed's 16 shards split between {b_groups}. Before this design, each change was one `@connections` post per follower from the put itself: (a) was 50,000 posts a second on the account's shared 10,000 requests a second, the put waiting for them.\n",
        quotas::SUBSCRIPTIONS_PER_CONNECTION,
        (regions / quotas::FILTERS_PER_SUBSCRIBE).ceil(),
        quotas::FILTERS_PER_SUBSCRIBE,
        cubewalk_protocol::realtime::MAX_FOLLOWED_REGIONS,
        regions * ticks,
        quotas::PUBLISHES_PER_CONNECTION_PER_SEC,
        quotas::PUBLISHES_PER_CONNECTION_PER_SEC,
        50_000.0 * regions / 1000.0,
        quotas::SUBSCRIPTIONS_PER_ACCOUNT / 1000.0,
        quotas::CONNECTS_PER_SEC,
        50_000.0 / quotas::CONNECTS_PER_SEC,
    ).unwrap();
}
