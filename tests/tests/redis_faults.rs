//! Redis failing under the gateway: requests answer 503 with a JSON error (never 500, never a
//! hang past the timeout), the SDK reports a clear status after its retry budget, the same
//! gateway serves again once Redis is back, and with `appendfsync always` a Redis crash loses
//! no acknowledged edit.

use cubewalk::ffi::*;
use cubewalk::Status;
use cubewalk_e2e::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn init_with_small_budget(endpoint: &str) {
    let s = init_with(endpoint, |o| {
        o.timeout_ms = 15_000;
        o.max_retries = 2;
        o.retry_base_delay_ms = 10;
        o.retry_max_delay_ms = 50;
    });
    assert_eq!(s, Status::Ok);
}

#[test]
fn redis_killed_mid_load_gives_503_then_recovers_without_restarting_the_gateway() {
    let _g = serial();
    let mut stack = Stack::redis();
    let endpoint = stack.endpoint();
    init_with_small_budget(&endpoint);

    // Load from 4 threads while Redis dies under it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut statuses = std::collections::HashMap::<i32, u32>::new();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let (s, _) = put(
                        "faults",
                        &[CwEdit {
                            chunk: key(t, 0, 0),
                            index: n % 4096,
                            value: n as i32,
                        }],
                    );
                    if s != Status::Ok {
                        assert!(!last_error().is_empty());
                    }
                    *statuses.entry(s as i32).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    stack.redis_server().kill();

    // Straight HTTP: 503 with a JSON error body, well within API Gateway's 29 s.
    let http = reqwest::blocking::Client::new();
    let start = Instant::now();
    let resp = http
        .get(format!("{}?chunks=0,0,0", endpoint))
        .header("token", TOKEN)
        .send()
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(waited < Duration::from_secs(12), "503 took {waited:?}");

    // Through the SDK: a clear status after its retries.
    let mut versions = [CW_NO_VERSION];
    let mut buffers = vec![Box::new([0i32; 4096])];
    let mut changed = [0u8];
    assert_eq!(
        fetch(
            "faults",
            &[key(0, 0, 0)],
            &mut versions,
            &mut buffers,
            &mut changed
        ),
        Status::ServerError
    );
    let msg = last_error();
    assert!(
        msg.contains("503") && msg.contains("store_unavailable"),
        "{msg}"
    );

    std::thread::sleep(Duration::from_millis(300));
    stack.redis_server().restart();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = std::collections::HashMap::<i32, u32>::new();
    for w in workers {
        for (s, n) in w.join().unwrap() {
            *all.entry(s).or_default() += n;
        }
    }
    // Only successes and server errors (503 after retries): never a crash, a 500 or a hang.
    for s in all.keys() {
        assert!(
            [Status::Ok as i32, Status::ServerError as i32].contains(s),
            "unexpected status {s}: {all:?}"
        );
    }
    println!("redis-kill: statuses during the outage {all:?}");

    // The same gateway process serves again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = put(
            "faults",
            &[CwEdit {
                chunk: key(9, 0, 0),
                index: 1,
                value: 1,
            }],
        );
        if s == Status::Ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway never recovered: {}",
            last_error()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cw_shutdown(), Status::Ok);
}

#[test]
fn with_appendfsync_always_a_redis_crash_loses_no_acknowledged_edit() {
    let _g = serial();
    let mut stack = Stack::redis_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ]);
    init_with_small_budget(&stack.endpoint());
    let mut acked = Vec::new();
    let mut last_answer = [0u64; 5];
    for n in 0..300u32 {
        let k = key((n % 5) as i32, 0, 0);
        let (s, v) = put(
            "durable",
            &[CwEdit {
                chunk: k,
                index: n,
                value: n as i32 + 1,
            }],
        );
        assert_eq!(s, Status::Ok, "{}", last_error());
        acked.push(n);
        last_answer[(n % 5) as usize] = v[0].version;
    }
    stack.redis_server().kill(); // SIGKILL: no shutdown save, only the AOF survives
    stack.redis_server().restart();
    let keys: Vec<_> = (0..5).map(|x| key(x, 0, 0)).collect();
    let mut versions = [CW_NO_VERSION; 5];
    let mut buffers = vec![Box::new([0i32; 4096]); 5];
    let mut changed = [0u8; 5];
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch("durable", &keys, &mut versions, &mut buffers, &mut changed) != Status::Ok {
        assert!(Instant::now() < deadline, "no recovery: {}", last_error());
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in &acked {
        let chunk = (n % 5) as usize;
        assert_eq!(
            buffers[chunk][*n as usize],
            *n as i32 + 1,
            "edit {n} lost across the crash"
        );
    }
    // Every chunk is back at exactly the content its last put answered.
    assert_eq!(versions, last_answer);
    println!(
        "redis-crash: {} acknowledged edits, 0 lost after SIGKILL and restart",
        acked.len()
    );
    assert_eq!(cw_shutdown(), Status::Ok);
}
