//! One publisher run's ceiling (section 7 reports it; `cubewalk-bench publisher` measures it
//! alone): how many messages a second one run of the deployed publisher (one feed group)
//! posts, and the CPU each costs, through the real `IotDataPublisher` (SigV4-signed HTTP
//! posts) to a stand-in for IoT Core's data endpoint that answers every post after
//! [`ANSWER_DELAY`], as IoT Core's HTTPS publish does in about that time.

use crate::env::Env;
use cubewalk_protocol::realtime::{Change, REGION_CHUNKS};
use cubewalk_protocol::{ChunkKey, WorldId};
use cubewalk_server::realtime::{
    run_feed_publisher, IotDataConfig, IotDataPublisher, Publish, PUBLISH_CONCURRENCY,
};
use cubewalk_server::sigv4::Credentials;
use cubewalk_server::store::{FeedGroup, RedisStore, RedisStoreConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the stand-in takes to answer a publish.
pub(crate) const ANSWER_DELAY: Duration = Duration::from_millis(20);

/// What one run did with a backlog.
pub(crate) struct Ceiling {
    /// Messages in the backlog (one per region: nothing to coalesce).
    pub(crate) messages: u64,
    /// Messages posted a second, from the run's first tick to its last answer.
    pub(crate) per_sec: f64,
    /// The run's own CPU time per message (its thread: Redis reads, coalescing, signing,
    /// HTTP), in microseconds.
    pub(crate) cpu_us: f64,
    /// Posts that failed (0 unless the machine was too loaded for the 2 s publish timeout).
    pub(crate) failed: u64,
}

/// Counts answered and failed posts, and says when the last of `expected` came.
struct Counting {
    inner: IotDataPublisher,
    done: AtomicU64,
    failed: AtomicU64,
    expected: u64,
    finished: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Publish for Counting {
    async fn publish(&self, topic: &str, payload: String) -> Result<(), String> {
        let result = self.inner.publish(topic, payload).await;
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.finished.notify_one();
        }
        result
    }
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The stand-in for IoT Core's data endpoint on `rt`: every request answered `200 {}` after
/// [`ANSWER_DELAY`], the body read first (as IoT Core does). Answers its URL.
fn slow_endpoint(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        tokio::time::sleep(ANSWER_DELAY).await;
        drop(body);
        "{}"
    });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Fills the feed with `messages` changes, one in each of as many regions, then lets one run
/// of the whole feed (one group: the most one run can post is the same whatever its share)
/// post them, on a thread of its own (a current-thread runtime, so its CPU time is the run's
/// alone; the stand-in and Redis run elsewhere).
pub(crate) fn ceiling(env: &Env, messages: u64) -> Ceiling {
    let endpoint = slow_endpoint(&env.rt);
    let url = env.redis().url();
    let world = WorldId::new("ceiling").unwrap();
    // Where the feed stands now: a short run records each shard's end, so what follows is
    // the measured run's backlog and nothing before it.
    env.rt.block_on(async {
        let store = Arc::new(
            RedisStore::connect(&RedisStoreConfig::new(url.clone()))
                .await
                .unwrap(),
        );
        let noop: Arc<dyn Publish> = Arc::new(Discard);
        let until = tokio::time::Instant::now() + Duration::from_millis(150);
        run_feed_publisher(&store, noop, "ceiling-mark", FeedGroup::ALL, until, None)
            .await
            .unwrap();
        let changes: Vec<Change> = (0..messages as i32)
            .map(|i| Change {
                chunk: ChunkKey::new(i * REGION_CHUNKS, 0, 0),
                previous: 1,
                version: 2,
                from_seq: 1,
                seq: 2,
                edits: Some(vec![(5, 7)]),
            })
            .collect();
        for batch in changes.chunks(1000) {
            store.append_changes(&world, batch).await.unwrap();
        }
    });
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = RedisStore::connect(&RedisStoreConfig::new(url))
                .await
                .unwrap();
            let out = Arc::new(Counting {
                inner: IotDataPublisher::new(&IotDataConfig {
                    endpoint,
                    region: "us-east-1".into(),
                    credentials: Credentials::new("AKIDBENCH", "bench-secret", None, None, "bench"),
                    timeout: Duration::from_secs(2),
                }),
                done: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                expected: messages,
                finished: tokio::sync::Notify::new(),
            });
            let (cpu0, t0) = (thread_cpu(), Instant::now());
            // Ends once every message is answered (or after a minute, whatever happened).
            let until = tokio::time::Instant::now() + Duration::from_secs(60);
            let publisher: Arc<dyn Publish> = out.clone();
            let run = run_feed_publisher(&store, publisher, "ceiling", FeedGroup::ALL, until, None);
            tokio::select! {
                r = run => { r.unwrap(); }
                () = out.finished.notified() => {}
            }
            let (cpu, elapsed) = (thread_cpu() - cpu0, t0.elapsed());
            // The run was stopped, not ended: its leases are given back by hand.
            let all: Vec<usize> = FeedGroup::ALL.shards().collect();
            store.release_feed_leases("ceiling", &all).await.unwrap();
            let done = out.done.load(Ordering::Relaxed);
            Ceiling {
                messages: done,
                per_sec: done as f64 / elapsed.as_secs_f64(),
                cpu_us: cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
                failed: out.failed.load(Ordering::Relaxed),
            }
        })
    })
    .join()
    .unwrap()
}

