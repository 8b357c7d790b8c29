//! The real `cubewalk-server serve` process, as a developer runs it: a follower through its
//! gate sees a put's change, and the realtime side (broker, gate sessions, publisher) runs in
//! the background, at a lower priority and off the first CPU, while the put path does not.

use cubewalk::realtime::{Realtime, RealtimeEvent};
use cubewalk::{ChunkEdit, ChunkKey, Client, ClientOptions};
use cubewalk_protocol::WorldId;
use std::time::{Duration, Instant};

const TOKEN: &str = "serve-realtime-token-1";

/// A thread of a process: its name, nice value and the CPUs it may run on.
#[derive(Debug)]
struct Thread {
    name: String,
    nice: i64,
    cpus: String,
}

fn threads(pid: u32) -> Vec<Thread> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = entry.unwrap().path();
        let (Ok(name), Ok(stat), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the `(comm)`: state is field 3, nice field 19.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = rest.split(' ').nth(16).unwrap().parse().unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        out.push(Thread {
            name: name.trim().to_string(),
            nice,
            cpus,
        });
    }
    out
}

#[test]
fn a_follower_of_the_real_serve_sees_a_put_and_the_realtime_side_runs_in_the_background() {
    let bin = cubewalk_e2e::built_artifacts().join("cubewalk-server");
    let server = cubewalk_testkit::ServerProcess::start(
        &bin,
        &["--seed-radius", "0"],
        &[("CUBEWALK_TOKENS", TOKEN)],
    );
    let rt = cubewalk_e2e::runtime();
    let _g = rt.enter();
    let client = Client::new(&server.url, TOKEN, ClientOptions::default()).unwrap();
    let host = server
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let follower = Realtime::start(&client, &format!("ws://{host}/mqtt")).unwrap();
    let world = WorldId::new("default").unwrap();
    let chunk = ChunkKey::new(1, 2, 3);
    follower.follow(&world, &[chunk]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut subscribed = false;
    while !subscribed {
        assert!(
            Instant::now() < deadline,
            "never subscribed: {:?}",
            follower.last_error()
        );
        follower.drain(usize::MAX, |e| {
            subscribed |= *e == RealtimeEvent::Subscribed;
            true
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    let answer = rt
        .block_on(client.put("default", &[ChunkEdit::at_index(chunk, 7, 42)]))
        .unwrap();
    let mut seen = None;
    while seen.is_none() {
        assert!(Instant::now() < deadline, "the change never arrived");
        follower.drain(usize::MAX, |e| {
            if let RealtimeEvent::Changed(c) = e {
                seen = Some((c.chunk, c.version));
            }
            true
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen, Some((chunk, answer[0].version)));

    // Where serve's threads run: the main one and the put path's runtime (`tokio-*`) as the
    // process; the rest lower, and off the first CPU when the process has several.
    let all = threads(server.pid());
    let main = all
        .iter()
        .find(|t| t.name == "cubewalk-server")
        .expect("the main thread");
    // Every other thread is the realtime side's: the realtime runtime's, the broker's and the
    // threads the broker starts (its router and listener).
    let background: Vec<&Thread> = all
        .iter()
        .filter(|t| t.name != "cubewalk-server" && !t.name.starts_with("tokio"))
        .collect();
    assert!(
        background.iter().any(|t| t.name.starts_with("realtime")),
        "no realtime thread in {all:?}"
    );
    let several_cpus = main.cpus.contains(['-', ',']);
    for t in &background {
        assert_eq!(
            t.nice,
            (main.nice + cubewalk_server::background::NICE as i64).min(19),
            "{t:?}"
        );
        if several_cpus {
            assert_ne!(t.cpus, main.cpus, "{t:?} shares the put path's CPUs");
        }
    }
    let put_path: Vec<&Thread> = all.iter().filter(|t| t.name.starts_with("tokio")).collect();
    assert!(!put_path.is_empty(), "no put path worker in {all:?}");
    for t in put_path {
        assert_eq!((t.nice, &t.cpus), (main.nice, &main.cpus), "{t:?}");
    }

    // A follower leaving is routine: serve's log (its default filter) says nothing alarming.
    drop(follower);
    std::thread::sleep(Duration::from_millis(500));
    let log = server.stop();
    assert!(!log.contains("ERROR"), "{log}");
}
