//! A byte-counting TCP proxy, so "bytes on the wire" counts exactly what crossed the socket
//! (HTTP headers included) whatever client sends it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes seen in each direction.
#[derive(Default)]
pub struct Counters {
    /// Client to server.
    pub up: AtomicU64,
    /// Server to client.
    pub down: AtomicU64,
}

impl Counters {
    /// (up, down) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

/// Starts a proxy to `target` on `rt`; returns its address and counters.
pub fn start(
    rt: &tokio::runtime::Runtime,
    target: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let c = counters.clone();
    rt.spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = outbound.split();
                let up = copy_counting(&mut ri, &mut wo, &c.up);
                let down = copy_counting(&mut ro, &mut wi, &c.down);
                let _ = tokio::join!(up, down);
            });
        }
    });
    (addr, counters)
}

async fn copy_counting<R, W>(r: &mut R, w: &mut W, n: &AtomicU64) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = r.read(&mut buf).await?;
        if k == 0 {
            return w.shutdown().await;
        }
        n.fetch_add(k as u64, Ordering::Relaxed);
        w.write_all(&buf[..k]).await?;
    }
}
