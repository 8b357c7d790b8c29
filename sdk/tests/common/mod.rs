//! Helpers shared by the C ABI test binaries: a mock server usable from blocking C calls, the
//! per-binary serial lock (the library's state is global), and the C calls with Rust strings.

#![allow(dead_code)] // each test binary uses its own subset

use cubewalk::ffi::*;
use cubewalk::Status;
use std::sync::Mutex;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests that init the C ABI take this lock.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A mock server on its own runtime, so the test thread can make blocking C calls.
pub struct Mock2 {
    /// The runtime the server runs on (also usable to drive async client calls).
    pub rt: tokio::runtime::Runtime,
    /// The server.
    pub server: MockServer,
}

impl Mock2 {
    /// A server answering every `verb` request with `template`.
    pub fn new(verb: &str, template: ResponseTemplate) -> Self {
        Self::with(vec![Mock::given(method(verb)).respond_with(template)])
    }

    /// A server with these mocks mounted, in order.
    pub fn with(mocks: Vec<Mock>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(async {
            let s = MockServer::start().await;
            for m in mocks {
                m.mount(&s).await;
            }
            s
        });
        Self { rt, server }
    }

    /// The blocks endpoint on this server.
    pub fn endpoint(&self) -> String {
        format!("{}/prod/cubewalkblocks", self.server.uri())
    }

    /// How many requests it has received.
    pub fn requests(&self) -> usize {
        self.rt
            .block_on(self.server.received_requests())
            .unwrap()
            .len()
    }
}

/// `cw_init` with Rust strings.
pub fn init(endpoint: &str, token: &str) -> Status {
    unsafe {
        cw_init(
            endpoint.as_ptr(),
            endpoint.len(),
            token.as_ptr(),
            token.len(),
        )
    }
}

/// This thread's `cw_last_error`.
pub fn last_error() -> String {
    let mut buf = [0u8; 1024];
    let mut len = 0usize;
    unsafe { cw_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    String::from_utf8_lossy(&buf[..len.min(1023)]).into_owned()
}
