//! A local Lambda Runtime API: the HTTP protocol the Lambda service speaks to a function's
//! runtime (`GET /2018-06-01/runtime/invocation/next`, `POST .../{id}/response` and `.../error`,
//! `POST .../init/error`), so a Lambda binary, or any runtime interface client such as Python's
//! `awslambdaric`, runs here exactly as in Lambda and is timed as Lambda bills it: from the
//! moment `next` hands the event out to the moment the answer arrives.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answered invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id it was handed out under.
    pub id: String,
    /// `"response"` or `"error"`.
    pub kind: String,
    /// What the function answered (JSON when it was JSON, else a string).
    pub body: Value,
    /// From `next` handing the event out to the answer's arrival: Lambda's billed duration
    /// before rounding up to the millisecond.
    pub duration: Duration,
    /// When the answer arrived.
    pub answered_at: Instant,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<(String, Value)>,
    handed_out: Vec<(String, Instant)>,
    results: Vec<Invocation>,
    init_errors: Vec<Value>,
}

type Shared = Arc<Mutex<Inner>>;

async fn next(State(s): State<Shared>) -> (StatusCode, HeaderMap, String) {
    loop {
        let item = {
            let mut inner = s.lock().unwrap();
            let item = inner.queue.pop_front();
            if let Some((id, _)) = &item {
                inner.handed_out.push((id.clone(), Instant::now()));
            }
            item
        };
        if let Some((id, event)) = item {
            let mut h = HeaderMap::new();
            // As Lambda sends it: runtime clients (Python's awslambdaric) decode the event
            // as JSON only when it says so.
            h.insert("content-type", "application/json".parse().unwrap());
            h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            h.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:test"
                    .parse()
                    .unwrap(),
            );
            h.insert(
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".parse().unwrap(),
            );
            return (StatusCode::OK, h, event.to_string());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn answer(s: &Shared, id: String, kind: &str, body: String) -> StatusCode {
    let now = Instant::now();
    let mut inner = s.lock().unwrap();
    let started = inner
        .handed_out
        .iter()
        .find(|(i, _)| *i == id)
        .map_or(now, |(_, t)| *t);
    inner.results.push(Invocation {
        id,
        kind: kind.into(),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        duration: now - started,
        answered_at: now,
    });
    StatusCode::ACCEPTED
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    answer(&s, id, "response", body)
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    answer(&s, id, "error", body)
}

async fn init_error(State(s): State<Shared>, body: String) -> StatusCode {
    s.lock()
        .unwrap()
        .init_errors
        .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
    StatusCode::ACCEPTED
}

/// The Runtime API server, on its own runtime and a free loopback port.
pub struct RuntimeApi {
    state: Shared,
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl Default for RuntimeApi {
    fn default() -> Self {
        Self::start()
    }
}

impl RuntimeApi {
    /// Starts it; events are handed out in the order [`RuntimeApi::push`] queued them.
    pub fn start() -> Self {
        let state: Shared = Arc::default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            state,
            addr,
            _rt: rt,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an invocation.
    pub fn push(&self, id: &str, event: Value) {
        self.state
            .lock()
            .unwrap()
            .queue
            .push_back((id.to_owned(), event));
    }

    /// Answers so far, in the order they arrived.
    pub fn results(&self) -> Vec<Invocation> {
        self.state.lock().unwrap().results.clone()
    }

    /// How many answers arrived.
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().results.len()
    }

    /// The `i`-th answer to arrive.
    pub fn result(&self, i: usize) -> Invocation {
        self.state.lock().unwrap().results[i].clone()
    }

    /// Queues `event` and waits for its answer (one invocation at a time).
    pub fn invoke(&self, function: &mut Function, event: Value) -> Invocation {
        let n = self.count();
        self.push(&format!("req-{n}"), event);
        self.wait_for(n + 1, function, Duration::from_secs(30));
        self.result(n)
    }

    /// What the function reported as init errors.
    pub fn init_errors(&self) -> Vec<Value> {
        self.state.lock().unwrap().init_errors.clone()
    }

    /// Waits until `count` answers arrived, failing (with the function's log) if it reports
    /// an init error, exits, or takes longer than `timeout`.
    pub fn wait_for(&self, count: usize, function: &mut Function, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.state.lock().unwrap().results.len() < count {
            let init_errors = self.init_errors();
            assert!(init_errors.is_empty(), "init failed: {init_errors:?}");
            if let Ok(Some(status)) = function.child.try_wait() {
                panic!(
                    "the function exited early with {status}: {}",
                    function.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the function did not answer every invocation: {}",
                function.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A function process started against a [`RuntimeApi`] with Lambda's environment; killed when
/// dropped. Its stdout and stderr go to one log file.
pub struct Function {
    child: Child,
    log_path: std::path::PathBuf,
    /// When the process was started (for cold starts: start to first answer).
    pub started: Instant,
}

impl Function {
    /// Starts `program args...` with the variables Lambda sets (128 MB, JSON log format) and `env`.
    pub fn start(api: &RuntimeApi, program: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let log_path = std::env::temp_dir().join(format!(
            "cubewalk-lambda-{}-{}-{}.log",
            std::process::id(),
            api.addr.port(),
            crate::free_port()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let started = Instant::now();
        let child = Command::new(program)
            .args(args)
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
            // What the template's LoggingConfig makes Lambda set.
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Self {
            child,
            log_path,
            started,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops it and returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// The events API Gateway hands the functions, as the functions' tests and the cost benchmark
/// send them.
pub mod events {
    use serde_json::{json, Value};

    /// A REST API proxy event of the blocks resource, authorized as `player-1` (editor):
    /// API Gateway's own shape (captured from a real stage), with the method, query and body
    /// given.
    pub fn rest(method: &str, query: Option<(&str, &str)>, body: Option<&str>) -> Value {
        let mut event: Value = serde_json::from_str(include_str!(
            "../../server/tests/fixtures/rest-get-event.json"
        ))
        .expect("the REST event fixture is JSON");
        event["httpMethod"] = json!(method);
        event["requestContext"]["httpMethod"] = json!(method);
        event["queryStringParameters"] = match query {
            Some((world, chunks)) => json!({ "world": world, "chunks": chunks }),
            None => Value::Null,
        };
        event["multiValueQueryStringParameters"] = match query {
            Some((world, chunks)) => json!({ "world": [world], "chunks": [chunks] }),
            None => Value::Null,
        };
        event["body"] = body.map_or(Value::Null, |b| json!(b));
        event
    }

    /// An AWS IoT Core custom authorizer event of an MQTT-over-WebSocket connection: the
    /// token in the upgrade request's `token` header, or its query string, or (MQTT) the
    /// CONNECT password, as IoT Core passes each.
    pub fn broker_connect(
        header: Option<&str>,
        query: Option<&str>,
        password: Option<&str>,
    ) -> Value {
        use base64::Engine;
        let headers = match header {
            Some(t) => json!({ "token": t, "host": "abc-ats.iot.eu-west-1.amazonaws.com" }),
            None => json!({ "host": "abc-ats.iot.eu-west-1.amazonaws.com" }),
        };
        let query = match query {
            Some(t) => format!("x-amz-customauthorizer-name=cubewalk&token={t}"),
            None => "x-amz-customauthorizer-name=cubewalk".into(),
        };
        json!({
            "token": null,
            "signatureVerified": false,
            "protocols": ["tls", "http", "mqtt"],
            "protocolData": {
                "tls": {"serverName": "abc-ats.iot.eu-west-1.amazonaws.com"},
                "http": {"headers": headers, "queryString": query},
                "mqtt": {
                    "clientId": "cw-0123456789abcdef",
                    "username": "",
                    "password": base64::engine::general_purpose::STANDARD
                        .encode(password.unwrap_or("").as_bytes()),
                }
            },
            "connectionMetadata": {"id": "e7a3d1c2-0000-4000-8000-000000000001"}
        })
    }

    /// A TOKEN authorizer event for the REST API's blocks resource.
    pub fn token(token: &str) -> Value {
        json!({
            "type": "TOKEN",
            "authorizationToken": token,
            "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/cubewalkblocks"
        })
    }
}
