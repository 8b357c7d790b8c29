//! Helpers shared by the C ABI test binaries: a mock server usable from blocking C calls, the
//! per-binary serial lock (the library's state is global), and the C calls with Rust strings.

#![allow(dead_code)] // each test binary uses its own subset

pub mod mqtt;

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

pub use cubewalk::ffi::test_hooks::{begin_fetch_origin, init, last_error};
