//! Each Lambda binary answers real invocations through a local Lambda Runtime API (a small
//! server in this test speaking the same HTTP protocol as the Lambda service): the authorizer
//! with TOKEN and REQUEST (WebSocket `$connect`) events, the blocks function with REST proxy
//! events against a real redis-server,  and the login
//! function reading its signing key from a stand-in Secrets Manager.

mod common;

use cubewalk_testkit::runtime_api::{events, Function, RuntimeApi};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `binary` against a local Runtime API with `events`, returning each result in order and
/// everything the function logged.
fn invoke(
    binary: &str,
    env: &[(&str, String)],
    events: Vec<Value>,
) -> (Vec<(String, Value)>, String) {
    invoke_with(binary, env, events, &|_| {})
}

/// As [`invoke`], handing out one event at a time and calling `between(i)` once event `i` was
/// answered (to break things between invocations).
fn invoke_with(
    binary: &str,
    env: &[(&str, String)],
    events: Vec<Value>,
    between: &dyn Fn(usize),
) -> (Vec<(String, Value)>, String) {
    let api = RuntimeApi::start();
    let mut function = Function::start(&api, binary, &[], env);
    for (i, event) in events.iter().enumerate() {
        api.push(&format!("req-{i}"), event.clone());
        api.wait_for(i + 1, &mut function, Duration::from_secs(30));
        between(i);
    }
    let results = api.results();
    (
        results.into_iter().map(|r| (r.kind, r.body)).collect(),
        function.stop(),
    )
}

/// Runs `binary` expecting it to fail before it asks for an invocation (as Lambda's init phase
/// fails): returns what it printed and checks that it exited unsuccessfully.
fn invoke_init_error(binary: &str, env: &[(&str, String)]) -> String {
    let mut child = Command::new(binary)
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("127.0.0.1:{}", cubewalk_testkit::free_port()),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{binary} did not fail its start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{binary} started");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn authorizer_binary_allows_the_right_token_and_refuses_the_wrong_one() {
    let secret = "lambda-secret-token-1";
    let event = |token: &str| {
        json!({
            "type": "TOKEN",
            "authorizationToken": token,
            "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/cubewalkblocks"
        })
    };
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_authorizer"),
        &[("CUBEWALK_TOKENS", format!("old-token-0, {secret}"))],
        vec![event(secret), event("wrong-token-999")],
    );
    let (kind, allow) = &results[0];
    assert_eq!(kind, "response");
    assert_eq!(allow["principalId"], "static-1");
    assert_eq!(allow["context"]["role"], "editor");
    assert_eq!(allow["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(
        allow["policyDocument"]["Statement"][0]["Resource"][0],
        "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/*"
    );
    let (kind, err) = &results[1];
    assert_eq!(kind, "error");
    assert_eq!(
        err["errorMessage"], "Unauthorized",
        "API Gateway maps exactly this message to 401"
    );
    // Logs are JSON lines and never carry a token.
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"allow\"")),
        "{logs}"
    );
    assert!(
        !logs.contains(secret) && !logs.contains("wrong-token-999"),
        "token in logs: {logs}"
    );
}

#[test]
fn authorizer_binary_reads_static_tokens_from_secrets_manager() {
    use common::{SecretsManagerStandIn, ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN};
    let token = "dev-token-from-the-secret-7";
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cubewalk-tokens-AbCdEf";
    let sm = SecretsManagerStandIn::start(&[(arn, &format!("{token}:tester:viewer"))]);
    let event = json!({
        "type": "TOKEN",
        "authorizationToken": token,
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/cubewalkblocks"
    });
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_authorizer"),
        &[
            ("CUBEWALK_TOKENS_SECRET", arn.to_string()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
        ],
        vec![event],
    );
    assert_eq!(sm.received.lock().unwrap().len(), 1, "read once, at start");
    assert_eq!(results[0].0, "response", "{:?}", results[0]);
    assert_eq!(results[0].1["principalId"], "tester");
    assert_eq!(results[0].1["context"]["role"], "viewer");
    assert!(!logs.contains(token), "token in logs: {logs}");
}

