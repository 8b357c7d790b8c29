//! Section 5: bytes per chunk at each stage, Redis memory, and artifact sizes.

use crate::env::*;
use crate::report::*;
use cubewalk::ChunkKey;
use cubewalk_e2e::TOKEN;
use cubewalk_protocol::codec::{blob_from_base64, fixtures, ChunkData};
use cubewalk_protocol::{FetchResponse, WorldId};
use cubewalk_server::store::redis_chunk_key;
use std::fmt::Write as _;
use std::path::Path;

pub(crate) fn sizes(env: &Env) -> Section {
    let mut b = String::new();
    let mut goals = Vec::new();
    let world = "sizes";
    let chunks: [(&str, Box<ChunkData>); 4] = [
        ("empty", fixtures::empty()),
        ("typical terrain", fixtures::terrain()),
        ("solid", fixtures::solid()),
        ("random", fixtures::random(42)),
    ];
    writeln!(b, "| fixture | raw | stored blob | base64 `data` | whole GET response body | Redis `MEMORY USAGE` | wire / raw |").unwrap();
    writeln!(b, "|---|---|---|---|---|---|---|").unwrap();
    for (i, (name, chunk)) in chunks.iter().enumerate() {
        let key = ChunkKey::new(i as i32, 0, 0);
        env.seed(world, &[(key, chunk)]);
        let body = env
            .http
            .get(format!("{}?world={world}&chunks={key}", env.url))
            .header("token", TOKEN)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let parsed: FetchResponse = serde_json::from_str(&body).unwrap();
        let data = parsed.chunks[0].data.clone().unwrap();
        let blob = blob_from_base64(&data).unwrap();
        let usage = env
            .redis()
            .command(&[
                "MEMORY",
                "USAGE",
                &redis_chunk_key(&WorldId::new(world).unwrap(), key),
            ])
            .unwrap();
        let usage = usage
            .strip_prefix(':')
            .map(|u| format!("{u} B"))
            .unwrap_or_else(|| "0 B (no key stored)".into());
        writeln!(
            b,
            "| {name} | 16384 B | {} B | {} B | {} B | {usage} | {:.3} |",
            blob.len(),
            data.len(),
            body.len(),
            body.len() as f64 / 16384.0
        )
        .unwrap();
    }
    writeln!(b, "\nLambda artifacts (`cargo lambda build --release --arm64 --output-format zip -p cubewalk-lambda`):\n").unwrap();
    writeln!(b, "| function | bootstrap.zip |").unwrap();
    writeln!(b, "|---|---|").unwrap();
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    for f in ["authorizer", "blocks", "realtime", "login"] {
        let zip = Path::new(&target).join(format!("lambda/{f}/bootstrap.zip"));
        if !zip.exists() {
            let _ = std::process::Command::new("cargo")
                .args([
                    "lambda",
                    "build",
                    "--release",
                    "--arm64",
                    "--output-format",
                    "zip",
                    "-p",
                    "cubewalk-lambda",
                ])
                .status();
        }
        match std::fs::metadata(&zip) {
            Ok(m) => {
                writeln!(
                    b,
                    "| {f} | {} B ({:.2} MB) |",
                    m.len(),
                    m.len() as f64 / 1e6
                )
                .unwrap();
                goals.push(goal(
                    &format!("{f} Lambda zip (MB)"),
                    "≤ 2",
                    m.len() as f64 / 1e6,
                    m.len() <= 2_000_000,
                    " MB",
                ));
            }
            Err(_) => writeln!(b, "| {f} | not built (cargo-lambda missing) |").unwrap(),
        }
    }
    writeln!(b, "\nNative plugins (`scripts/build-plugins.sh`: release profile, fat LTO, one codegen unit, stripped):\n").unwrap();
    writeln!(b, "| plugin | bytes |").unwrap();
    writeln!(b, "|---|---|").unwrap();
    let plugins = Path::new(&target).join("plugins/Runtime/Plugins");
    let mut found = 0;
    for (file, what) in [
        ("x86_64/cubewalk.dll", "Windows x64"),
        ("x86_64/libcubewalk.so", "Linux x64"),
        ("arm64/libcubewalk.so", "Linux arm64"),
        (
            "macOS/libcubewalk.dylib",
            "macOS universal (x86_64 + arm64)",
        ),
    ] {
        if let Ok(m) = std::fs::metadata(plugins.join(file)) {
            writeln!(b, "| {what} `{file}` | {} |", m.len()).unwrap();
            found += 1;
        }
    }
    if found == 0 {
        writeln!(b, "| (not built: run scripts/build-plugins.sh first) | |").unwrap();
    }
    Section {
        title: "5. Size and cost per chunk",
        body: b,
        goals,
    }
}
