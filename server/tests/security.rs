//! Security properties of the running server binary: it listens on loopback unless told
//! otherwise, and no token (right or wrong) ever reaches its logs, even at trace level.

use cubewalk_server::gateway::DEFAULT_BIND;
use std::net::SocketAddr;

#[test]
fn default_bind_address_is_loopback() {
    let addr: SocketAddr = DEFAULT_BIND.parse().unwrap();
    assert!(addr.ip().is_loopback());
}

#[test]
fn no_token_appears_in_any_log_line() {
    let accepted = "accepted-secret-token-1";
    let wrong = ["wrong-secret-token-2", "short", "with space", ""];
    let server = cubewalk_testkit::ServerProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_cubewalk-server")),
        &["--tokens", accepted, "--auth-cache-ttl", "0"],
        &[("RUST_LOG", "trace")],
    );
    let url = server.url.clone();
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
    let logs = server.stop();
    assert!(
        logs.contains("request refused") && logs.contains("blocks"),
        "expected request logs, got: {logs}"
    );
    for token in [accepted, "wrong-secret-token-2"] {
        assert!(!logs.contains(token), "token {token} found in logs");
    }
}