#[test]
fn the_consoles_log_level_control_is_honoured() {
    // AWS_LAMBDA_LOG_LEVEL (the console's "application log level") silences info lines.
    let secret = "lambda-secret-token-2";
    let event = json!({
        "type": "TOKEN",
        "authorizationToken": secret,
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/cubewalkblocks"
    });
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_authorizer"),
        &[
            ("CUBEWALK_TOKENS", secret.to_string()),
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR".to_string()),
        ],
        vec![event],
    );
    assert_eq!(results[0].0, "response");
    assert!(
        !logs.contains("\"INFO\""),
        "info lines at level ERROR: {logs}"
    );
}

#[test]
fn blocks_binary_round_trips_through_real_redis() {
    let redis = cubewalk_testkit::RedisServer::start();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/fixtures");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{fixtures}/{name}")).unwrap())
            .unwrap()
    };
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_blocks"),
        &[("CUBEWALK_REDIS_URL", redis.url())],
        vec![read("rest-put-event.json"), read("rest-get-event.json")],
    );
    let (kind, put) = &results[0];
    assert_eq!(kind, "response");
    assert_eq!(put["statusCode"], 200, "{put}");
    let put_body: Value = serde_json::from_str(put["body"].as_str().unwrap()).unwrap();
    let put_version = put_body["chunks"][0]["version"].as_u64().unwrap();
    assert!(put_version != 0);
    let (_, get) = &results[1];
    assert_eq!(get["statusCode"], 200, "{get}");
    let get_body: Value = serde_json::from_str(get["body"].as_str().unwrap()).unwrap();
    assert_eq!(get_body["chunks"][0]["key"], json!([0, 0, 0]));
    assert_eq!(get_body["chunks"][0]["version"], put_version);
    assert!(get_body["chunks"][0]["data"].as_str().unwrap().len() > 1);
    assert_eq!(
        redis.command(&["EXISTS", "cw:{default:0,0,0}"]).unwrap(),
        ":1"
    );
    assert!(
        !logs.contains("REDACTED"),
        "request headers must not be logged: {logs}"
    );
}

/// The one CloudWatch Embedded Metric Format line in `logs`, parsed.
fn emf_line(logs: &str) -> Value {
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("\"_aws\"")).collect();
    assert_eq!(lines.len(), 1, "one EMF line: {logs}");
    let emf: Value = serde_json::from_str(lines[0]).expect("the EMF line is JSON");
    assert!(
        emf["_aws"]["CloudWatchMetrics"][0]["Metrics"].is_array(),
        "{emf}"
    );
    emf
}

#[test]
fn blocks_binary_reads_its_redis_password_from_secrets_manager_not_the_environment() {
    use common::{SecretsManagerStandIn, ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN};
    let redis = cubewalk_testkit::RedisServer::start();
    let password = "Qx7pLm2ZrT9vWc4NbH8sKd3FyA1e";
    redis
        .command(&[
            "ACL",
            "SETUSER",
            "cubewalk-blocks",
            "on",
            &format!(">{password}"),
            "~cw:*",
            "+@all",
        ])
        .unwrap();
    redis
        .command(&["ACL", "SETUSER", "default", "off"])
        .unwrap();
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cubewalk-redis-blocks-AbCdEf";
    let generated = json!({ "username": "cubewalk-blocks", "password": password }).to_string();
    let sm = SecretsManagerStandIn::start(&[(arn, &generated)]);
    let url = redis
        .url()
        .replacen("redis://", "redis://cubewalk-blocks@", 1);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/fixtures");
    let get: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/rest-get-event.json")).unwrap(),
    )
    .unwrap();
    let aws = |secret: &str| {
        vec![
            ("CUBEWALK_REDIS_URL", url.clone()),
            ("CUBEWALK_REDIS_PASSWORD_SECRET", secret.to_string()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
        ]
    };
    let (results, logs) = invoke(env!("CARGO_BIN_EXE_blocks"), &aws(arn), vec![get.clone()]);
    assert_eq!(sm.received.lock().unwrap().len(), 1, "read once, at start");
    assert_eq!(results[0].0, "response");
    assert_eq!(results[0].1["statusCode"], 200, "{}", results[0].1);
    assert!(!logs.contains(password), "password in logs: {logs}");
    // After the invocation, its metrics as one CloudWatch EMF line.
    let emf = emf_line(&logs);
    assert_eq!(emf["Function"], "blocks");
    assert_eq!(emf["Requests"], 1);
    assert_eq!(emf["StoreLatency"].as_array().map(Vec::len), Some(1));

    // The same URL without the secret: Redis refuses the user, the function answers 503.
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_blocks"),
        &[("CUBEWALK_REDIS_URL", url.clone())],
        vec![get.clone()],
    );
    assert_eq!(results[0].1["statusCode"], 503, "{}", results[0].1);
    assert!(!logs.contains(password));
    let emf = emf_line(&logs);
    assert_eq!(emf["Errors5xx"], 1, "{emf}");
    assert_eq!(emf["StoreErrors"], 1, "{emf}");
    // A secret it may not read: the function does not start (Lambda reports an init error).
    let state = invoke_init_error(
        env!("CARGO_BIN_EXE_blocks"),
        &aws("not-this-functions-secret"),
    );
    assert!(state.contains("ResourceNotFoundException"), "{state}");
}

