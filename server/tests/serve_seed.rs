//! The local gateway's starting terrain, through the real binary and HTTP: by default the spawn
//! area of world `default` has ground (solid below, terrain on top) and nothing above or beyond
//! it; `--seed-radius 0` starts with an empty world; other worlds are never seeded.

use base64::Engine;
use cubewalk_protocol::codec::{decode_chunk, fixtures};
use cubewalk_protocol::FetchResponse;
use cubewalk_testkit::ServerProcess;

const TOKEN: &str = "seed-test-token";

fn fetch(url: &str, world: &str, chunks: &str) -> Vec<Box<[i32; 4096]>> {
    let body = reqwest::blocking::Client::new()
        .get(format!("{url}?world={world}&chunks={chunks}"))
        .header("token", TOKEN)
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .unwrap();
    let answer: FetchResponse = serde_json::from_str(&body).unwrap();
    answer
        .chunks
        .iter()
        .map(|c| {
            let blob = base64::engine::general_purpose::STANDARD
                .decode(c.data.as_deref().unwrap())
                .unwrap();
            decode_chunk(&blob).unwrap()
        })
        .collect()
}

fn start(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--tokens", TOKEN];
    all.extend_from_slice(args);
    ServerProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_cubewalk-server")),
        &all,
        &[],
    )
}

#[test]
fn a_fresh_gateway_has_ground_around_the_spawn() {
    let server = start(&[]);
    let got = fetch(
        &server.url,
        "default",
        "0,0,0;-4,0,4;0,-1,0;4,-1,-4;0,1,0;5,0,0;0,-2,0",
    );
    assert_eq!(got[0], fixtures::terrain(), "terrain at the spawn");
    assert_eq!(got[1], fixtures::terrain(), "terrain at the area's corner");
    assert_eq!(got[2], fixtures::solid(), "stone under the spawn");
    assert_eq!(got[3], fixtures::solid(), "stone under the corner");
    for (i, what) in [
        (4, "above"),
        (5, "beyond the radius"),
        (6, "below the stone"),
    ] {
        assert_eq!(got[i], fixtures::empty(), "air {what}");
    }
    let other = fetch(&server.url, "another", "0,0,0");
    assert_eq!(other[0], fixtures::empty(), "another world starts empty");
    let out = server.stop();
    assert!(out.contains("162 chunks seeded"), "{out}");
}

#[test]
fn seeding_is_switchable() {
    let none = start(&["--seed-radius", "0"]);
    assert_eq!(fetch(&none.url, "default", "0,0,0")[0], fixtures::empty());
    drop(none);
    let small = start(&["--seed-radius", "1"]);
    let got = fetch(&small.url, "default", "1,0,1;2,0,0");
    assert_eq!(got[0], fixtures::terrain());
    assert_eq!(got[1], fixtures::empty());
}
