//! `cubewalk-bench`: measures CubeWalk Net end to end in one run and writes BENCHMARKS.md.
//!
//! `cargo run --release -p cubewalk-bench -- all` starts what it needs (a real redis-server on
//! a free port, the local gateway on it, a byte-counting proxy, Mono for the C# rows), prints
//! each table as it is measured, then writes BENCHMARKS.md and the plots in docs/bench/.
//! Paths compared with each other are measured interleaved, so they share the machine's noise.

mod env;
mod plot;
mod prices;
mod proxy;
mod quotas;
mod rawhttp;
mod report;
mod sections;
mod stats;

use clap::Parser;
use env::{machine, Env};
use sections::{
    cost::cost, csharp::csharp, neighbourhood::neighbourhood, realtime::realtime, scaling::scaling,
    sdk::sdk, server::server, sizes::sizes,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Measure CubeWalk Net end to end and write BENCHMARKS.md")]
struct Args {
    /// Sections to run: all, sizes, server, sdk, neighbourhood, scaling, csharp, realtime, cost;
    /// or `publisher` alone: one publisher run's ceiling (section 7 measures it among the rest).
    #[arg(default_value = "all")]
    sections: Vec<String>,
    /// Where to write the report (only when running `all`).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Fewer rounds (a smoke run; figures are noisier).
    #[arg(long)]
    quick: bool,
}

fn main() {
    // RUST_LOG=info shows the gateway's log lines (notifications, refusals) while measuring.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = Args::parse();
    let all = args.sections.iter().any(|s| s == "all");
    let want = |s: &str| all || args.sections.iter().any(|x| x == s);
    let started = Instant::now();
    let env = Env::start(args.quick);
    if !all && want("publisher") {
        eprintln!("== publisher");
        let ceiling = sections::publisher::ceiling(&env, sections::publisher::backlog(args.quick));
        println!("\n{}", sections::publisher::describe(&ceiling));
    }
    let mut sections = Vec::new();
    let mut scaling_plot = None;
    let mut cost_plot = None;
    for name in [
        "sdk",
        "csharp",
        "server",
        "neighbourhood",
        "sizes",
        "scaling",
        "realtime",
        "cost",
    ] {
        if !want(name) {
            continue;
        }
        eprintln!("== {name}");
        let section = match name {
            "sdk" => sdk(&env),
            "csharp" => csharp(args.quick),
            "server" => server(&env),
            "neighbourhood" => neighbourhood(&env),
            "sizes" => sizes(&env),
            "realtime" => realtime(&env),
            "cost" => {
                let (s, p) = cost(&env, args.quick);
                cost_plot = Some(p);
                s
            }
            _ => {
                let (s, p) = scaling(&env);
                scaling_plot = Some(p);
                s
            }
        };
        println!("\n## {}\n\n{}", section.title, section.body);
        sections.push(section);
    }
    if let Some(p) = &scaling_plot {
        if plot::init_font() {
            let dir = Path::new("docs/bench");
            let _ = std::fs::create_dir_all(dir);
            let r1 = plot::lines(
                &dir.join("latency-vs-chunks.png"),
                "Fetch latency vs chunks per request",
                "chunks per request",
                "median latency (ms)",
                &[
                    ("median latency (ms)", p.latency.clone()),
                    ("KiB received", p.bytes.clone()),
                ],
            );
            let r2 = plot::lines(
                &dir.join("throughput-vs-threads.png"),
                "1-chunk fetch throughput vs client threads",
                "client threads",
                "fetches per second",
                &[("fetches/s", p.throughput.clone())],
            );
            if let Err(e) = r1.and(r2) {
                eprintln!("plots not written: {e}");
            }
        } else {
            eprintln!(
                "plots not written: DejaVu Sans not found (apt-get install fonts-dejavu-core)"
            );
        }
    }
    if let Some(curve) = &cost_plot {
        if plot::init_font() {
            let dir = Path::new("docs/bench");
            let _ = std::fs::create_dir_all(dir);
            if let Err(e) = plot::lines(
                &dir.join("cost-per-player-hour.png"),
                "USD per 1,000 player-hours by players online",
                "players online",
                "USD per 1,000 player-hours",
                &[("whole stack", curve.clone())],
            ) {
                eprintln!("cost plot not written: {e}");
            }
        }
    }
    if all {
        sections.sort_by_key(|s| s.title);
        let mut md = String::new();
        writeln!(md, "# Benchmarks\n").unwrap();
        writeln!(md, "Produced by `cargo run --release -p cubewalk-bench -- all` (after the README's test set-up) in {:.0} s on: {}.\n", started.elapsed().as_secs_f64(), machine()).unwrap();
        writeln!(md, "**Method.** One process starts a real `redis-server` on a free loopback port, the local gateway on it (in-process, its own 2-thread runtime), and a byte-counting TCP proxy in front of it; the C ABI is called exactly as C would. Paths compared with each other run interleaved round by round (alternating which goes first), after a warm-up, so both see the same machine noise; figures are medians and p99s, comparisons are ratios of medians measured in the same run. Everything shares one 2-core machine (client, gateway, Redis), so absolute figures are a floor; ratios are the point. Speed is never asserted in tests.\n").unwrap();
        writeln!(
            md,
            "## Goals in this run\n\n| measure | goal | this run | |\n|---|---|---|---|"
        )
        .unwrap();
        for s in &sections {
            for g in &s.goals {
                writeln!(md, "{g}").unwrap();
            }
        }
        writeln!(md).unwrap();
        for s in &sections {
            writeln!(md, "## {}\n\n{}", s.title, s.body).unwrap();
        }
        md.push_str(ANALYSIS);
        std::fs::write(&args.out, md).unwrap();
        eprintln!(
            "wrote {} in {:.0} s",
            args.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// What the figures mean against the goals; kept with the code that produces them.
const ANALYSIS: &str = include_str!("analysis.md");