#[test]
fn blocks_binary_survives_a_killed_redis_connection_between_invocations() {
    // What a long idle looks like to a frozen Lambda: its Redis connection is gone when it thaws.
    let redis = cubewalk_testkit::RedisServer::start();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/fixtures");
    let get: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/rest-get-event.json")).unwrap(),
    )
    .unwrap();
    let killed = std::sync::atomic::AtomicUsize::new(0);
    let (results, _) = invoke_with(
        env!("CARGO_BIN_EXE_blocks"),
        &[("CUBEWALK_REDIS_URL", redis.url())],
        vec![get.clone(), get.clone(), get],
        &|_| {
            let answer = redis
                .command(&["CLIENT", "KILL", "TYPE", "normal"])
                .unwrap();
            let n = answer.trim_start_matches(':').parse::<usize>().unwrap_or(0);
            killed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        },
    );
    assert!(
        killed.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "connections were killed"
    );
    for (kind, r) in &results {
        assert_eq!(kind, "response");
        assert_eq!(r["statusCode"], 200, "{r}");
    }
}

#[test]
fn broker_authorizer_binary_lets_a_player_read_its_worlds_and_never_publish() {
    use cubewalk_server::identity::SigningKey;
    use cubewalk_testkit::tokens::{claims, sign};
    let mut redis = cubewalk_testkit::RedisServer::start();
    let key = SigningKey::generate();
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let mut alice = claims("alice", "viewer");
    alice["worlds"] = json!(["w1"]);
    let alice = sign(&key, &alice);
    let banned = sign(&key, &claims("carol", "editor"));
    redis.command(&["SET", "cw:{p:carol}:ban", "1"]);
    let api = RuntimeApi::start();
    let mut function = Function::start(
        &api,
        env!("CARGO_BIN_EXE_broker_authorizer"),
        &[],
        &[
            ("CUBEWALK_PUBLIC_KEYS", jwks),
            ("CUBEWALK_REDIS_URL", redis.url()),
            (
                "CUBEWALK_IOT_ARN_PREFIX",
                "arn:aws:iot:eu-west-1:123456789012".into(),
            ),
        ],
    );
    let in_header = api.invoke(
        &mut function,
        events::broker_connect(Some(&alice), None, None),
    );
    let in_query = api.invoke(
        &mut function,
        events::broker_connect(None, Some(&alice), None),
    );
    let in_password = api.invoke(
        &mut function,
        events::broker_connect(None, None, Some(&alice)),
    );
    let wrong = api.invoke(
        &mut function,
        events::broker_connect(Some("not-a-token"), None, None),
    );
    let none = api.invoke(&mut function, events::broker_connect(None, None, None));
    let ban = api.invoke(
        &mut function,
        events::broker_connect(Some(&banned), None, None),
    );
    for allowed in [&in_header, &in_query, &in_password] {
        assert_eq!(allowed.kind, "response", "{:?}", allowed.body);
        let answer = &allowed.body;
        assert_eq!(answer["isAuthenticated"], true, "{answer}");
        assert_eq!(answer["principalId"], "alice");
        assert_eq!(answer["refreshAfterInSeconds"], 300);
        let policy: Value =
            serde_json::from_str(answer["policyDocuments"][0].as_str().unwrap()).unwrap();
        let text = policy.to_string();
        assert!(
            text.contains("arn:aws:iot:eu-west-1:123456789012:topicfilter/cw/w1/*"),
            "{text}"
        );
        assert!(
            text.contains("arn:aws:iot:eu-west-1:123456789012:topic/cw/w1/*"),
            "{text}"
        );
        let deny = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Effect"] == "Deny")
            .expect("a Deny");
        assert_eq!(deny["Action"], "iot:Publish");
        assert!(
            text.contains("arn:aws:iot:eu-west-1:123456789012:topicfilter/*#*"),
            "wildcard filters denied: {text}"
        );
        assert!(
            !text.contains("\"Allow\",\"Action\":\"iot:Publish"),
            "{text}"
        );
    }
    for refused in [&wrong, &none, &ban] {
        assert_eq!(refused.kind, "response");
        assert_eq!(refused.body["isAuthenticated"], false, "{:?}", refused.body);
        assert_eq!(refused.body["policyDocuments"], json!([]));
    }
    // The ban flags cannot be read: the invocation fails (IoT Core refuses the connection
    // for now), rather than telling a good token it is bad.
    redis.kill();
    let down = api.invoke(
        &mut function,
        events::broker_connect(Some(&alice), None, None),
    );
    assert_eq!(down.kind, "error", "{:?}", down.body);
    let logs = function.stop();
    assert!(!logs.contains(&alice), "token in logs");
}

