//! Realtime against a broker we did not write: `serve`'s gate and publisher in front of a
//! Mosquitto started by the test, and followers kept by the SDK's `Realtime` and the follower's
//! rule (apply a change that starts at what is held, refetch otherwise). Several players edit
//! at random; a change is lost (a jump in the sequence), a late one arrives, the broker
//! restarts, a follower stops reading while thousands of changes arrive, a follower's network
//! freezes for a minute: each ends with a copy equal to a fresh fetch.

use cubewalk::realtime::{Realtime, RealtimeEvent};
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions, CHUNK_CUBES};
use cubewalk_e2e::TOKEN;
use cubewalk_protocol::realtime::{region_message, Change};
use cubewalk_protocol::WorldId;
use cubewalk_server::gateway::GatewayConfig;
use cubewalk_server::identity::TokenSet;
use cubewalk_server::realtime::BrokerAddress;
use cubewalk_server::store::{ChunkStore, MemoryStore};
use cubewalk_testkit::{MosquittoServer, TestGateway};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORLD: &str = "broker";

struct Setup {
    rt: tokio::runtime::Runtime,
    gw: TestGateway,
    mosquitto: MosquittoServer,
}

fn setup() -> Setup {
    setup_with(GatewayConfig::default())
}

fn setup_with(config: GatewayConfig) -> Setup {
    let mosquitto = MosquittoServer::start();
    let broker = BrokerAddress {
        host: "127.0.0.1".into(),
        port: mosquitto.port,
        login: None,
    };
    let store: Arc<dyn ChunkStore> = Arc::new(MemoryStore::new());
    let gw = TestGateway::start_realtime_at(
        0,
        config,
        TokenSet::new([TOKEN]).into(),
        Some(broker),
        move || async move { store },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Setup { rt, gw, mosquitto }
}

impl Setup {
    fn client(&self) -> Client {
        let _g = self.rt.enter();
        Client::new(&self.gw.blocks_url(), TOKEN, ClientOptions::default()).unwrap()
    }
}

/// A follower's copy, kept by the rule.
struct Copy {
    client: Client,
    realtime: Realtime,
    held: HashMap<ChunkKey, (u64, Box<[i32; CHUNK_CUBES]>)>,
    applied: usize,
    refetched: usize,
    gaps: usize,
}

impl Copy {
    fn start(s: &Setup, chunks: &[ChunkKey]) -> Self {
        Self::start_at(s, chunks, &s.gw.realtime_url())
    }

    /// A follower that reaches the gate at `url`.
    fn start_at(s: &Setup, chunks: &[ChunkKey], url: &str) -> Self {
        let client = s.client();
        let _g = s.rt.enter();
        let realtime = Realtime::start(&client, url).unwrap();
        realtime
            .follow(&WorldId::new(WORLD).unwrap(), chunks)
            .unwrap();
        Self {
            client,
            realtime,
            held: chunks
                .iter()
                .map(|k| (*k, (u64::MAX, Box::new([0; CHUNK_CUBES]))))
                .collect(),
            applied: 0,
            refetched: 0,
            gaps: 0,
        }
    }

    fn refetch(&mut self, s: &Setup, keys: &[ChunkKey]) {
        let ask: Vec<_> = keys
            .iter()
            .map(|k| (*k, Some(self.held[k].0).filter(|v| *v != u64::MAX)))
            .collect();
        let got = s.rt.block_on(self.client.fetch(WORLD, &ask)).unwrap();
        for f in got {
            let slot = self.held.get_mut(&f.key).unwrap();
            slot.0 = f.version;
            if let Some(data) = f.data {
                slot.1 = data;
            }
        }
        self.refetched += 1;
    }

    /// Drains and applies what arrived; true when something did.
    fn sync(&mut self, s: &Setup) -> bool {
        let mut events = Vec::new();
        self.realtime.drain(usize::MAX, |e| {
            events.push(e.clone());
            true
        });
        for e in &events {
            match e {
                RealtimeEvent::Subscribed | RealtimeEvent::Gap => {
                    if *e == RealtimeEvent::Gap {
                        self.gaps += 1;
                    }
                    let all: Vec<ChunkKey> = self.held.keys().copied().collect();
                    self.refetch(s, &all);
                }
                RealtimeEvent::Changed(c) => {
                    let Some((held, cubes)) = self.held.get_mut(&c.chunk) else {
                        panic!("a change of a chunk not followed: {c:?}");
                    };
                    if *held == c.version {
                        continue;
                    }
                    match &c.edits {
                        Some(edits) if *held == c.previous => {
                            for &(i, v) in edits {
                                cubes[usize::from(i)] = v;
                            }
                            *held = c.version;
                            self.applied += 1;
                        }
                        _ => self.refetch(s, &[c.chunk]),
                    }
                }
            }
        }
        !events.is_empty()
    }

    /// Syncs until the copy equals a fresh fetch (version and every cube of every chunk) and
    /// nothing arrived for `quiet`; fails if that does not happen within 20 s.
    fn settle_and_check(&mut self, s: &Setup, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Instant::now();
        loop {
            if self.sync(s) {
                last = Instant::now();
            }
            if last.elapsed() >= quiet {
                match self.differs_from_a_fresh_fetch(s) {
                    None => return,
                    Some(why) => assert!(Instant::now() < deadline, "{why}"),
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn differs_from_a_fresh_fetch(&self, s: &Setup) -> Option<String> {
        let keys: Vec<ChunkKey> = self.held.keys().copied().collect();
        let ask: Vec<_> = keys.iter().map(|k| (*k, None)).collect();
        let fresh = s.rt.block_on(s.client().fetch(WORLD, &ask)).unwrap();
        for f in fresh {
            let (v, cubes) = &self.held[&f.key];
            if *v != f.version {
                return Some(format!("chunk {}: version {v}, fresh {}", f.key, f.version));
            }
            if cubes[..] != f.data.unwrap()[..] {
                return Some(format!("chunk {}: cubes differ", f.key));
            }
        }
        None
    }

    fn wait_subscribed(&mut self, s: &Setup) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.refetched == 0 {
            assert!(
                Instant::now() < deadline,
                "not subscribed: {:?}",
                self.realtime.last_error()
            );
            self.sync(s);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// 27 chunks across a region border (x from 2 below the border: regions 0 and 1).
fn chunks() -> Vec<ChunkKey> {
    let border = cubewalk_protocol::realtime::REGION_CHUNKS;
    (0..27)
        .map(|i| ChunkKey::new(border - 2 + i % 3, (i / 3) % 3, i / 9))
        .collect()
}

fn random_puts(s: &Setup, keys: &[ChunkKey], players: usize, puts: usize) {
    let handles: Vec<_> = (0..players)
        .map(|p| {
            let client = s.client();
            let keys = keys.to_vec();
            s.rt.spawn(async move {
                for n in 0..puts {
                    let edits: Vec<ChunkEdit> = {
                        let mut rng = rand::rng();
                        // Mostly single cubes; now and then a big edit (no edits in the change).
                        let cubes = if rng.random_range(0..10) == 0 {
                            100
                        } else {
                            rng.random_range(1..4)
                        };
                        (0..cubes)
                            .map(|_| {
                                ChunkEdit::at_index(
                                    keys[rng.random_range(0..keys.len())],
                                    rng.random_range(0..4096),
                                    (p * 100_000 + n) as i32,
                                )
                            })
                            .collect()
                    };
                    client.put(WORLD, &edits).await.unwrap();
                    // Spread over many ticks, so most changes travel one by one.
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    for h in handles {
        s.rt.block_on(h).unwrap();
    }
}

#[test]
fn several_players_edit_at_random_and_the_followers_copy_equals_a_fresh_fetch() {
    let s = setup();
    let keys = chunks();
    let mut f = Copy::start(&s, &keys);
    f.wait_subscribed(&s);
    random_puts(&s, &keys, 4, 60);
    f.settle_and_check(&s, Duration::from_millis(700));
    assert!(f.applied > 20, "changes applied in place: {}", f.applied);
}

#[test]
fn a_lost_change_and_a_late_one_never_leave_a_follower_wrong() {
    let s = setup();
    let keys = chunks();
    let mut f = Copy::start(&s, &keys);
    f.wait_subscribed(&s);
    random_puts(&s, &keys, 1, 10);
    // The forged chunk must have been edited: on a chunk still at sequence 0, a change from
    // sequence 0 to 1 is not late but the genuine first one.
    let k = keys[0];
    s.rt.block_on(s.client().put(WORLD, &[ChunkEdit::at_index(k, 1, 7)]))
        .unwrap();
    f.settle_and_check(&s, Duration::from_millis(500));
    // Straight to the broker (bypassing the gate, as only the server can): a change whose
    // sequence jumps (the ones before it lost) and a late one (a sequence already held), both
    // carrying edits that would corrupt the copy if applied.
    let (held, _) = f.held[&k];
    let forged = |from_seq, seq, previous| Change {
        chunk: k,
        previous,
        version: 0xBAD,
        from_seq,
        seq,
        edits: Some(vec![(0, -999)]),
    };
    let publisher = {
        let _g = s.rt.enter();
        cubewalk_server::realtime::MqttPublisher::start(&BrokerAddress {
            host: "127.0.0.1".into(),
            port: s.mosquitto.port,
            login: None,
        })
    };
    use cubewalk_server::realtime::Publish;
    let topic = cubewalk_protocol::realtime::region_topic(
        &WorldId::new(WORLD).unwrap(),
        cubewalk_protocol::realtime::Region::of(k),
    );
    s.rt.block_on(async {
        // Late: sequence 1, long applied.
        publisher
            .publish(&topic, region_message(&[forged(0, 1, held)]))
            .await
            .unwrap();
        // A jump: from a sequence no one wrote yet (sequences are the store's clock in
        // microseconds; this one is far in the future).
        publisher
            .publish(
                &topic,
                region_message(&[forged(1 << 62, (1 << 62) + 1, held)]),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let refetched = f.refetched;
    f.settle_and_check(&s, Duration::from_millis(500));
    assert!(f.refetched > refetched, "the jump was refetched");
    assert!(
        f.held.values().all(|(_, c)| c[0] != -999),
        "a forged edit was applied"
    );
}

#[test]
fn a_broker_restart_ends_with_a_correct_copy() {
    let mut s = setup();
    let keys = chunks();
    let mut f = Copy::start(&s, &keys);
    f.wait_subscribed(&s);
    random_puts(&s, &keys, 2, 10);
    f.settle_and_check(&s, Duration::from_millis(500));
    s.mosquitto.kill();
    // Edited while the broker is down: nothing can reach the follower.
    random_puts(&s, &keys, 2, 10);
    s.mosquitto.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.gaps == 0 {
        assert!(
            Instant::now() < deadline,
            "no gap after the broker came back"
        );
        f.sync(&s);
        std::thread::sleep(Duration::from_millis(10));
    }
    random_puts(&s, &keys, 2, 10);
    f.settle_and_check(&s, Duration::from_millis(700));
}

#[test]
fn a_follower_that_stops_reading_while_thousands_of_changes_arrive_ends_correct() {
    let s = setup();
    // 729 chunks (a radius-4 neighbourhood), edited 256 at a time, tick after tick, while the
    // follower reads nothing: more changes than its queue holds.
    let keys: Vec<ChunkKey> = (0..729)
        .map(|i| ChunkKey::new(i % 9 - 4, (i / 9) % 9 - 4, i / 81 - 4))
        .collect();
    let mut f = Copy::start(&s, &keys);
    f.wait_subscribed(&s);
    let client = s.client();
    for round in 0..20 {
        let edits: Vec<ChunkEdit> = (0..256)
            .map(|i| {
                ChunkEdit::at_index(
                    keys[(round * 256 + i) % keys.len()],
                    round as u16,
                    round as i32 + 1,
                )
            })
            .collect();
        s.rt.block_on(client.put(WORLD, &edits)).unwrap();
        std::thread::sleep(Duration::from_millis(120));
    }
    f.settle_and_check(&s, Duration::from_millis(700));
    assert!(f.gaps >= 1, "the overflow was reported as a gap");
}

/// A TCP relay between a follower and the gateway that can be frozen: while frozen it moves no
/// byte either way, as for a game the OS suspended (a phone app sent to the background).
struct Freezer {
    port: u16,
    frozen: tokio::sync::watch::Sender<bool>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Freezer {
    fn start(s: &Setup) -> Self {
        let listener =
            s.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, target) = (accepted.clone(), s.gw.port);
        s.rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (client_rx, client_tx) = client.into_split();
                let (server_rx, server_tx) = server.into_split();
                tokio::spawn(relay(client_rx, server_tx, watch.clone()));
                tokio::spawn(relay(server_rx, client_tx, watch.clone()));
            }
        });
        Self {
            port,
            frozen,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/mqtt", self.port)
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Copies `from` to `to` while not frozen (a read already under way when the freeze came
/// holds its bytes until the thaw); passes the end on.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[test]
fn a_follower_whose_network_freezes_for_a_minute_is_dropped_and_ends_correct() {
    // Room for one player to write the 27 chunks ten times a second.
    let mut config = GatewayConfig::default();
    config.rules.limits.writes_per_sec = 1000;
    let s = setup_with(config);
    let keys = chunks();
    let freezer = Freezer::start(&s);
    let mut f = Copy::start_at(&s, &keys, &freezer.url());
    f.wait_subscribed(&s);
    random_puts(&s, &keys, 2, 10);
    f.settle_and_check(&s, Duration::from_millis(500));
    assert_eq!(freezer.connections(), 1);

    // A minute frozen while the world changes: the 27 chunks, 64 cubes each (the most a
    // change carries), about ten times a second: some 250 KB a second, so what the follower
    // does not read fills the buffers in front of the gate (a few MB on loopback) and the gate
    // gives up on it once its writes have been stuck for 30 s (the default stall timeout).
    // The SDK itself would wait 90 s of silence before giving up, so the end is the gate's.
    // (Lighter traffic fits in those buffers: the connection then lives, and the follower
    // reads a minute of changes on waking.)
    freezer.freeze(true);
    let client = s.client();
    let started = Instant::now();
    let mut value = 1_000_000_000;
    while started.elapsed() < Duration::from_secs(60) {
        value += 1;
        let edits: Vec<ChunkEdit> = keys
            .iter()
            .flat_map(|k| (0..64u16).map(move |i| ChunkEdit::at_index(*k, i * 61, value)))
            .collect();
        s.rt.block_on(client.put(WORLD, &edits)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    freezer.freeze(false);
    // Thawed: it finds its connection ended, connects again, reconciles.
    f.settle_and_check(&s, Duration::from_millis(700));
    assert!(
        freezer.connections() >= 2,
        "the frozen connection was never dropped"
    );
    assert_eq!(f.held[&keys[0]].1[0], value, "the last edit is in the copy");
}
