//! Runs the request/response examples of `protocol/README.md` against the local gateway, in
//! order, and checks each answer (status and JSON) is exactly what the page shows.

use cubewalk_server::gateway::{GatewayConfig, TokenAuthorizer};
use cubewalk_server::identity::TokenSet;
use cubewalk_server::store::MemoryStore;
use cubewalk_testkit::TestGateway;
use serde_json::Value;
use std::sync::Arc;

/// Each `<!-- request: NAME -->` or `<!-- response: NAME STATUS -->` marker with the fenced
/// block after it, in page order.
fn examples(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .strip_prefix("<!-- ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().expect("a fenced block after the marker");
        assert!(
            fence.starts_with("```"),
            "marker '{marker}' must be followed by a code block"
        );
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push((marker.to_owned(), block.join("\n")));
    }
    out
}

#[test]
fn documented_examples_match_the_code() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/README.md"
    ))
    .unwrap();
    let token = "contract-token";
    let gw = TestGateway::start(
        GatewayConfig::default(),
        Arc::new(TokenAuthorizer(TokenSet::new([token]).into())),
        Arc::new(MemoryStore::new()),
    );
    let client = reqwest::blocking::Client::new();
    let mut pending: Option<(String, u16, String)> = None;
    let mut checked = 0;
    for (marker, block) in examples(&page) {
        if let Some(name) = marker.strip_prefix("request: ") {
            let (head, body) = block.split_once("\n\n").unwrap_or((&block, ""));
            let (method, path) = head.trim().split_once(' ').unwrap();
            let mut req = client
                .request(method.parse().unwrap(), format!("{}{path}", gw.base))
                .header("token", token);
            if !body.is_empty() {
                req = req.body(body.to_owned());
            }
            let resp = req.send().unwrap();
            let status = resp.status().as_u16();
            pending = Some((name.to_owned(), status, resp.text().unwrap()));
        } else if let Some(rest) = marker.strip_prefix("response: ") {
            let (name, status) = rest.split_once(' ').unwrap();
            let (req_name, got_status, got_body) =
                pending.take().expect("a request before each response");
            assert_eq!(req_name, name, "response example without its request");
            assert_eq!(
                got_status,
                status.parse::<u16>().unwrap(),
                "status of example '{name}'"
            );
            let want: Value = serde_json::from_str(&block).unwrap();
            let mut got: Value = serde_json::from_str(&got_body).unwrap();
            // Each request has its own id: the example shows where it goes, not its value.
            if let (Some(id), Some(shown)) = (
                got.pointer_mut("/error/request_id"),
                want.pointer("/error/request_id"),
            ) {
                assert!(
                    id.as_str().is_some_and(|s| s.len() == 32),
                    "request id {id}"
                );
                *id = shown.clone();
            }
            assert_eq!(got, want, "body of example '{name}'");
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "every documented example was checked");
}