/// Each publish the IoT data endpoint's stand-in received: path and query, the authorization
/// header, the body.
type Publishes = Arc<Mutex<Vec<(String, String, String)>>>;

/// The IoT Core data endpoint's stand-in, recording each publish.
fn iot_endpoint() -> (String, Publishes, tokio::runtime::Runtime) {
    use axum::extract::Request;
    let got: Publishes = Arc::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let log = got.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let log = log.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let auth = parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            log.lock().unwrap().push((
                parts.uri.to_string(),
                auth,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            axum::Json(json!({"message": "OK"}))
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got, rt)
}

/// `env` plus the AWS credentials and region of the stand-in endpoints and the store at `redis`:
/// what the blocks and publisher functions run with.
fn with_aws(
    mut env: Vec<(&'static str, String)>,
    redis: &cubewalk_testkit::RedisServer,
) -> Vec<(&'static str, String)> {
    use common::{ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN};
    env.extend([
        ("AWS_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN.to_string()),
        ("CUBEWALK_REDIS_URL", redis.url()),
    ]);
    env
}

#[test]
fn blocks_and_publisher_binaries_carry_a_put_to_iot_core() {
    use common::{ACCESS_KEY, REGION};
    let redis = cubewalk_testkit::RedisServer::start();
    let (endpoint, published, _rt) = iot_endpoint();
    let aws = |env| with_aws(env, &redis);
    let publisher_env = aws(vec![
        ("CUBEWALK_IOT_ENDPOINT", endpoint.clone()),
        ("CUBEWALK_PUBLISHER_RUN_SECS", "1".into()),
    ]);
    // A first run marks where the feed starts; the put; a second run publishes it.
    let (first, _) = invoke(
        env!("CARGO_BIN_EXE_publisher"),
        &publisher_env,
        vec![json!({})],
    );
    assert_eq!(first[0].0, "response", "{:?}", first[0].1);
    assert_eq!(first[0].1["held"], true);
    let put = r#"{"world":"default","edits":[{"chunk":[0,0,0],"index":5,"value":7},{"chunk":[9,0,0],"index":1,"value":2}]}"#;
    let (results, _) = invoke(
        env!("CARGO_BIN_EXE_blocks"),
        &aws(vec![("CUBEWALK_REALTIME", "on".into())]),
        vec![events::rest("PUT", None, Some(put))],
    );
    assert_eq!(results[0].1["statusCode"], 200, "{:?}", results[0].1);
    let (second, logs) = invoke(
        env!("CARGO_BIN_EXE_publisher"),
        &publisher_env,
        vec![json!({})],
    );
    assert_eq!(second[0].0, "response", "{:?} {logs}", second[0].1);
    assert_eq!(second[0].1["changes"], 2, "{:?}", second[0].1);
    assert_eq!(second[0].1["published"], 2, "two regions, one message each");
    let got = published.lock().unwrap().clone();
    let mut topics: Vec<&str> = got.iter().map(|(uri, _, _)| uri.as_str()).collect();
    topics.sort();
    // The two chunks' regions, whatever the region size: chunk 9 is past the first region.
    use cubewalk_protocol::realtime::{region_topic, Region};
    let world = cubewalk_protocol::WorldId::new("default").unwrap();
    let mut expected: Vec<String> = [(0, 0, 0), (9, 0, 0)]
        .map(|(x, y, z)| {
            let topic = region_topic(
                &world,
                Region::of(cubewalk_protocol::ChunkKey::new(x, y, z)),
            );
            format!("/topics/{}?qos=0", topic.replace('/', "%2F"))
        })
        .to_vec();
    expected.sort();
    assert_ne!(expected[0], expected[1]);
    assert_eq!(topics, expected);
    for (_, auth, body) in &got {
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"))
                && auth.contains(&format!("/{REGION}/iotdevicegateway/aws4_request")),
            "{auth}"
        );
        let changes = cubewalk_protocol::realtime::parse_region_message(body.as_bytes()).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].from_seq, 0, "a chunk never written");
        assert!(changes[0].seq > 0);
    }
}

