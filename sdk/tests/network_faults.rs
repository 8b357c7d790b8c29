//! Network faults seen by the SDK, from raw TCP servers that misbehave on purpose: refused
//! connections, a reset in the middle of the body, a server that accepts and never answers, a
//! body trickled byte by byte, and a 200 with a huge body. Each ends in the right status within
//! the configured timeout, memory stays bounded, and the client keeps working afterwards.

use cubewalk::retry::RetryPolicy;
use cubewalk::{ChunkKey, Client, ClientOptions, Status};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(800);

fn options() -> ClientOptions {
    ClientOptions {
        timeout: TIMEOUT,
        connect_timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..ClientOptions::default()
    }
}

/// A raw server: for each connection, reads the request head, then runs `behave`.
fn raw_server(behave: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                behave(conn);
            });
        }
    });
    format!("http://{addr}/prod/cubewalkblocks")
}

fn good_body() -> String {
    r#"{"world":"default","chunks":[{"key":[0,0,0],"version":3,"data":""}]}"#.to_string()
}

fn good_server() -> String {
    raw_server(|mut c| {
        let body = good_body();
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
    })
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// Runs one fetch against `endpoint`; returns the status and how long it took.
async fn fetch_status(endpoint: &str) -> (Result<(), Status>, Duration) {
    let client = Client::new(endpoint, "fault-token-1", options()).unwrap();
    let start = Instant::now();
    let r = client
        .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
        .await;
    (r.map(|_| ()).map_err(|e| e.status()), start.elapsed())
}

/// The upper bound a faulty call may take: the configured timeout plus scheduling slack.
fn bound() -> Duration {
    TIMEOUT + Duration::from_secs(2)
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_network() {
    let port = cubewalk_testkit::free_port();
    let (r, took) = fetch_status(&format!("http://127.0.0.1:{port}/prod/cubewalkblocks")).await;
    assert_eq!(r, Err(Status::Network));
    assert!(took < bound(), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_in_the_middle_of_the_body_is_network() {
    let endpoint = raw_server(|mut c| {
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"world\":\"def");
        let _ = c.flush();
        // SO_LINGER 0 turns the close into a TCP reset.
        let sock = socket2::SockRef::from(&c);
        let _ = sock.set_linger(Some(Duration::ZERO));
        drop(c);
    });
    let (r, took) = fetch_status(&endpoint).await;
    assert_eq!(r, Err(Status::Network));
    assert!(took < bound(), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_times_out() {
    let endpoint = raw_server(|c| {
        std::thread::sleep(Duration::from_secs(30));
        drop(c);
    });
    let (r, took) = fetch_status(&endpoint).await;
    assert_eq!(r, Err(Status::Timeout));
    assert!(took < bound(), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_trickled_byte_by_byte_times_out() {
    let endpoint = raw_server(|mut c| {
        let body = good_body().repeat(200);
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        for b in body.bytes() {
            if c.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (r, took) = fetch_status(&endpoint).await;
    assert_eq!(r, Err(Status::Timeout));
    assert!(took < bound(), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_body_is_refused_with_bounded_memory() {
    // Declared huge: refused from the header alone.
    let declared = raw_server(|mut c| {
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4000000000\r\n\r\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    // Chunked and endless: refused once it passes the cap, not read to the end.
    let endless = raw_server(|mut c| {
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
        for _ in 0..(1 << 16) {
            if c.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let before = rss_kib();
    for endpoint in [declared, endless] {
        let client = Client::new(
            &endpoint,
            "fault-token-1",
            ClientOptions {
                timeout: Duration::from_secs(20),
                ..options()
            },
        )
        .unwrap();
        let err = client
            .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
            .await
            .unwrap_err();
        assert_eq!(err.status(), Status::Protocol, "{err}");
        assert!(err.to_string().contains("larger than"), "{err}");
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "memory grew by {grown_mib} MiB reading huge bodies"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_keeps_working_after_every_fault() {
    let client = Client::new(&good_server(), "fault-token-1", options()).unwrap();
    let faulty = raw_server(drop);
    let broken = Client::new(&faulty, "fault-token-1", options()).unwrap();
    for _ in 0..3 {
        assert!(broken
            .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
            .await
            .is_err());
        let ok = client
            .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
            .await
            .unwrap();
        assert_eq!(ok[0].version, 3);
    }
}
