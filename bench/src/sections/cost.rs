//! Section 8: what running it costs, measured like a bill. Our Lambda binaries and the seed
//! design's Python handler run through the same local Lambda Runtime API on the same Redis;
//! each invocation is timed as Lambda bills it (from `next` handing the event out to the
//! answer), CPU and memory are read from `/proc`, and the bill for 1,000 player-hours is
//! computed from those figures, the play pattern below and the prices in `prices.rs`.

use crate::env::Env;
use crate::prices;
use crate::report::{goal, Section};
use crate::stats::{ms, Samples};
use cubewalk_protocol::codec::fixtures;
use cubewalk_protocol::realtime::REGION_CHUNKS;
use cubewalk_server::gateway::{Authorizer, GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::{PublicKeys, SigningKey, TokenSet, Verifier};
use cubewalk_testkit::runtime_api::{events, Function, Invocation, RuntimeApi};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The world the measured requests read and write.
const WORLD: &str = "cost";
const TEMPLATE: &str = include_str!("../../../server/template.yaml");

/// The first `MemorySize:` in `section` (a piece of the template), if any.
fn memory_size_in(section: &str) -> Option<f64> {
    section
        .lines()
        .find_map(|l| l.trim().strip_prefix("MemorySize:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Memory the template gives every function (`Globals.Function.MemorySize`), read from it.
pub(crate) fn memory_mb() -> f64 {
    let globals = TEMPLATE.split("\nGlobals:").nth(1).unwrap_or("");
    memory_size_in(globals).expect("server/template.yaml sets Globals.Function.MemorySize")
}

/// Memory the template gives the function `resource` (its own `MemorySize`, or the global
/// one), read from it.
pub(crate) fn function_memory_mb(resource: &str) -> f64 {
    let own = TEMPLATE
        .split(&format!("\n  {resource}:\n"))
        .nth(1)
        .map(|rest| {
            // The resource ends where the next one (two spaces of indent) starts.
            let end = rest
                .match_indices("\n  ")
                .find(|(i, _)| !rest[i + 3..].starts_with(' '))
                .map_or(rest.len(), |(i, _)| i);
            &rest[..end]
        })
        .unwrap_or_else(|| panic!("server/template.yaml has no resource {resource}"));
    memory_size_in(own).unwrap_or_else(memory_mb)
}

/// Memory at which Lambda gives a function one whole vCPU; below it, a proportional share.
pub(crate) const FULL_VCPU_MB: f64 = 1769.0;

/// One function process under measurement, with its own Runtime API.
struct Subject {
    name: &'static str,
    api: RuntimeApi,
    function: Function,
}

impl Subject {
    fn start(name: &'static str, program: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let api = RuntimeApi::start();
        let function = Function::start(&api, program, args, env);
        Self {
            name,
            api,
            function,
        }
    }

    fn invoke(&mut self, event: Value) -> Invocation {
        let answer = self.api.invoke(&mut self.function, event);
        assert_eq!(
            answer.kind,
            "response",
            "{}: {}\n{}",
            self.name,
            answer.body,
            self.function.log()
        );
        answer
    }

    /// CPU time (user + system) the process used so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.function.pid()))
            .unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime and stime are the
        // 12th and 13th, in clock ticks of 1/100 s.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        Duration::from_millis((f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 10)
    }

    /// (resident now, peak resident) in MiB.
    fn memory(&self) -> (f64, f64) {
        crate::env::rss_mib(self.function.pid())
    }

    /// Bytes it logged so far (what CloudWatch Logs would ingest).
    fn log_bytes(&self) -> usize {
        self.function.log().len()
    }
}

/// A kind of invocation: its name and the event of round `i`.
type EventKind = (&'static str, Box<dyn Fn(usize) -> Value>);

/// One kind of invocation measured for one function.
struct Kind {
    what: &'static str,
    durations: Samples,
    cpu: Duration,
    log_bytes: f64,
    /// Redis commands per invocation (counted by the server; 0 where not counted).
    redis: f64,
}

/// Billed milliseconds: rounded up to the next whole millisecond.
fn billed_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).ceil().max(1.0)
}

/// Estimated billed milliseconds at `memory_mb` on Lambda: the CPU part of the measured
/// duration stretched to the vCPU share that memory buys, the waiting part unchanged.
fn lambda_ms(wall: Duration, cpu: Duration, memory_mb: f64) -> f64 {
    let stretch = (FULL_VCPU_MB / memory_mb).max(1.0);
    // CPU sums every thread, as the quota does, so it can exceed the wall time.
    billed_ms(wall.saturating_sub(cpu) + cpu.mul_f64(stretch))
}

fn target_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
}

/// Builds the Lambda binaries for this machine (release, the deployed profile).
fn lambda_binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "cubewalk-lambda",
            "--bins",
        ])
        .status()
        .expect("cargo");
    assert!(status.success(), "cannot build the Lambda binaries");
    target_dir().join("release")
}

/// Whether Python with `awslambdaric` and `redis` is here (the README's test set-up installs them).
fn python_ready() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import awslambdaric, redis"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

fn start_python(redis: &str) -> Subject {
    Subject::start(
        "Python (seed design)",
        "python3",
        &["-m", "awslambdaric", "seed_handler.handler"],
        &[
            ("CUBEWALK_REDIS_URL", redis.to_owned()),
            ("PYTHONPATH", python_dir().display().to_string()),
            ("LAMBDA_TASK_ROOT", python_dir().display().to_string()),
        ],
    )
}

fn start_rust(bin: &Path, redis: &str) -> Subject {
    Subject::start(
        "Rust (blocks)",
        bin.join("blocks").to_str().unwrap(),
        &[],
        // As deployed: each put that changes chunks appends them to the realtime feed; the
        // bench's world is one the deployment names.
        &[
            ("CUBEWALK_REDIS_URL", redis.to_owned()),
            ("CUBEWALK_REALTIME", "on".to_owned()),
            ("CUBEWALK_WORLDS", format!("default, {WORLD}")),
        ],
    )
}