#[test]
fn publisher_binary_publishes_only_the_shards_of_the_group_its_input_names() {
    use cubewalk_protocol::realtime::{region_topic, Region, REGION_CHUNKS};
    use cubewalk_server::store::{feed_shard, FeedGroup};
    let redis = cubewalk_testkit::RedisServer::start();
    let (endpoint, published, _rt) = iot_endpoint();
    let aws = |env| with_aws(env, &redis);
    let publisher_env = aws(vec![
        ("CUBEWALK_IOT_ENDPOINT", endpoint.clone()),
        ("CUBEWALK_PUBLISHER_RUN_SECS", "1".into()),
    ]);
    // A chunk in a region of each of two groups.
    let world = cubewalk_protocol::WorldId::new("default").unwrap();
    let groups = [FeedGroup::new(0, 2).unwrap(), FeedGroup::new(1, 2).unwrap()];
    let chunk_of = |group: FeedGroup| {
        (0..64)
            .map(|i| cubewalk_protocol::ChunkKey::new(i * REGION_CHUNKS, 0, 0))
            .find(|&c| group.contains(feed_shard(&world, Region::of(c))))
            .unwrap()
    };
    let chunks = groups.map(chunk_of);
    let input = |group: usize| json!({"group": group, "groups": 2});
    // Each group's first run marks where its shards start; the put; each group's next run
    // publishes its own chunk's change; input naming no valid group fails the invocation.
    let (first, logs) = invoke(
        env!("CARGO_BIN_EXE_publisher"),
        &publisher_env,
        vec![input(0), input(1)],
    );
    for (kind, body) in &first {
        assert_eq!(kind, "response", "{body} {logs}");
        assert_eq!(body["held"], true);
        assert_eq!(body["taken"], 8, "{body}");
    }
    let edits: Vec<Value> = chunks
        .iter()
        .map(|c| json!({"chunk": [c.x, c.y, c.z], "index": 5, "value": 7}))
        .collect();
    let put = json!({"world": "default", "edits": edits}).to_string();
    let (results, _) = invoke(
        env!("CARGO_BIN_EXE_blocks"),
        &aws(vec![("CUBEWALK_REALTIME", "on".into())]),
        vec![events::rest("PUT", None, Some(&put))],
    );
    assert_eq!(results[0].1["statusCode"], 200, "{:?}", results[0].1);
    let (second, logs) = invoke(
        env!("CARGO_BIN_EXE_publisher"),
        &publisher_env,
        vec![
            input(0),
            input(1),
            input(2),
            json!({"groups": 2}),
            json!({"group": 0, "groups": 3}),
        ],
    );
    for (i, (kind, body)) in second[..2].iter().enumerate() {
        assert_eq!(kind, "response", "{body} {logs}");
        assert_eq!((&body["group"], &body["groups"]), (&json!(i), &json!(2)));
        assert_eq!(body["changes"], 1, "group {i}: {body}");
        assert_eq!(body["published"], 1, "group {i}: {body}");
    }
    let got = published.lock().unwrap().clone();
    let topics: Vec<&str> = got.iter().map(|(uri, _, _)| uri.as_str()).collect();
    let expected: Vec<String> = chunks
        .iter()
        .map(|&c| {
            let topic = region_topic(&world, Region::of(c));
            format!("/topics/{}?qos=0", topic.replace('/', "%2F"))
        })
        .collect();
    assert_eq!(topics, expected, "each group's run published its own chunk");
    for ((kind, body), message) in second[2..].iter().zip([
        "publisher input: publisher group 2 of 2: groups are numbered 0 to 1",
        r#"publisher input: "groups" given without "group""#,
        "publisher input: 3 publisher groups: the count must divide the feed's 16 shards (1, 2, 4, 8, 16)",
    ]) {
        assert_eq!(kind, "error", "{body}");
        assert_eq!(body["errorMessage"], message, "{body}");
    }
}

