//! Load: the local gateway (the real `cubewalk-server serve` process) holds 256 concurrent
//! keep-alive connections for a bounded time with zero errors, and its memory stays bounded.
//! Figures are printed; `scripts/soak.sh` runs the same with wrk for longer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 256;
const RUN_FOR: Duration = Duration::from_secs(4);
const TOKEN: &str = "load-token-123456";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[test]
fn gateway_holds_256_keep_alive_connections_without_errors() {
    let bin = cubewalk_e2e::built_artifacts().join("cubewalk-server");
    let server =
        cubewalk_testkit::ServerProcess::start(&bin, &["--tokens", TOKEN], &[("RUST_LOG", "warn")]);
    let url = server.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Seed one terrain-like chunk so every answer carries data.
    rt.block_on(async {
        let body = serde_json::json!({"edits": (0..4096).map(|i| serde_json::json!({"chunk": [0, 0, 0], "index": i, "value": i % 7})).collect::<Vec<_>>()});
        let r = reqwest::Client::new().put(&url).header("token", TOKEN).json(&body).send().await.unwrap();
        assert!(r.status().is_success());
    });
    let rss_before = rss_kib(server.pid());

    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop_at = started + RUN_FOR;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let (ok, errors, url) = (ok.clone(), errors.clone(), format!("{url}?chunks=0,0,0"));
            tasks.push(tokio::spawn(async move {
                // One client per task: one kept-alive connection each.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                while Instant::now() < stop_at {
                    let served = match client.get(&url).header("token", TOKEN).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if served {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let rss_after = rss_kib(server.pid());
    drop(server);
    let (ok, errors) = (ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    println!(
        "load: {CONNECTIONS} keep-alive connections for {:.1} s: {ok} requests ({:.0}/s), {errors} errors; gateway RSS {} MiB -> {} MiB",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert_eq!(errors, 0);
    assert!(ok > CONNECTIONS as u64, "every connection served requests");
    assert!(
        rss_after < rss_before + 256 * 1024,
        "gateway memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}
