//! A store players cannot fill: filled through the API, a world (or every world of a prefix
//! rule together) stops at its budget, with `507 store_full`, while edits that do not grow it
//! still pass; and the store stops taking edits before Redis's own memory limit, however they
//! are made (rewriting chunks in place grows only the log, and is stopped too). Reads keep
//! answering throughout. Worlds not configured and chunks out of bounds are refused.

use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, Error, Status};
use cubewalk_e2e::{runtime, TOKEN};
use cubewalk_protocol::codec::fixtures;
use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::handlers::blocks::Rules;
use cubewalk_server::identity::TokenSet;
use cubewalk_server::store::{ChunkStore, PlayerLimits, RedisStore, RedisStoreConfig};
use cubewalk_server::worlds::Worlds;
use cubewalk_testkit::{RedisServer, TestGateway};
use std::sync::Arc;
use std::time::Duration;

/// A gateway on `redis` with `worlds`, limits that let one test fill a store quickly, and the
/// store's fullness looked at every 50 ms (a deployment looks every 5 s).
fn gateway(redis: &RedisServer, worlds: &str) -> TestGateway {
    let config = GatewayConfig {
        rules: Rules {
            limits: PlayerLimits {
                cubes_per_sec: 10_000_000,
                cube_burst: 10_000_000,
                new_chunks_per_min: 1_000_000,
                new_chunk_burst: 1_000_000,
                writes_per_sec: 100_000,
                write_burst: 100_000,
            },
            worlds: Worlds::parse(worlds).unwrap(),
        },
        ..GatewayConfig::default()
    };
    let mut store_config = RedisStoreConfig::new(redis.url());
    store_config.fullness_every = Duration::from_millis(50);
    let authorizer = Arc::new(TokenAuthorizer(TokenSet::new([TOKEN]).into()));
    TestGateway::start_with(config, authorizer, move || async move {
        Arc::new(RedisStore::connect(&store_config).await.unwrap()) as Arc<dyn ChunkStore>
    })
}

fn client(gw: &TestGateway) -> Client {
    Client::new(&gw.blocks_url(), TOKEN, ClientOptions::default()).unwrap()
}

/// Whole chunks of random cubes (16 KiB each, the largest a chunk stores) at `keys`.
fn random_chunks(keys: &[ChunkKey], seed: u64) -> Vec<ChunkEdit> {
    keys.iter()
        .enumerate()
        .flat_map(|(n, &k)| {
            fixtures::random(seed + n as u64)
                .iter()
                .enumerate()
                .map(move |(i, &v)| ChunkEdit::at_index(k, i as u16, v))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Puts batches of `per_put` random chunks until a put fails; answers the error and the
/// chunks written before it.
fn fill(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    world: &str,
    per_put: i32,
) -> (Error, Vec<ChunkKey>) {
    let mut written = Vec::new();
    for batch in 0..10_000 {
        let keys: Vec<ChunkKey> = (0..per_put)
            .map(|i| ChunkKey::new(i, batch % 8, batch / 8))
            .collect();
        match rt.block_on(c.put(world, &random_chunks(&keys, batch as u64 * 1000))) {
            Ok(_) => written.extend(keys),
            Err(e) => return (e, written),
        }
    }
    panic!("the store never filled");
}

fn is_store_full(e: &Error) -> bool {
    matches!(e, Error::Server { status: 507, message, .. } if message.contains("full"))
}

#[test]
fn a_world_filled_through_the_api_stops_at_its_budget_and_still_answers() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, "small=64/8/1, big, event-*=64/8/1");
    let rt = runtime();
    let c = client(&gw);
    let (err, written) = fill(&rt, &c, "small", 4);
    assert!(is_store_full(&err), "{err}");
    // 1 MiB of 16 KiB chunks: about 60 fit.
    assert!(
        (48..=64).contains(&written.len()),
        "{} chunks fit in 1 MiB",
        written.len()
    );
    // Reads answer; an edit that keeps the size passes; another world has its own budget.
    let got = rt
        .block_on(c.fetch("small", &[(written[0], None)]))
        .unwrap();
    assert!(got[0].data.is_some());
    rt.block_on(c.put("small", &[ChunkEdit::at_index(written[0], 7, 12345)]))
        .expect("an edit that does not grow the world");
    rt.block_on(c.put("big", &random_chunks(&[ChunkKey::new(0, 0, 0)], 1)))
        .expect("another world");
    // Made-up worlds of a prefix rule share its one budget.
    let mut fitted = 0;
    let full = loop {
        let world = format!("event-{fitted}");
        let keys = [ChunkKey::new(0, 0, 0), ChunkKey::new(1, 0, 0)];
        match rt.block_on(c.put(&world, &random_chunks(&keys, fitted as u64))) {
            Ok(_) => fitted += 2,
            Err(e) => break e,
        }
        assert!(fitted < 200, "event worlds grew past their shared budget");
    };
    assert!(is_store_full(&full), "{full}");
    assert!(
        (48..=64).contains(&fitted),
        "{fitted} chunks in 1 MiB of event worlds"
    );
    // Out of bounds, or a world the deployment does not have: refused before the store.
    let out = rt
        .block_on(c.put(
            "small",
            &[ChunkEdit::at_index(ChunkKey::new(65, 0, 0), 0, 1)],
        ))
        .unwrap_err();
    assert_eq!(out.status(), Status::BadRequest, "{out}");
    let unknown = rt
        .block_on(c.fetch("elsewhere", &[(ChunkKey::new(0, 0, 0), None)]))
        .unwrap_err();
    assert!(
        matches!(unknown, Error::BadRequest { status: 404, .. }),
        "{unknown}"
    );
}

#[test]
fn a_store_filled_through_the_api_refuses_growth_before_redis_refuses_writes() {
    // 48 MB for everything: the budgets (1 GiB a world) are far above it, so only the
    // store's own fullness can stop the filling, before Redis answers OOM to every write.
    let redis =
        RedisServer::start_with(&["--maxmemory", "48mb", "--maxmemory-policy", "noeviction"]);
    let gw = gateway(&redis, "*");
    let rt = runtime();
    let c = client(&gw);
    let (err, written) = fill(&rt, &c, "crowded", 4);
    assert!(is_store_full(&err), "{err}");
    // Each whole-chunk write keeps 16 KiB of blob and about 80 KiB of log (every cube's
    // before and after, kept 7 days for undo): a few hundred fill 90% of 48 MB.
    assert!(written.len() > 200, "only {} chunks written", written.len());
    // Reads answer. Rewriting the chunks in place keeps their size but logs every cube: that
    // is refused too, every time, and never reaches Redis's own OOM (503).
    let got = rt
        .block_on(c.fetch("crowded", &[(written[1], None)]))
        .unwrap();
    assert!(got[0].data.is_some());
    for round in 0..40u64 {
        let keys = &written[(round as usize * 4) % (written.len() - 4)..][..4];
        let err = rt
            .block_on(c.put("crowded", &random_chunks(keys, 1_000_000 + round)))
            .unwrap_err();
        assert!(is_store_full(&err), "round {round}: {err}");
    }
    let port = redis.url().rsplit(':').next().unwrap().to_owned();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port, "INFO", "memory"])
        .output()
        .expect("redis-cli");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let share = field("used_memory") / field("maxmemory");
    assert!(share < 1.0, "Redis reached its limit: {share}");
}