#[test]
fn authorizer_binary_refuses_every_forged_player_token_and_allows_a_good_one() {
    use cubewalk_server::identity::SigningKey;
    use cubewalk_testkit::tokens::{claims, forgeries, sign};
    let key = SigningKey::generate();
    let forged = forgeries(&key);
    let mut good = claims("alice", "viewer");
    good["worlds"] = json!(["w1", "w2"]);
    let mut events: Vec<Value> = forged.iter().map(|(_, t)| events::token(t)).collect();
    events.push(events::token(&sign(&key, &good)));
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_authorizer"),
        &[(
            "CUBEWALK_PUBLIC_KEYS",
            json!({ "keys": [key.public_jwk()] }).to_string(),
        )],
        events,
    );
    assert_eq!(results.len(), forged.len() + 1);
    for ((what, _), (kind, body)) in forged.iter().zip(&results) {
        assert_eq!(kind, "error", "{what}: {body}");
        assert_eq!(body["errorMessage"], "Unauthorized", "{what}: {body}");
    }
    let (kind, allow) = results.last().unwrap();
    assert_eq!(kind, "response", "{allow}");
    assert_eq!(allow["principalId"], "alice");
    assert_eq!(
        allow["context"],
        json!({"player": "alice", "role": "viewer", "worlds": "w1,w2"})
    );
    let statement = &allow["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(
        statement["Resource"][0],
        "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/*"
    );
    assert!(!logs.contains(&sign(&key, &good)), "token in logs");
}

#[test]
fn authorizer_binary_trusts_an_openid_connect_issuer_named_in_its_environment() {
    use cubewalk_server::identity::SigningKey;
    use cubewalk_testkit::issuer::{IssuerKey, OidcStandIn};
    use cubewalk_testkit::tokens::{claims, sign};
    let (a, b) = (
        IssuerKey::fixture("issuer-rsa-a"),
        IssuerKey::fixture("issuer-rsa-b"),
    );
    let issuer = OidcStandIn::start(&[&a]);
    let own = SigningKey::generate();
    let mut good = issuer.claims("auth0|5f7c8ec7c33c6c004bbafe82", "my-api");
    good["https://studio.example/roles"] = json!(["viewer"]);
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("cubewalk");
    let events = vec![
        events::token(&a.sign(&good)),
        events::token(&sign(&own, &claims("alice", "editor"))),
        events::token(&b.sign_as(&a.kid, &good)),
        events::token(&a.sign(&wrong_audience)),
        events::token(&b.sign(&good)),
    ];
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_authorizer"),
        &[
            (
                "CUBEWALK_PUBLIC_KEYS",
                json!({ "keys": [own.public_jwk()] }).to_string(),
            ),
            ("CUBEWALK_OIDC_ISSUER", issuer.issuer.clone()),
            ("CUBEWALK_OIDC_AUDIENCE", "my-api".into()),
            (
                "CUBEWALK_OIDC_ROLE_CLAIM",
                "https://studio.example/roles".into(),
            ),
        ],
        events,
    );
    let (kind, allow) = &results[0];
    assert_eq!(kind, "response", "{allow} {logs}");
    assert_eq!(allow["principalId"], "auth0|5f7c8ec7c33c6c004bbafe82");
    assert_eq!(allow["context"]["role"], "viewer");
    assert_eq!(
        results[1].1["principalId"], "alice",
        "our own keys still work"
    );
    for (what, (kind, body)) in ["other key under a's kid", "our audience", "unpublished kid"]
        .iter()
        .zip(&results[2..])
    {
        assert_eq!(
            (kind.as_str(), &body["errorMessage"]),
            ("error", &json!("Unauthorized")),
            "{what}"
        );
    }
    // Fetched at start; the unknown kid of the last token asked again at most once.
    assert!(issuer.jwks_fetches() <= 2, "{}", issuer.jwks_fetches());
}

