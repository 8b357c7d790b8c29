//! A real Mosquitto broker for one test (a broker we did not write), killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `mosquitto` child process on a loopback port (MQTT over TCP, anonymous clients allowed:
/// only the gate and the publisher connect to it).
pub struct MosquittoServer {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    dir: PathBuf,
}

impl MosquittoServer {
    /// Starts Mosquitto. Panics with a hint when it is not installed.
    pub fn start() -> Self {
        let port = crate::free_port();
        let dir =
            std::env::temp_dir().join(format!("cubewalk-mosquitto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .expect("mosquitto.conf");
        let mut s = Self {
            child: None,
            port,
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("mosquitto is not installed (scripts/install-test-deps.sh installs it)");
        let child = Command::new(binary)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (every session and queued message gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for MosquittoServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
