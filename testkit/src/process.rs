//! The real `cubewalk-server serve` binary as a child process, for tests that need the whole
//! program (its logging, its own memory figures).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `cubewalk-server serve`; killed when dropped. Its stdout and stderr go to files
/// the test can read.
pub struct ServerProcess {
    child: Child,
    /// The blocks URL it printed.
    pub url: String,
    dir: std::path::PathBuf,
}

impl ServerProcess {
    /// Starts `binary serve --bind 127.0.0.1:0 <args>` with `env`, and waits for its URL.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cubewalk-serve-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(binary)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("out")).unwrap())
            .stderr(std::fs::File::create(dir.join("err")).unwrap())
            .spawn()
            .expect("cannot start cubewalk-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            let printed = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
            if let Some(u) = printed
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
            {
                break u.to_string();
            }
            assert!(Instant::now() < deadline, "cubewalk-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, url, dir }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process and returns everything it wrote (stdout, then stderr).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = std::fs::read_to_string(self.dir.join("out")).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.join("err")).unwrap_or_default();
        out + &err
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
