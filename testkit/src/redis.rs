//! A real `redis-server` for one test, killed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a loopback port, with its own scratch directory.
pub struct RedisServer {
    child: Option<Child>,
    /// The port it listens on (plain TCP).
    pub port: u16,
    /// The TLS port, when started with [`RedisServer::start_tls`].
    pub tls_port: Option<u16>,
    /// The CA certificate (PEM) that signed the TLS server certificate.
    pub ca_pem: Option<Vec<u8>>,
    auth: Option<(String, String)>,
    dir: PathBuf,
    extra: Vec<String>,
}

/// A user the TLS test server accepts (ACL), and its password.
pub const TLS_USER: (&str, &str) = ("cubewalk", "s3cret-pass");

impl RedisServer {
    /// Starts a server without persistence. Panics with a hint when `redis-server` is missing.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra command-line arguments (e.g. `--appendonly yes`).
    pub fn start_with(args: &[&str]) -> Self {
        let port = crate::free_port();
        let dir =
            std::env::temp_dir().join(format!("cubewalk-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let mut s = Self {
            child: None,
            port,
            tls_port: None,
            ca_pem: None,
            auth: None,
            dir,
            extra: args.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// Starts a server that requires TLS (a throwaway CA and a certificate for 127.0.0.1 and
    /// localhost) on `tls_port` and ACL user [`TLS_USER`]; the default user is disabled. The
    /// plain port stays open for the test's own checks (it needs the user too).
    pub fn start_tls() -> Self {
        let port = crate::free_port();
        let tls_port = crate::free_port();
        let dir =
            std::env::temp_dir().join(format!("cubewalk-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let (ca_pem, cert_pem, key_pem) = throwaway_certificates();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.join("server.pem"), cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), key_pem).unwrap();
        let (user, pass) = TLS_USER;
        let extra = vec![
            "--save".into(),
            "".into(),
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            dir.join("server.pem").display().to_string(),
            "--tls-key-file".into(),
            dir.join("server.key").display().to_string(),
            "--tls-ca-cert-file".into(),
            dir.join("ca.pem").display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            user.into(),
            "on".into(),
            format!(">{pass}"),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ];
        let mut s = Self {
            child: None,
            port,
            tls_port: Some(tls_port),
            ca_pem: Some(ca_pem.into_bytes()),
            auth: Some((user.into(), pass.into())),
            dir,
            extra,
        };
        s.spawn();
        s
    }

    /// `rediss://user:password@127.0.0.1:<tls_port>` with the given password.
    pub fn tls_url(&self, password: &str) -> String {
        format!(
            "rediss://{}:{password}@127.0.0.1:{}",
            TLS_USER.0,
            self.tls_port.expect("started with start_tls")
        )
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server: install it (README: test set-up)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // A server that could not bind its port exits; whatever answers there then is
            // another test's (the port was free when drawn, and taken since).
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn ping(&self) -> bool {
        self.command(&["PING"]).is_some_and(|r| r == "+PONG")
    }

    /// Sends one command in RESP (after AUTH, when the server needs a user) and returns the
    /// first line of the answer.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        command_on(self.port, self.auth.as_ref(), args)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

/// Sends one RESP command to a loopback port and returns the first line of the answer.
pub(crate) fn command_on(
    port: u16,
    auth: Option<&(String, String)>,
    args: &[&str],
) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let encode = |args: &[&str]| {
        let mut msg = format!("*{}\r\n", args.len());
        for a in args {
            msg.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        msg
    };
    let mut msg = String::new();
    if let Some((user, pass)) = auth {
        msg.push_str(&encode(&["AUTH", user, pass]));
    }
    msg.push_str(&encode(args));
    s.write_all(msg.as_bytes()).ok()?;
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    if auth.is_some() {
        reader.read_line(&mut line).ok()?;
        line.clear();
    }
    reader.read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
}

/// A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost:
/// (CA PEM, server certificate PEM, server key PEM).
pub fn throwaway_certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "CubeWalk test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
