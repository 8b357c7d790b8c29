//! The thinnest possible HTTP/1.1 client (one kept-alive std socket, no runtime, no thread
//! hand-off), so the server-path figure measures the gateway, not a client library.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A kept-alive connection to one host.
pub struct RawHttp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl RawHttp {
    /// Connects to `addr` (`127.0.0.1:port`).
    pub fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            host: addr.to_string(),
        }
    }

    /// GETs `path` with the `token` header; returns the body.
    pub fn get(&mut self, path: &str, token: &str) -> Vec<u8> {
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nhost: {}\r\ntoken: {token}\r\n\r\n",
            self.host
        )
        .unwrap();
        let mut line = String::new();
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).unwrap();
        body
    }
}