/// The chunks with x and z in `-r..=r` and y in `ys`, as a `chunks` parameter.
fn chunks_param(r: i32, ys: std::ops::RangeInclusive<i32>) -> String {
    let mut keys = Vec::new();
    for x in -r..=r {
        for y in ys.clone() {
            for z in -r..=r {
                keys.push(format!("{x},{y},{z}"));
            }
        }
    }
    keys.join(";")
}

/// The 3 x 3 x 3 chunks around the origin, as a `chunks` parameter.
fn neighbourhood() -> String {
    chunks_param(1, -1..=1)
}

fn put_body(value: i32) -> String {
    format!(r#"{{"world":"{WORLD}","edits":[{{"chunk":[0,0,0],"index":2000,"value":{value}}}]}}"#)
}

/// The answer's body as JSON.
fn body(answer: &Invocation) -> Value {
    serde_json::from_str(answer.body["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Both handlers read and write the same stored format: each sees the other's put, and a
/// 27-chunk read holds the same content. Revisions differ by design: ours are drawn per write,
/// the seed design's are its content hash (which ours answers for the chunks it wrote).
fn check_same_answers(rust: &mut Subject, python: &mut Subject) {
    let chunks = neighbourhood();
    let get = events::rest("GET", Some((WORLD, &chunks)), None);
    // The seed design knows no write sequences nor per-write revisions: compare content.
    let content = |mut v: Value| {
        for c in v.as_array_mut().into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.remove("n");
                o.remove("version");
            }
        }
        v
    };
    assert_eq!(
        content(body(&rust.invoke(get.clone()))["chunks"].clone()),
        content(body(&python.invoke(get))["chunks"].clone()),
        "the two handlers read different chunks"
    );
    reads_back(rust, python, 7);
    reads_back(python, rust, 8);
}

/// `reader` reads `writer`'s put back: the cube it set, and, when the seed design wrote, the
/// revision it answered.
fn reads_back(writer: &mut Subject, reader: &mut Subject, value: i32) {
    let put = body(&writer.invoke(events::rest("PUT", None, Some(&put_body(value)))));
    let got = body(&reader.invoke(events::rest("GET", Some((WORLD, "0,0,0")), None)));
    let data = got["chunks"][0]["data"].as_str().unwrap_or_default();
    let cubes = cubewalk_protocol::codec::blob_from_base64(data)
        .ok()
        .and_then(|b| cubewalk_protocol::codec::decode_chunk(&b).ok())
        .unwrap_or_else(|| panic!("{} read no chunk", reader.name));
    assert_eq!(
        cubes[2000], value,
        "{} wrote a cube {} does not read back",
        writer.name, reader.name
    );
    if writer.name.starts_with("Python") {
        assert_eq!(
            put["chunks"][0]["version"], got["chunks"][0]["version"],
            "{} wrote a revision {} does not read back",
            writer.name, reader.name
        );
    }
}

/// Measures `kinds` on both subjects interleaved, `rounds` each after a warm-up.
fn interleave(subjects: &mut [&mut Subject], kinds: &[EventKind], rounds: usize) -> Vec<Vec<Kind>> {
    let mut out: Vec<Vec<Kind>> = subjects.iter().map(|_| Vec::new()).collect();
    for (what, event) in kinds {
        for s in subjects.iter_mut() {
            for i in 0..50 {
                s.invoke(event(i));
            }
        }
        let before: Vec<(Duration, usize)> =
            subjects.iter().map(|s| (s.cpu(), s.log_bytes())).collect();
        let mut times: Vec<Vec<Duration>> = subjects.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            let n = subjects.len();
            for k in 0..n {
                // Alternate who goes first, so both see the same machine noise.
                let i = (k + round) % n;
                times[i].push(subjects[i].invoke(event(round)).duration);
            }
        }
        for (i, s) in subjects.iter().enumerate() {
            out[i].push(Kind {
                what,
                durations: Samples::new(std::mem::take(&mut times[i])),
                cpu: (s.cpu() - before[i].0) / rounds as u32,
                log_bytes: (s.log_bytes() - before[i].1) as f64 / rounds as f64,
                redis: 0.0,
            });
        }
    }
    out
}

/// A reader of the Redis server's own count of the commands it processed (`INFO stats`); each
/// read is one command too.
fn commands_processed(url: &str) -> impl FnMut() -> f64 {
    let mut conn = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("the bench's redis-server");
    move || {
        let info: String = redis::cmd("INFO").arg("stats").query(&mut conn).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// Counts the Redis commands each kind runs per invocation (the server's own count, `INFO
/// stats`, over 50 invocations of the one subject using this Redis at the time).
fn count_commands(url: &str, s: &mut Subject, kinds: &[EventKind], measured: &mut [Kind]) {
    let mut total = commands_processed(url);
    let n = 50;
    for ((_, event), k) in kinds.iter().zip(measured.iter_mut()) {
        let before = total();
        for i in 0..n {
            s.invoke(event(10_000 + i));
        }
        // The INFO that read `before` is counted too.
        k.redis = (total() - before - 1.0) / n as f64;
    }
}

/// Cold starts: process start to the answer of its first event (the store connection
/// included), `rounds` times for each starter, interleaved.
fn cold_starts(starters: &[(&dyn Fn() -> Subject, Value)], rounds: usize) -> Vec<Samples> {
    let mut times: Vec<Vec<Duration>> = starters.iter().map(|_| Vec::new()).collect();
    // One unmeasured round first: the page cache warm for every binary.
    for round in 0..rounds + 1 {
        for k in 0..starters.len() {
            let i = (k + round) % starters.len();
            let (start, event) = &starters[i];
            let mut s = start();
            let answer = s.invoke(event.clone());
            if round > 0 {
                times[i].push(answer.answered_at - s.function.started);
            }
        }
    }
    times.into_iter().map(Samples::new).collect()
}

/// The authorizer cache's hit rate for the play pattern, measured through the local gateway's
/// cache (API Gateway's semantics: results kept per token for the TTL) with time compressed
/// 100 times: a 600 ms TTL stands for the template's 60 s.
fn authorizer_hit_rate(env: &Env, pattern: &Pattern) -> f64 {
    struct Counting(TokenAuthorizer, Arc<AtomicUsize>);
    #[async_trait::async_trait]
    impl Authorizer for Counting {
        async fn invoke(
            &self,
            event: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest,
        ) -> Result<Value, String> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.invoke(event).await
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let tokens: Vec<String> = (0..20).map(|i| format!("cost-player-token-{i}")).collect();
    let verifier = Verifier {
        keys: PublicKeys::new(),
        static_tokens: TokenSet::new(tokens.iter()),
        issuer: None,
    };
    let compress = 100.0;
    let config = GatewayConfig {
        auth_cache_ttl: Duration::from_secs_f64(60.0 / compress),
        ..GatewayConfig::default()
    };
    let store: Arc<dyn cubewalk_server::store::ChunkStore> =
        Arc::new(cubewalk_server::store::MemoryStore::new());
    let gateway = cubewalk_testkit::TestGateway::start(
        config,
        Arc::new(Counting(TokenAuthorizer(verifier), calls.clone())),
        store,
    );
    let url = format!("{}/prod/cubewalkblocks", gateway.base);
    let per_minute = pattern.rest_requests_per_hour() / 60.0;
    let gap = Duration::from_secs_f64(60.0 / compress / per_minute);
    let minutes = 10.0;
    let requests = (per_minute * minutes) as usize;
    let http = &env.http;
    let started = Instant::now();
    let sent = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in &tokens {
            let (url, sent) = (&url, &sent);
            s.spawn(move || {
                for i in 0..requests {
                    let due = started + gap.mul_f64(i as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let _ = http
                        .get(format!("{url}?world={WORLD}&chunks=0,0,0"))
                        .header("token", t)
                        .send();
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    1.0 - calls.load(Ordering::Relaxed) as f64 / sent.load(Ordering::Relaxed) as f64
}

/// How a player plays, per hour of play: the model's assumptions, stated in the report.
pub(crate) struct Pattern {
    /// Chunk borders crossed (each: one fetch of the new slab; one in [`REGION_CHUNKS`] of them
    /// moves the followed regions: a face of them off and a face on, see [`topic_changes_per_crossing`]).
    crossings: f64,
    /// Cube edits (one put each).
    edits: f64,
    /// Other players following the chunk of each edit (the editor, who follows it too, gets
    /// the change as well).
    followers: f64,
    /// Sessions started (each: the neighbourhood fetch, in 3 requests of at most 256 chunks,
    /// and a realtime connection subscribing to the [`followed_regions`] region topics).
    sessions: f64,
    /// Guest logins (the guest token lives an hour; each login is one REST request to the
    /// login function).
    logins: f64,
    /// MQTT keepalive pings (one a minute), counted as messages to be safe.
    pings: f64,
    /// Reconciliations (one a minute: a conditional fetch of the 729 followed chunks, 3
    /// requests, answering only what changed).
    reconciles: f64,
    /// The broker authorizer's runs on a connection: at connect and every 300 s.
    authorizer_refreshes: f64,
}

impl Pattern {
    fn rest_requests_per_hour(&self) -> f64 {
        self.sessions * 3.0 + self.crossings + self.edits + self.reconciles * 3.0
    }
}

/// The play pattern the table assumes.
pub(crate) const PATTERN: Pattern = Pattern {
    crossings: 180.0,
    edits: 360.0,
    followers: 5.0,
    sessions: 1.0,
    logins: 1.0,
    pings: 60.0,
    reconciles: 60.0,
    authorizer_refreshes: 12.0,
};

/// Chunks along each edge of the followed neighbourhood (radius 4: 729 chunks).
const HOOD_EDGE: i32 = 9;

/// Regions of [`REGION_CHUNKS`] chunks a run of [`HOOD_EDGE`] chunks spans along one axis,
/// averaged over where the run starts within a region: 3 wherever it starts for regions of 4
/// (2 for regions of 8).
pub(crate) fn regions_per_axis() -> f64 {
    let r = REGION_CHUNKS;
    let spans: i32 = (0..r)
        .map(|o| (o + HOOD_EDGE - 1).div_euclid(r) - o.div_euclid(r) + 1)
        .sum();
    f64::from(spans) / f64::from(r)
}

/// Region topics a follower of a 9x9x9 neighbourhood subscribes to (27 for regions of 4x4x4
/// chunks, within IoT Core's 50 per connection; on average when it varies with the position).
pub(crate) fn followed_regions() -> f64 {
    regions_per_axis().powi(3)
}

/// How many times the chunks it follows a follower receives the changes of: its regions hold
/// `followed_regions() x REGION_CHUNKS³` chunks (27 x 64 = 1,728 for regions of 4x4x4, 2.37
/// times the 729 it follows; 8 x 512 = 4,096, 5.62 times, for 8x8x8), and it drops the rest.
pub(crate) fn region_overdelivery() -> f64 {
    (regions_per_axis() * f64::from(REGION_CHUNKS)).powi(3) / f64::from(HOOD_EDGE.pow(3))
}

/// Topics a one-chunk move along an axis unsubscribes and subscribes, on average: one move in
/// [`REGION_CHUNKS`] brings the far face of the neighbourhood into a new slab of regions (and
/// takes the near one out of the last): a face of regions off and a face on (9 and 9 for
/// regions of 4x4x4 chunks, once every 4 moves: 4.5 a move).
pub(crate) fn topic_changes_per_crossing() -> f64 {
    let r = REGION_CHUNKS;
    // Of the r positions of the run within a region, the moves that bring a new region in
    // (the new far chunk starts one) and those that leave one (the old near chunk ended one).
    let entering = (0..r)
        .filter(|o| (o + HOOD_EDGE).rem_euclid(r) == 0)
        .count();
    let leaving = (0..r).filter(|o| (o + 1).rem_euclid(r) == 0).count();
    let face = regions_per_axis().powi(2);
    (entering + leaving) as f64 / f64::from(r) * face
}

/// Redis commands a cache.t4g.small primary is assumed to sustain per second (an assumption:
/// simple commands on 2 burstable Graviton2 vCPUs with TLS; only AWS can measure it). The
/// bill adds shards when the measured commands of the crowd exceed it.
const SHARD_COMMANDS_PER_SEC: f64 = 50_000.0;

/// Bytes one publish to IoT Core's data endpoint carries through the VPC endpoint: the
/// signed request, its answer and TLS/TCP overhead (an estimate).
const PUBLISH_BYTES: f64 = 1_200.0;

/// Seconds of publisher billed per minute: each scheduled run lasts 90 s and the next one,
/// started 60 s later, waits 30 s for it (see the template).
const PUBLISHER_BILLED_SECS_PER_MIN: f64 = 120.0;

/// The publisher measured at rest (no changes to publish).
struct PublisherAtRest {
    seconds: f64,
    commands_per_sec: f64,
    cpu_share: f64,
    peak_mib: f64,
}

/// Runs the publisher binary once for `seconds` through the Runtime API, with nothing to
/// publish, counting the Redis commands it sends and the CPU it uses.
fn publisher_at_rest(bin: &Path, redis: &str, seconds: u64) -> PublisherAtRest {
    let mut total = commands_processed(redis);
    let mut publisher = Subject::start(
        "publisher",
        bin.join("publisher").to_str().unwrap(),
        &[],
        &[
            ("CUBEWALK_REDIS_URL", redis.to_owned()),
            // Nothing is published at rest; an address that would refuse it anyway.
            ("CUBEWALK_IOT_ENDPOINT", "http://127.0.0.1:9".to_owned()),
            ("CUBEWALK_PUBLISHER_RUN_SECS", seconds.to_string()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "example".to_owned()),
        ],
    );
    let (cpu, before) = (publisher.cpu(), total());
    let started = Instant::now();
    let answer = publisher.invoke(serde_json::json!({}));
    let took = started.elapsed().as_secs_f64();
    let commands = total() - before - 1.0;
    assert_eq!(
        answer.body["held"], true,
        "the publisher did not run: {}",
        answer.body
    );
    let (_, peak_mib) = publisher.memory();
    PublisherAtRest {
        seconds: took,
        commands_per_sec: commands / took,
        cpu_share: (publisher.cpu() - cpu).as_secs_f64() / took,
        peak_mib,
    }
}

/// A whole number of dollars with thousands separators.
pub(crate) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line of the bill: what, and its cost in dollars per 1,000 player-hours at each crowd.
struct Line {
    what: String,
    per_1000: Vec<f64>,
}

/// The crowds the table prices.
const CROWDS: [f64; 3] = [100.0, 1_000.0, 10_000.0];

pub(crate) fn cost(env: &Env, quick: bool) -> (Section, Vec<(f64, f64)>) {
    let mut b = String::new();
    let mut goals = Vec::new();
    let rounds = if quick { 200 } else { 1000 };
    let memory = memory_mb();
    let bin = lambda_binaries();
    let redis = env.redis().url();
    // The measured chunks: typical terrain, 9 x 3 x 9 chunks around the origin.
    let terrain = fixtures::terrain();
    let mut seed = Vec::new();
    for x in -4..=4 {
        for y in -1..=1 {
            for z in -4..=4 {
                seed.push((cubewalk::ChunkKey::new(x, y, z), &*terrain));
            }
        }
    }
    env.seed(WORLD, &seed);
    let chunks = neighbourhood();
    let kinds: Vec<EventKind> = vec![
        (
            "GET 1 chunk",
            Box::new(|_| events::rest("GET", Some((WORLD, "0,0,0")), None)),
        ),
        (
            "GET 27 chunks",
            Box::new(move |_| events::rest("GET", Some((WORLD, &chunks)), None)),
        ),
        (
            "PUT 1 cube",
            Box::new(|i| events::rest("PUT", None, Some(&put_body(10 + (i % 2) as i32)))),
        ),
    ];

    // 1. Beside the seed's way.
    writeln!(b, "### Beside the seed design's Python handler\n").unwrap();
    let python = python_ready();
    let mut rust = start_rust(&bin, &redis);
    let mut blocks_kinds;
    if python {
        writeln!(b, "The blocks function and `bench/python/seed_handler.py` (the seed design's way: Python 3, the `redis` client, the same GET/PUT semantics on the same stored format; it keeps no log, no idempotency keys and no limits, so it does less work; never deployed), each run by its runtime interface client (our binary's `lambda_runtime`; Amazon's `awslambdaric` for Python) against its own local Runtime API, on the same `redis-server`, interleaved round by round. Before measuring, each handler reads the other's puts back with the same revision and both answer a 27-chunk read identically. Duration is Lambda's: from `next` handing the event out to the answer's arrival. {rounds} rounds per kind after 50 warm-up invocations.\n").unwrap();
        let mut py = start_python(&redis);
        check_same_answers(&mut rust, &mut py);
        let mut measured = interleave(&mut [&mut rust, &mut py], &kinds, rounds);
        let py_kinds = measured.pop().unwrap();
        blocks_kinds = measured.pop().unwrap();
        let (rss_r, hwm_r) = rust.memory();
        let (rss_p, hwm_p) = py.memory();
        let rust_start = || start_rust(&bin, &redis);
        let py_start = || start_python(&redis);
        let first = events::rest("GET", Some((WORLD, "0,0,0")), None);
        let cold = cold_starts(
            &[(&rust_start, first.clone()), (&py_start, first)],
            if quick { 5 } else { 15 },
        );
        writeln!(
            b,
            "| measure | Rust | Python | Python / Rust |\n|---|---|---|---|"
        )
        .unwrap();
        writeln!(
            b,
            "| cold start, process start to first answer (median of {}) | {} | {} | {:.1}x |",
            cold[0].len(),
            ms(cold[0].median()),
            ms(cold[1].median()),
            cold[1].median().as_secs_f64() / cold[0].median().as_secs_f64()
        )
        .unwrap();
        for (r, p) in blocks_kinds.iter().zip(&py_kinds) {
            for (label, rq, pq) in [
                ("p50", r.durations.median(), p.durations.median()),
                ("p99", r.durations.p99(), p.durations.p99()),
            ] {
                writeln!(
                    b,
                    "| {} duration {label} | {} | {} | {:.1}x |",
                    r.what,
                    ms(rq),
                    ms(pq),
                    pq.as_secs_f64() / rq.as_secs_f64()
                )
                .unwrap();
            }
            writeln!(
                b,
                "| {} CPU per invocation | {} | {} | {:.1}x |",
                r.what,
                ms(r.cpu),
                ms(p.cpu),
                p.cpu.as_secs_f64() / r.cpu.as_secs_f64().max(1e-9)
            )
            .unwrap();
        }
        writeln!(
            b,
            "| resident memory after the run (peak) | {rss_r:.1} MiB ({hwm_r:.1}) | {rss_p:.1} MiB ({hwm_p:.1}) | {:.1}x |\n",
            hwm_p / hwm_r
        )
        .unwrap();
        let get27 = |k: &[Kind]| k[1].durations.median().as_secs_f64();
        goals.push(goal(
            "blocks: Python / Rust warm duration, 27-chunk GET (median)",
            "report",
            get27(&py_kinds) / get27(&blocks_kinds),
            true,
            "x",
        ));
    } else {
        writeln!(b, "Not measured: Python with `awslambdaric` and `redis` is not installed (`scripts/install-test-deps.sh` installs them).\n").unwrap();
        blocks_kinds = interleave(&mut [&mut rust], &kinds, rounds).pop().unwrap();
    }
    // What the bill prices besides: a slab of chunks entering the neighbourhood as the player
    // crosses a border, and a third of a 729-chunk neighbourhood (one request of three).
    let slab = chunks_param(4, 0..=0);
    let third = chunks_param(4, -1..=1);
    let bigger: Vec<EventKind> = vec![
        (
            "GET 81 chunks (a slab)",
            Box::new(move |_| events::rest("GET", Some((WORLD, &slab)), None)),
        ),
        (
            "GET 243 chunks",
            Box::new(move |_| events::rest("GET", Some((WORLD, &third)), None)),
        ),
    ];
    blocks_kinds.extend(
        interleave(&mut [&mut rust], &bigger, rounds.min(300))
            .pop()
            .unwrap(),
    );
    let (first, rest) = blocks_kinds.split_at_mut(kinds.len());
    count_commands(&redis, &mut rust, &kinds, first);
    count_commands(&redis, &mut rust, &bigger, rest);
    let (_, blocks_peak) = rust.memory();
    drop(rust);

    // 2. Our functions as Lambda bills them.
    let key = SigningKey::generate();
    let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
    let player_token = cubewalk_testkit::tokens::sign(
        &key,
        &cubewalk_testkit::tokens::claims("player-1", "editor"),
    );
    let static_token = "cost-static-token-1".to_string();
    let auth_env = [
        ("CUBEWALK_PUBLIC_KEYS", jwks),
        ("CUBEWALK_TOKENS", static_token.clone()),
    ];
    let authorizer_bin = bin.join("authorizer");
    let mut auth = Subject::start(
        "authorizer",
        authorizer_bin.to_str().unwrap(),
        &[],
        &auth_env,
    );
    let auth_kinds: Vec<EventKind> = vec![
        (
            "player token (EdDSA JWT)",
            Box::new(move |_| events::token(&player_token)),
        ),
        (
            "static token",
            Box::new(move |_| events::token(&static_token)),
        ),
    ];
    let auth_measured = interleave(&mut [&mut auth], &auth_kinds, rounds)
        .pop()
        .unwrap();
    let (_, auth_peak) = auth.memory();
    drop(auth);
    let broker_bin = bin.join("broker_authorizer");
    let broker_env = [
        ("CUBEWALK_PUBLIC_KEYS", auth_env[0].1.clone()),
        ("CUBEWALK_REDIS_URL", redis.clone()),
        (
            "CUBEWALK_IOT_ARN_PREFIX",
            "arn:aws:iot:us-east-1:123456789012".to_string(),
        ),
    ];
    let mut broker = Subject::start(
        "broker_authorizer",
        broker_bin.to_str().unwrap(),
        &[],
        &broker_env,
    );
    let broker_token = cubewalk_testkit::tokens::sign(
        &key,
        &cubewalk_testkit::tokens::claims("player-1", "viewer"),
    );
    let rt_kinds: Vec<EventKind> = vec![(
        "broker connect (EdDSA JWT)",
        Box::new(move |_| events::broker_connect(Some(&broker_token), None, None)),
    )];
    let mut rt_measured = interleave(&mut [&mut broker], &rt_kinds, rounds)
        .pop()
        .unwrap();
    count_commands(&redis, &mut broker, &rt_kinds, &mut rt_measured);
    let (_, rt_peak) = broker.memory();
    drop(broker);
    let publisher = publisher_at_rest(&bin, &redis, if quick { 3 } else { 10 });
    let auth_start = || {
        Subject::start(
            "authorizer",
            authorizer_bin.to_str().unwrap(),
            &[],
            &auth_env,
        )
    };
    let blocks_start = || start_rust(&bin, &redis);
    let rt_start = || {
        Subject::start(
            "broker_authorizer",
            broker_bin.to_str().unwrap(),
            &[],
            &broker_env,
        )
    };
    let cold_token = cubewalk_testkit::tokens::sign(
        &key,
        &cubewalk_testkit::tokens::claims("player-2", "viewer"),
    );
    let colds = cold_starts(
        &[
            (&auth_start, events::token("cost-static-token-1")),
            (
                &blocks_start,
                events::rest("GET", Some((WORLD, "0,0,0")), None),
            ),
            (
                &rt_start,
                events::broker_connect(Some(&cold_token), None, None),
            ),
        ],
        if quick { 5 } else { 15 },
    );

    writeln!(b, "### Our functions as Lambda bills them\n").unwrap();
    writeln!(b, "Duration from `next` to the answer through the local Runtime API, {rounds} invocations each after 50 warm-up ones, on this machine's x86_64 cores (the deployed functions run on arm64 Graviton: same code, another CPU). *Billed at {memory:.0} MB* brackets Lambda's figure, rounded up to the millisecond: *never throttled* is the measured duration (a short burst of CPU runs at full speed while the function is within its CPU quota); *throttled* stretches the CPU part to the share of a vCPU {memory:.0} MB buys ({memory:.0}/{FULL_VCPU_MB:.0}), the waiting part unchanged. The bill below uses the throttled figure: an estimate, not a bound (this machine is x86_64 on loopback Redis without TLS; Lambda is arm64 against TLS ElastiCache). CPU counts every thread of the process (the runtime client's included), so it can exceed the duration. Cold start: process start to first answer, store connection included; Lambda bills it as init time. Memory: peak resident set. An authorizer cache hit at API Gateway invokes nothing and costs nothing here; each miss is one authorizer invocation below, and the hit rate is measured in the bill. The blocks function runs as deployed, appending each put's changes to the realtime feed (one more Redis command). The broker authorizer is what IoT Core runs for each realtime connection and every 300 s on it (a token check and a ban flag read); the publisher runs all the time, so it is priced as a fixed cost below.\n").unwrap();
    writeln!(b, "| function | invocation | p50 | p99 | CPU / invocation | billed at {memory:.0} MB, p50: never throttled / throttled | log bytes / invocation | Redis commands / invocation |\n|---|---|---|---|---|---|---|---|").unwrap();
    let mut units = std::collections::HashMap::new();
    for (function, kinds) in [
        ("authorizer", &auth_measured),
        ("blocks", &blocks_kinds),
        ("broker_authorizer", &rt_measured),
    ] {
        for k in kinds.iter() {
            let free = billed_ms(k.durations.median());
            let at = lambda_ms(k.durations.median(), k.cpu, memory);
            units.insert(
                k.what,
                Unit {
                    ms: at,
                    log: k.log_bytes,
                    redis: k.redis,
                },
            );
            writeln!(
                b,
                "| {function} | {} | {} | {} | {} | {free:.0} / {at:.0} ms | {:.0} | {:.1} |",
                k.what,
                ms(k.durations.median()),
                ms(k.durations.p99()),
                ms(k.cpu),
                k.log_bytes,
                k.redis
            )
            .unwrap();
        }
    }
    writeln!(
        b,
        "\n| function | cold start (median of {}) | peak resident memory |\n|---|---|---|",
        colds[0].len()
    )
    .unwrap();
    for ((name, cold), peak) in ["authorizer", "blocks", "broker_authorizer"]
        .iter()
        .zip(&colds)
        .zip([auth_peak, blocks_peak, rt_peak])
    {
        writeln!(b, "| {name} | {} | {peak:.1} MiB |", ms(cold.median())).unwrap();
        goals.push(goal(
            &format!("{name} cold start on this machine (median, ms)"),
            "< 50 ms",
            cold.median().as_secs_f64() * 1000.0,
            cold.median() < Duration::from_millis(50),
            " ms",
        ));
    }
    let peak = auth_peak
        .max(blocks_peak)
        .max(rt_peak)
        .max(publisher.peak_mib);
    writeln!(b, "\n**The publisher at rest** (no changes to publish), run through the Runtime API for {:.0} s: {:.0} Redis commands a second (reading the 16 feed streams, renewing its lease each 100 ms tick), {:.1}% of one core, peak resident memory {:.1} MiB. Deployed it runs around the clock: each one-minute schedule starts a run of 90 s that waits for the previous one to end, so about 120 s are billed each minute.\n", publisher.seconds, publisher.commands_per_sec, publisher.cpu_share * 100.0, publisher.peak_mib).unwrap();
    writeln!(b, "\n**Memory size.** The template gives every function {memory:.0} MB, Lambda's smallest size, but the publisher, which gets {:.0} MB for the CPU its posting loop needs (section 7). The largest peak resident set measured is {peak:.1} MiB, far below it. It is also the cheapest: a GB-second costs the same at any size, so the CPU part of an invocation costs the same at any size (more memory, proportionally more CPU) while the waiting part costs twice as much at twice the memory. The price is latency: if Lambda throttles these short bursts to 128 MB's CPU share, a put takes about 10 ms instead of 1 (the throttled column).\n", function_memory_mb("PublisherFunction")).unwrap();

    // 3. The bill.
    let hit_rate = authorizer_hit_rate(env, &PATTERN);
    let bill = bill_at(&units, &publisher, hit_rate, &CROWDS);
    writeln!(b, "### The whole stack per 1,000 player-hours\n").unwrap();
    writeln!(b, "Play pattern, per player-hour: {} session (the 729-chunk neighbourhood fetched in 3 requests, one realtime connection held all hour, subscribed to the {:.0} topics of the regions of {r}x{r}x{r} chunks around the player), {} chunk borders crossed (each: one fetch of the new 81-chunk slab; one in {r} of them moves the regions, {:.0} topics off and as many on), {} cube edits (one put each), each followed by {} other players and the editor, {} guest login (a token lives an hour), {} reconciliations (a conditional fetch of the 729 chunks, 3 requests), {} MQTT pings and {} broker authorizer runs (at connect and every 300 s). A change is published once and delivered to everyone subscribed to its region: the followers of its chunk and the editor, times {:.2} ({:.0} regions of {} chunks hold {:.2} times the 729 chunks a follower follows; the rest it drops). Subscriptions and pings are counted as IoT messages, to be safe. REST requests reach the authorizer only on a cache miss; the hit rate, {:.1}%, is measured through the local gateway's authorizer cache (API Gateway's per-token TTL of 60 s, time compressed 100 times). Durations are the throttled billed estimates above: a session's fetches and each reconciliation as three 243-chunk GETs (an upper bound for a reconciliation, which answers unchanged chunks without data), a crossing as the 81-chunk slab, the login function (not measured) as an authorizer invocation. Init time is left out: at the cold starts measured above (about 50 ms even throttled), one cold start per player-hour would add less than $0.001 per 1,000 player-hours. Fixed costs are shared by the players online: the publisher ({PUBLISHER_BILLED_SECS_PER_MIN:.0} s billed a minute), 2 interface VPC endpoints in 2 Availability Zones (no NAT gateway), the WAF web ACL, the 4 secrets and the private hosted zone. The store is sized from its load: each invocation's Redis commands are counted by the server above, the publisher's at rest added, and a shard (a primary and its replica, the template's layout) is assumed to sustain {SHARD_COMMANDS_PER_SEC:.0} commands a second; that capacity is an assumption only AWS can check. A publish is priced at {PUBLISH_BYTES:.0} bytes through the VPC endpoint (an estimate). Stored logs (no retention is set) are not in the table. Prices: us-east-1, on demand, read {}; no free tier.\n",
        PATTERN.sessions, followed_regions(), PATTERN.crossings, regions_per_axis().powi(2), PATTERN.edits, PATTERN.followers, PATTERN.logins, PATTERN.reconciles, PATTERN.pings, PATTERN.sessions + PATTERN.authorizer_refreshes, region_overdelivery(), followed_regions(), REGION_CHUNKS.pow(3), region_overdelivery(), hit_rate * 100.0, prices::READ_ON, r = REGION_CHUNKS).unwrap();
    write!(b, "| line (USD per 1,000 player-hours) |").unwrap();
    for c in CROWDS {
        write!(b, " {c:.0} players online |").unwrap();
    }
    writeln!(b, "\n|---|---|---|---|").unwrap();
    for line in &bill.lines {
        write!(b, "| {} |", line.what).unwrap();
        for v in &line.per_1000 {
            write!(b, " {v:.2} |").unwrap();
        }
        writeln!(b).unwrap();
    }
    let totals: Vec<f64> = (0..CROWDS.len())
        .map(|i| bill.lines.iter().map(|l| l.per_1000[i]).sum())
        .collect();
    write!(b, "| **total** |").unwrap();
    for t in &totals {
        write!(b, " **{t:.2}** |").unwrap();
    }
    writeln!(b).unwrap();
    write!(b, "\nThe store's load: ").unwrap();
    for (i, c) in CROWDS.iter().enumerate() {
        write!(
            b,
            "{}{} Redis commands a second at {c:.0} online ({} shard{})",
            if i > 0 { "; " } else { "" },
            thousands(bill.commands_per_sec[i]),
            bill.shards[i],
            if bill.shards[i] > 1.0 { "s" } else { "" }
        )
        .unwrap();
    }
    writeln!(
        b,
        ". Following costs the store nothing per follower: a subscription lives in the broker, and a put adds one command (its change appended to the feed)."
    )
    .unwrap();
    let monthly_1000 = totals[1] * prices::HOURS_PER_MONTH;
    writeln!(
        b,
        "\nFor 1,000 players online around the clock (730 hours a month): **about ${} a month**. The realtime design before this one (API Gateway's WebSocket API, the put posting each change to each follower through `@connections`, NAT gateways, a Redis subscription index) came to $5.73 per 1,000 player-hours at 1,000 online, about $4,185 a month, in the run of commit 7ae1cda (its BENCHMARKS.md); its code is gone, so it is not measured again here.\n",
        thousands(monthly_1000)
    )
    .unwrap();
    writeln!(
        b,
        "![Cost per 1,000 player-hours by players online](docs/bench/cost-per-player-hour.png)\n"
    )
    .unwrap();
    writeln!(b, "| price | USD | per | read from |\n|---|---|---|---|").unwrap();
    for p in prices::ALL {
        let per = if p.per == 1.0 {
            String::new()
        } else {
            format!("{:.0} ", p.per).replace("000000", ",000,000")
        };
        writeln!(
            b,
            "| {} | {} | {per}{} | {} |",
            p.what, p.usd, p.unit, p.source
        )
        .unwrap();
    }
    goals.push(goal(
        "USD per 1,000 player-hours, 1,000 players online",
        "report",
        totals[1],
        true,
        "",
    ));
    let curve: Vec<(f64, f64)> = [100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0]
        .iter()
        .map(|&n| {
            let at = bill_at(&units, &publisher, hit_rate, &[n]);
            (n, at.lines.iter().map(|l| l.per_1000[0]).sum())
        })
        .collect();
    (
        Section {
            title: "8. Cost",
            body: b,
            goals,
        },
        curve,
    )
}

/// What one kind of invocation costs: billed milliseconds (throttled estimate), log bytes,
/// and Redis commands.
#[derive(Clone, Copy, Default)]
struct Unit {
    ms: f64,
    log: f64,
    redis: f64,
}

/// The bill at each crowd: its lines per 1,000 player-hours, and the store's load (Redis
/// commands a second) and shards.
struct Bill {
    lines: Vec<Line>,
    commands_per_sec: Vec<f64>,
    shards: Vec<f64>,
}

fn bill_at(
    units: &std::collections::HashMap<&str, Unit>,
    publisher: &PublisherAtRest,
    hit_rate: f64,
    crowds: &[f64],
) -> Bill {
    let p = &PATTERN;
    let memory = memory_mb();
    let u = |k: &str| units.get(k).copied().unwrap_or_default();
    let hours = 1000.0; // player-hours priced
    let gb_s = |ms: f64| memory / 1024.0 * ms / 1000.0;
    // Per 1,000 player-hours.
    let fetches = hours * (p.sessions * 3.0 + p.crossings);
    let reconciles = hours * p.reconciles * 3.0;
    let puts = hours * p.edits;
    let logins = hours * p.logins;
    let rest = fetches + reconciles + puts + logins;
    // Each REST request but the login (no authorizer) on a cache miss.
    let authorizations = (fetches + reconciles + puts) * (1.0 - hit_rate);
    // The broker authorizer at each connect and every 300 s on a connection.
    let broker_auths = hours * (p.sessions + p.authorizer_refreshes);
    // Published: one message per edit (a bound: at this density edits rarely share a region
    // and a tick, so coalescing saves little); delivered: to everyone subscribed to the
    // edit's region, the followers of its chunk and the editor times the regions' overreach.
    let published = puts;
    let delivered = puts * (p.followers + 1.0) * region_overdelivery();
    // Subscriptions: the followed region topics a session, the topic changes of a crossing on
    // average (one crossing in REGION_CHUNKS moves the regions, a face off and a face on),
    // pings counted too.
    let control = hours
        * (p.sessions * followed_regions() + p.crossings * topic_changes_per_crossing() + p.pings);
    let iot_messages = published + delivered + control;
    let (get243, get81, put, token, broker) = (
        u("GET 243 chunks"),
        u("GET 81 chunks (a slab)"),
        u("PUT 1 cube"),
        u("player token (EdDSA JWT)"),
        u("broker connect (EdDSA JWT)"),
    );
    // A reconciliation of an unchanged neighbourhood answers "not modified" for every chunk:
    // priced as the 243-chunk GET, an upper bound (it sends no chunk data).
    let blocks_ms = hours * p.sessions * 3.0 * get243.ms
        + reconciles * get243.ms
        + hours * p.crossings * get81.ms
        + puts * put.ms;
    // The login function (not measured) priced as an authorizer invocation: one EdDSA
    // signature against one verification.
    let auth_ms = (authorizations + logins) * token.ms;
    let broker_ms = broker_auths * broker.ms;
    let invocations = rest + authorizations + broker_auths;
    let log_bytes = hours * p.sessions * 3.0 * get243.log
        + reconciles * get243.log
        + hours * p.crossings * get81.log
        + puts * put.log
        + (authorizations + logins) * token.log
        + broker_auths * broker.log;
    // Bytes to players: a typical-terrain chunk is about 100 bytes of gzipped JSON (Size
    // section), a not-modified entry about 40; a change about 90 bytes of a region message;
    // headers about 400 bytes an answer.
    let out_gb = (hours * p.sessions * 729.0 * 100.0
        + hours * p.crossings * 81.0 * 100.0
        + hours * p.reconciles * 729.0 * 40.0
        + (fetches + reconciles) * 400.0
        + puts * 500.0
        + delivered * 120.0)
        / 1e9;
    // The store's load: Redis commands per player-hour, measured per invocation, and the
    // publisher's own, measured at rest.
    let commands = hours * p.sessions * 3.0 * get243.redis
        + reconciles * get243.redis
        + hours * p.crossings * get81.redis
        + puts * put.redis
        + broker_auths * broker.redis;
    let per_player_hour = commands / hours;
    let commands_per_sec: Vec<f64> = crowds
        .iter()
        .map(|c| c * per_player_hour / 3600.0 + publisher.commands_per_sec)
        .collect();
    let shards: Vec<f64> = commands_per_sec
        .iter()
        .map(|c| (c / SHARD_COMMANDS_PER_SEC).ceil().max(1.0))
        .collect();
    let per = |v: f64| vec![v; crowds.len()];
    let fixed = |hourly: f64| -> Vec<f64> { crowds.iter().map(|c| hourly / c * hours).collect() };
    let monthly = |usd: f64| usd / prices::HOURS_PER_MONTH;
    let publisher_mb = function_memory_mb("PublisherFunction");
    let publisher_hourly = prices::LAMBDA_REQUEST.of(60.0)
        + prices::LAMBDA_ARM_GB_SECOND
            .of(publisher_mb / 1024.0 * 60.0 * PUBLISHER_BILLED_SECS_PER_MIN);
    let lines = vec![
        Line {
            what: "API Gateway REST requests (logins and reconciliations included)".into(),
            per_1000: per(prices::REST_REQUEST.of(rest)),
        },
        Line {
            what: "AWS WAF requests (every REST request is inspected)".into(),
            per_1000: per(prices::WAF_REQUEST.of(rest)),
        },
        Line {
            what: "AWS IoT Core messages (changes published and delivered, subscriptions, pings)"
                .into(),
            per_1000: per(prices::IOT_MESSAGE.of(iot_messages)),
        },
        Line {
            what: "AWS IoT Core connection minutes".into(),
            per_1000: per(prices::IOT_CONNECTION_MINUTE.of(hours * 60.0)),
        },
        Line {
            what: "Lambda requests (blocks, authorizer, broker authorizer, login)".into(),
            per_1000: per(prices::LAMBDA_REQUEST.of(invocations)),
        },
        Line {
            what: format!("Lambda duration at {memory:.0} MB arm64"),
            per_1000: per(prices::LAMBDA_ARM_GB_SECOND.of(gb_s(blocks_ms + auth_ms + broker_ms))),
        },
        Line {
            what: "CloudWatch Logs ingestion (the functions' JSON log lines)".into(),
            per_1000: per(prices::LOG_GB.of(log_bytes / 1e9)),
        },
        Line {
            what: "Data transfer out (REST answers and change deliveries)".into(),
            per_1000: per(prices::TRANSFER_OUT_GB.of(out_gb)),
        },
        Line {
            what: "VPC endpoint data (the publisher's posts to IoT Core)".into(),
            per_1000: per(prices::VPC_ENDPOINT_GB.of(published * PUBLISH_BYTES / 1e9)),
        },
        Line {
            what: "ElastiCache, cache.t4g.small, 2 nodes per shard (shards below)".into(),
            per_1000: crowds
                .iter()
                .zip(&shards)
                .map(|(c, n)| prices::CACHE_NODE_HOUR.of(2.0 * n) / c * hours)
                .collect(),
        },
        Line {
            what: "The publisher, running around the clock (fixed)".into(),
            per_1000: fixed(publisher_hourly),
        },
        Line {
            what: "VPC endpoints: Secrets Manager and IoT data, 2 Availability Zones (fixed)"
                .into(),
            per_1000: fixed(prices::VPC_ENDPOINT_HOUR.of(4.0)),
        },
        Line {
            what: "AWS WAF web ACL, Secrets Manager's 4 secrets, the private hosted zone (fixed)"
                .into(),
            per_1000: fixed(monthly(
                prices::WAF_ACL_MONTH.of(1.0)
                    + prices::SECRET_MONTH.of(4.0)
                    + prices::HOSTED_ZONE_MONTH.of(1.0),
            )),
        },
    ];
    Bill {
        lines,
        commands_per_sec,
        shards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_is_priced_at_its_own_memory_size() {
        assert_eq!(memory_mb(), 128.0);
        assert_eq!(
            function_memory_mb("BlocksFunction"),
            128.0,
            "the global size"
        );
        assert_eq!(function_memory_mb("PublisherFunction"), 256.0, "its own");
        assert_eq!(function_memory_mb("LoginFunction"), 128.0);
    }

    #[test]
    fn the_region_model_follows_the_region_size() {
        assert_eq!(
            REGION_CHUNKS, 4,
            "the figures below are for regions of 4x4x4 chunks"
        );
        assert_eq!(regions_per_axis(), 3.0);
        assert_eq!(followed_regions(), 27.0);
        assert!((region_overdelivery() - 1728.0 / 729.0).abs() < 1e-12);
        // Once every 4 moves, 9 topics off and 9 on.
        assert_eq!(topic_changes_per_crossing(), 4.5);
    }
}