/// A REST proxy event for `POST /cubewalklogin` (as API Gateway sends it with `Auth: NONE`).
fn login_event(method: &str, body: &str) -> Value {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/fixtures");
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/rest-put-event.json")).unwrap(),
    )
    .unwrap();
    e["resource"] = json!("/cubewalklogin");
    e["path"] = json!("/cubewalklogin");
    e["httpMethod"] = json!(method);
    e["body"] = json!(body);
    e["requestContext"]["resourcePath"] = json!("/cubewalklogin");
    e["requestContext"]["httpMethod"] = json!(method);
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    e
}

#[test]
fn login_binary_signs_guest_tokens_with_the_key_it_read_from_secrets_manager() {
    use common::{SecretsManagerStandIn, ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN};
    use cubewalk_server::handlers::login::guest_player_id;
    use cubewalk_server::identity::{PublicKeys, Role, SigningKey, Verifier};
    let key = SigningKey::generate();
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cubewalk-login-key-AbCdEf";
    let sm = SecretsManagerStandIn::start(&[(arn, &key.to_pem())]);
    let secret = "Zm9vYmFyYmF6cXV4cXV1eA_-";
    let (results, logs) = invoke(
        env!("CARGO_BIN_EXE_login"),
        &[
            ("CUBEWALK_LOGIN_KEY_SECRET", arn.to_string()),
            ("CUBEWALK_LOGIN_TTL_SECS", "600".into()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
        ],
        vec![
            login_event("POST", &json!({ "device_secret": secret }).to_string()),
            login_event("POST", r#"{"device_secret":"short"}"#),
            login_event("GET", ""),
        ],
    );
    // Read once, at start.
    assert_eq!(sm.received.lock().unwrap().len(), 1);
    let (kind, ok) = &results[0];
    assert_eq!(kind, "response");
    assert_eq!(ok["statusCode"], 200, "{ok}");
    let body: Value = serde_json::from_str(ok["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["player"], guest_player_id(secret));
    assert_eq!(body["expires_in"], 600);
    let mut keys = PublicKeys::new();
    keys.add_signing_key(&key);
    let verifier = Verifier {
        keys,
        ..Verifier::default()
    };
    let player = verifier.verify(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(
        (player.id.as_str(), player.role),
        (body["player"].as_str().unwrap(), Role::Editor)
    );

    let error = |i: usize| -> Value {
        assert_eq!(results[i].0, "response");
        serde_json::from_str(results[i].1["body"].as_str().unwrap()).unwrap()
    };
    assert_eq!(results[1].1["statusCode"], 422);
    assert_eq!(error(1)["error"]["code"], "invalid_request");
    assert_eq!(results[2].1["statusCode"], 405);
    assert_eq!(error(2)["error"]["code"], "method_not_allowed");
    assert!(!logs.contains(secret), "device secret in logs: {logs}");
    assert!(!logs.contains("PRIVATE KEY"), "key in logs: {logs}");
    assert!(logs.contains(key.kid()), "{logs}");
}

/// The cost benchmark compares the blocks function with the seed design's Python handler
/// (`bench/python/seed_handler.py`, run by `awslambdaric`, installed by the README's test
/// set-up); the comparison means something only if both read and write the same stored
/// format: each reads the other's puts back at the same revision, and both answer a read alike.
/// Fetch answer entries without their write sequence (`n`), which only our handler sends.
fn without_seq(chunks: &Value) -> Value {
    strip(chunks, &["n"])
}

/// Fetch answer entries without what names a write (sequence, revision): their content.
fn content_only(chunks: &Value) -> Value {
    strip(chunks, &["n", "version"])
}

fn strip(chunks: &Value, fields: &[&str]) -> Value {
    let mut chunks = chunks.clone();
    for c in chunks.as_array_mut().into_iter().flatten() {
        if let Some(o) = c.as_object_mut() {
            for f in fields {
                o.remove(*f);
            }
        }
    }
    chunks
}

#[test]
fn the_seed_designs_python_handler_shares_our_stored_format() {
    let redis = cubewalk_testkit::RedisServer::start();
    let python_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/python");
    let rust_api = RuntimeApi::start();
    let mut rust = Function::start(
        &rust_api,
        env!("CARGO_BIN_EXE_blocks"),
        &[],
        &[
            ("CUBEWALK_REDIS_URL", redis.url()),
            ("CUBEWALK_WORLDS", "*".into()),
        ],
    );
    let py_api = RuntimeApi::start();
    let mut py = Function::start(
        &py_api,
        "python3",
        &["-m", "awslambdaric", "seed_handler.handler"],
        &[
            ("CUBEWALK_REDIS_URL", redis.url()),
            ("PYTHONPATH", python_dir.to_owned()),
        ],
    );
    let body = |answer: cubewalk_testkit::runtime_api::Invocation| -> Value {
        assert_eq!(answer.kind, "response", "{}", answer.body);
        assert_eq!(answer.body["statusCode"], 200, "{}", answer.body);
        serde_json::from_str(answer.body["body"].as_str().unwrap()).unwrap()
    };
    let put = |value: i32, index: u32| {
        format!(
            r#"{{"world":"w","edits":[{{"chunk":[1,-2,3],"index":{index},"value":{value}}},{{"chunk":[0,0,0],"index":7,"value":{value}}}]}}"#
        )
    };
    let read = events::rest("GET", Some(("w", "1,-2,3;0,0,0;5,5,5")), None);
    // Values that exercise every form: small, negative (zigzag), large, and a random chunk
    // (raw form) written by many cubes.
    for (i, value) in [3, -1, i32::MAX, i32::MIN, 0].into_iter().enumerate() {
        let index = 100 * i as u32;
        let (writer, reader) = if i % 2 == 0 {
            ((&rust_api, &mut rust), (&py_api, &mut py))
        } else {
            ((&py_api, &mut py), (&rust_api, &mut rust))
        };
        let wrote = body(writer.0.invoke(
            writer.1,
            events::rest("PUT", None, Some(&put(value, index))),
        ));
        let got = body(reader.0.invoke(reader.1, read.clone()));
        if i % 2 == 1 {
            // The seed design wrote: it names content by its hash and drops our revision,
            // so ours answers the same (the earlier scheme's revision, for chunks that
            // carry none). Ours draws revisions per write, which the seed design cannot read.
            for n in 0..2 {
                assert_eq!(
                    wrote["chunks"][n]["version"], got["chunks"][n]["version"],
                    "round {i}"
                );
            }
        }
        let again = body(writer.0.invoke(writer.1, read.clone()));
        // The seed design knows no write sequences nor per-write revisions: compare the
        // content.
        assert_eq!(
            content_only(&again["chunks"]),
            content_only(&got["chunks"]),
            "round {i}: the two read differently"
        );
    }
    // A chunk of random values: the raw form, written cube by cube by the Python handler.
    let mut edits = Vec::new();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for index in 0..4096 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        edits.push(format!(
            r#"{{"chunk":[9,9,9],"index":{index},"value":{}}}"#,
            s as i32
        ));
    }
    for part in edits.chunks(1024) {
        let body_text = format!(r#"{{"world":"w","edits":[{}]}}"#, part.join(","));
        body(py_api.invoke(&mut py, events::rest("PUT", None, Some(&body_text))));
    }
    let random = events::rest("GET", Some(("w", "9,9,9")), None);
    assert_eq!(
        without_seq(&body(rust_api.invoke(&mut rust, random.clone()))["chunks"]),
        without_seq(&body(py_api.invoke(&mut py, random))["chunks"])
    );
}
