//! Runs the request/response examples of `protocol/README.md` against the local gateway, in
//! order, and checks each answer (status and JSON) is exactly what the page shows, except
//! the values that differ on every run: a nonzero version (drawn at random per write) or
//! write sequence (`n`: the store's clock) stands for whatever the server answered, the same
//! value every time the page repeats it, and later requests send the real one.

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
    // The page's version and sequence numbers, and what the server answered for each.
    let mut seen: std::collections::HashMap<u64, u64> = Default::default();
    for (marker, block) in examples(&page) {
        if let Some(name) = marker.strip_prefix("request: ") {
            let mut block = block.clone();
            for (shown, real) in &seen {
                block = block.replace(&shown.to_string(), &real.to_string());
            }
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
            match_run_values(&mut got, &want, &mut seen);
            assert_eq!(got, want, "body of example '{name}'");
            checked += 1;
        }
    }
    assert_eq!(checked, 6, "every documented example was checked");
}

/// Where `want` shows a nonzero `version` or `n`, puts the page's number into `got` if the
/// server answered a nonzero number there that is consistent with earlier answers (the same
/// page number always stands for the same answered number, and the other way round).
fn match_run_values(got: &mut Value, want: &Value, seen: &mut std::collections::HashMap<u64, u64>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let Some(gv) = g.get_mut(k) else { continue };
                let shown = wv.as_u64().filter(|v| *v != 0);
                let real = gv.as_u64().filter(|v| *v != 0);
                if let (true, Some(shown), Some(real)) = (k == "version" || k == "n", shown, real) {
                    let known = *seen.entry(shown).or_insert(real);
                    assert_eq!(known, real, "page value {shown} stands for two answers");
                    assert!(
                        seen.iter().all(|(s, r)| *r != real || *s == shown),
                        "answer {real} shown as two page values"
                    );
                    *gv = wv.clone();
                } else {
                    match_run_values(gv, wv, seen);
                }
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            for (gv, wv) in g.iter_mut().zip(w) {
                match_run_values(gv, wv, seen);
            }
        }
        _ => {}
    }
}
