//! Section 2: the C# wrapper under Mono against a hand-written HttpClient client.

use crate::env::*;
use crate::report::*;
use std::path::Path;

/// One row of the Mono benchmark's data: chunks per fetch, client, fetches/s, managed bytes
/// and process CPU time (µs) per fetch.
struct Row {
    chunks: u32,
    client: String,
    rate: f64,
    bytes: f64,
    cpu_us: f64,
}

fn parse_rows(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let [chunks, client, rate, bytes, cpu] = cells[..] else {
                return None;
            };
            Some(Row {
                chunks: chunks.parse().ok()?,
                client: client.to_owned(),
                rate: rate.parse().ok()?,
                bytes: bytes.parse().ok()?,
                cpu_us: cpu.parse().ok()?,
            })
        })
        .collect()
}

fn label(client: &str) -> &str {
    match client {
        "sdk-blocking" => "CubeWalkClient.FetchBlocks",
        "sdk-polled" => "CubeWalkClient.BeginFetch + Update (polled)",
        "sdk-managed" => "CubeWalkClient, managed (WebGL) transport, polled (HttpClient standing in for UnityWebRequest)",
        _ => "HttpClient + DataContractJsonSerializer + DeflateStream",
    }
}

pub(crate) fn csharp(quick: bool) -> Section {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../unity-sample/Tests~/Bench/bench.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(if quick { "2" } else { "6" })
        .output();
    let (rows, updates) = match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            (parse_rows(&text), parse_updates(&text))
        }
        Ok(o) => {
            return Section {
                title: "2. Versus hand-written C# (Mono)",
                body: format!(
                    "The Mono benchmark failed:\n\n```\n{}\n```",
                    String::from_utf8_lossy(&o.stderr)
                ),
                goals: Vec::new(),
            }
        }
        Err(e) => {
            return Section {
                title: "2. Versus hand-written C# (Mono)",
                body: format!("Mono benchmark not run: {e}"),
                goals: Vec::new(),
            }
        }
    };
    let mut b = format!(
        "Under Mono {}, against the local gateway (embedded store, release build), alternating slices in one run. Managed bytes are those allocated on the calling thread (`GC.GetAllocatedBytesForCurrentThread`); HttpClient also allocates on thread-pool threads, so its figure is a lower bound.\n\nProcess CPU time per fetch counts every thread of the game's process (the native library's and the thread pool's), not the gateway's, which runs in another process.\n\n| chunks per fetch | client | fetches/s | managed bytes per fetch (calling thread) | process CPU per fetch |\n|---|---|---|---|---|\n",
        mono_version()
    );
    let mut goals = Vec::new();
    let mut chunk_counts: Vec<u32> = rows.iter().map(|r| r.chunks).collect();
    chunk_counts.dedup();
    for n in chunk_counts {
        let of = |client: &str| rows.iter().find(|r| r.chunks == n && r.client == client);
        for r in rows.iter().filter(|r| r.chunks == n) {
            b.push_str(&format!(
                "| {n} | {} | {:.0} | {:.0} | {:.0} µs |\n",
                label(&r.client),
                r.rate,
                r.bytes,
                r.cpu_us
            ));
            if r.client == "sdk-blocking" || r.client == "sdk-polled" {
                goals.push(goal(
                    &format!(
                        "C#: managed bytes per fetch, {n} chunk(s), {}",
                        label(&r.client)
                    ),
                    "0",
                    r.bytes,
                    r.bytes == 0.0,
                    " B",
                ));
            }
        }
        if let (Some(sdk), Some(hand)) = (of("sdk-blocking"), of("hand-written")) {
            let ratio = sdk.rate / hand.rate;
            let cpu = sdk.cpu_us / hand.cpu_us;
            b.push_str(&format!(
                "| {n} | **ratio CubeWalkClient / hand-written** | **{ratio:.2}x** throughput | | **{cpu:.2}** of the CPU |\n"
            ));
            goals.push(goal(
                &format!("C#: CubeWalkClient / hand-written CPU per fetch, {n} chunk(s)"),
                "≤ 0.25",
                cpu,
                cpu <= 0.25,
                "",
            ));
            goals.push(goal(
                &format!("C#: CubeWalkClient / hand-written throughput, {n} chunk(s)"),
                "≥ 3x",
                ratio,
                ratio >= 3.0,
                "x",
            ));
        }
    }
    if !updates.is_empty() {
        b.push_str("\nMain-thread time of one `CubeWalkClient.Update()` with requests in flight and none finished (held by a listener that never answers), median of 20,000 calls:\n\n| requests in flight | Update() |\n|---|---|\n");
        for (in_flight, us) in &updates {
            b.push_str(&format!("| {in_flight} | {us:.2} µs |\n"));
            goals.push(goal(
                &format!("C#: Update() with {in_flight} request(s) in flight, none finished (µs)"),
                "< 20",
                *us,
                *us < 20.0,
                " µs",
            ));
        }
    }
    Section {
        title: "2. Versus hand-written C# (Mono)",
        body: b,
        goals,
    }
}

/// The `update <in flight> <µs>` rows.
fn parse_updates(stdout: &str) -> Vec<(u32, f64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let ["update", n, us] = cells[..] else {
                return None;
            };
            Some((n.parse().ok()?, us.parse().ok()?))
        })
        .collect()
}
