//! The smoke test a deployer runs against a stack (`cargo run -p cubewalk --example smoke`),
//! run here against the local gateway so it is known to work before anyone points it at AWS.

use cubewalk_e2e::{Stack, TOKEN};
use std::process::Command;

#[test]
fn the_smoke_test_passes_against_the_local_gateway() {
    let stack = Stack::redis();
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "--locked",
            "-p",
            "cubewalk",
            "--example",
            "smoke",
            "--",
        ])
        .args([
            stack.endpoint(),
            stack.realtime_endpoint(),
            TOKEN.to_string(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "wrong token: refused (401)",
        "its change reached the follower",
        "realtime with a wrong token: refused at connect",
        "every check passed",
    ] {
        assert!(stdout.contains(line), "missing '{line}':\n{stdout}");
    }
}