/// Publishes nowhere.
struct Discard;

#[async_trait::async_trait]
impl Publish for Discard {
    async fn publish(&self, _topic: &str, _payload: String) -> Result<(), String> {
        Ok(())
    }
}

/// Backlog posted: quick runs post fewer.
pub(crate) fn backlog(quick: bool) -> u64 {
    if quick {
        8_000
    } else {
        24_000
    }
}

/// The publisher's memory size in the template, in MB.
pub(crate) fn lambda_mb() -> f64 {
    super::cost::function_memory_mb("PublisherFunction")
}

/// Lambda's CPU share at the publisher's memory size: one vCPU at 1,769 MB, CPU in proportion
/// to memory below it.
pub(crate) fn lambda_vcpu() -> f64 {
    (lambda_mb() / super::cost::FULL_VCPU_MB).min(1.0)
}

impl Ceiling {
    /// Messages a second one run could post on Lambda: the measured rate, or less where the
    /// function's CPU share would hold it (if a Graviton core were as fast as this machine's).
    pub(crate) fn on_lambda(&self) -> f64 {
        self.per_sec
            .min(lambda_vcpu() * 1e6 / self.cpu_us.max(f64::MIN_POSITIVE))
    }
}

/// The ceiling as a paragraph of the report.
pub(crate) fn describe(c: &Ceiling) -> String {
    let cores = c.per_sec * c.cpu_us / 1e6;
    format!(
        "**One publisher run's ceiling.** One run of the deployed publisher's loop (`run_feed_publisher`, one group: the whole feed) posting a backlog of {} changes, each in its own region, through the real `IotDataPublisher` (SigV4-signed; plain HTTP on loopback, so no TLS) to a stand-in for IoT Core's data endpoint that answers every post after {} ms: **{:.0} messages a second** ({} failed; {PUBLISH_CONCURRENCY} posts in flight, so {:.1} ms each from start to answer), {:.0} µs of the run's own CPU per message (its thread: Redis reads, coalescing, signing, HTTP), {:.2} of one of this machine's cores at that rate. The publisher's function has {:.0} MB in the template, so about {:.2} vCPU (1,769 MB = 1 vCPU): its CPU alone would allow about {:.0} messages a second, if a Graviton core were as fast as this machine's (not measured), so a run on Lambda posts about **{:.0} a second**, the figure the rest of this section uses.\n",
        c.messages,
        ANSWER_DELAY.as_millis(),
        c.per_sec,
        c.failed,
        PUBLISH_CONCURRENCY as f64 * 1000.0 / c.per_sec.max(f64::MIN_POSITIVE),
        c.cpu_us,
        cores,
        lambda_mb(),
        lambda_vcpu(),
        lambda_vcpu() * 1e6 / c.cpu_us.max(f64::MIN_POSITIVE),
        c.on_lambda(),
    )
}
