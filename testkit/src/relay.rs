//! A TCP relay on loopback that a test can re-point and make misbehave: the stand-in for a DNS
//! name that moves to a promoted replica, and for a network that loses an answer after the
//! server acted on the request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Runs once, on the relay's thread, when an answer is dropped, before the client sees its
/// connection close.
pub type DropHook = Box<dyn FnOnce() + Send>;

struct Shared {
    target: AtomicU16,
    /// Bumped by `switch`: connections of an older generation are closed.
    generation: watch::Sender<u64>,
    drop_next_answer: Mutex<Option<DropHook>>,
    delay_first: Mutex<Option<Duration>>,
    dropped: AtomicU64,
    stopped: AtomicBool,
    /// While true, no byte is forwarded either way (see `Relay::hold`).
    held: watch::Sender<bool>,
}

/// A running relay; stopped when dropped.
pub struct Relay {
    /// The port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// A relay on a free loopback port forwarding to `127.0.0.1:target`.
    pub fn start(target: u16) -> Self {
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            target: AtomicU16::new(target),
            generation,
            drop_next_answer: Mutex::new(None),
            delay_first: Mutex::new(None),
            dropped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            held: watch::channel(false).0,
        });
        let inner = shared.clone();
        let (addr, stop_tx, thread) = crate::serve_on_thread(move |listener, stop_rx| async move {
            tokio::select! {
                _ = stop_rx => {}
                _ = accept_loop(listener, inner) => {}
            }
        });
        Self {
            port: addr.port(),
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Forwards new connections to `target` and closes every open one, as a failover does.
    pub fn switch(&self, target: u16) {
        self.shared.target.store(target, Ordering::SeqCst);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// The next answer the server sends back is not delivered: `hook` runs, then the client's
    /// connection is closed. The server has acted on the request by then.
    pub fn drop_next_answer(&self, hook: DropHook) {
        *self.shared.drop_next_answer.lock().unwrap() = Some(hook);
    }

    /// The next connection's request bytes are held back for `delay` before being forwarded,
    /// and forwarded even if the client has left by then (the server's answer, which no one
    /// reads, ends the connection).
    pub fn delay_next_connection(&self, delay: Duration) {
        *self.shared.delay_first.lock().unwrap() = Some(delay);
    }

    /// Stops forwarding bytes, both ways, on every connection until [`Relay::release`]: the
    /// far side waits, as behind a congested link. Bytes held when a connection is closed
    /// ([`Relay::switch`]) are never delivered: a replica reached through a held relay lags
    /// its primary, and what it had not received when the primary dies is lost.
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Forwards again what [`Relay::hold`] held back.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// How many answers were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = relay_one(client, shared).await;
        });
    }
}

async fn relay_one(mut client: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let delay = shared.delay_first.lock().unwrap().take();
    let target = SocketAddr::from(([127, 0, 0, 1], shared.target.load(Ordering::SeqCst)));
    let mut server = TcpStream::connect(target).await?;
    // Forward small messages at once, as the two ends would send them to each other: with
    // Nagle's algorithm a short message waits for the previous one's acknowledgement, which
    // the receiver delays up to 40 ms (a replica's acknowledgement to `WAIT` took that long).
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = true;
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 && delay.is_some() {
                // A held-back request goes on when its client leaves, as API Gateway's does
                // once it has the request: the answer ends this connection.
                std::future::pending::<()>().await;
            }
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if first {
                first = false;
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
            }
            released(&shared.held).await;
            sw.write_all(&buf[..n]).await?;
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let hook = shared.drop_next_answer.lock().unwrap().take();
            if let Some(hook) = hook {
                shared.dropped.fetch_add(1, Ordering::SeqCst);
                tokio::task::spawn_blocking(hook).await.ok();
                return Err(std::io::Error::other("answer dropped"));
            }
            released(&shared.held).await;
            cw.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        r = upstream => r,
        r = downstream => r,
        _ = generation.changed() => Ok(()),
    }
}

/// Returns once the relay is not held (at once when it is not).
async fn released(held: &watch::Sender<bool>) {
    let mut rx = held.subscribe();
    // The sender lives in `Shared`, which this connection holds: it cannot close.
    let _ = rx.wait_for(|held| !*held).await;
}
