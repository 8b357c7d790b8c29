//! Security properties of the running server binary: it listens on loopback unless told
//! otherwise, and no token (right or wrong) ever reaches its logs, even at trace level.

use cubewalk_server::gateway::DEFAULT_BIND;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn default_bind_address_is_loopback() {
    let addr: SocketAddr = DEFAULT_BIND.parse().unwrap();
    assert!(addr.ip().is_loopback());
}

#[test]
fn no_token_appears_in_any_log_line() {
    let accepted = "accepted-secret-token-1";
    let wrong = ["wrong-secret-token-2", "short", "with space", ""];
    let dir = std::env::temp_dir().join(format!("cubewalk-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::fs::File::create(dir.join("out")).unwrap();
    let err = std::fs::File::create(dir.join("err")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cubewalk-server"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--tokens",
            accepted,
            "--auth-cache-ttl",
            "0",
        ])
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let printed = std::fs::read_to_string(dir.join("out")).unwrap();
        if let Some(u) = printed
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
        {
            break u.to_string();
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::blocking::Client::new();
    for token in std::iter::once(accepted).chain(wrong) {
        let _ = http
            .get(format!("{url}?chunks=0,0,0"))
            .header("token", token)
            .send()
            .unwrap();
        let _ = http
            .put(&url)
            .header("token", token)
            .body(r#"{"edits":[{"chunk":[0,0,0],"index":1,"value":1}]}"#)
            .send()
            .unwrap();
        let _ = http
            .put(&url)
            .header("token", token)
            .body("{broken")
            .send()
            .unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    std::fs::File::open(dir.join("out"))
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    std::fs::File::open(dir.join("err"))
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        logs.contains("request refused") && logs.contains("blocks"),
        "expected request logs, got: {logs}"
    );
    for token in [accepted, "wrong-secret-token-2"] {
        assert!(!logs.contains(token), "token {token} found in logs");
    }
}
