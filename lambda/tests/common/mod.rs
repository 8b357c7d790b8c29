//! A stand-in for AWS Secrets Manager's `GetSecretValue`, shared by the secrets reader's test
//! and the login binary's: it checks each request as AWS would (the AWS JSON 1.1 protocol, and
//! the SigV4 signature recomputed from what arrived over the wire with the credentials it
//! knows) and answers the secrets it holds.

#![allow(dead_code)] // each test file uses part of it

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The access key the stand-in accepts.
pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
/// Its secret key.
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// The session token (Lambda's credentials are temporary ones).
pub const SESSION_TOKEN: &str = "session-token-example";
/// The region.
pub const REGION: &str = "eu-west-1";

/// One request as received: headers and body.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lower-case header names and their values.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Value,
}

/// A running stand-in; stopped with its runtime when dropped.
pub struct SecretsManagerStandIn {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Every request received.
    pub received: Arc<Mutex<Vec<Received>>>,
    _rt: tokio::runtime::Runtime,
}

impl SecretsManagerStandIn {
    /// Serves `secrets` (id → SecretString).
    pub fn start(secrets: &[(&str, &str)]) -> Self {
        let secrets: HashMap<String, String> = secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let log = received.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (secrets, log) = (secrets.clone(), log.clone());
                async move { answer(&secrets, &log, &headers, &body) }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            endpoint: format!("http://{addr}"),
            received,
            _rt: rt,
        }
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, String) {
    let body = json!({"__type": kind, "message": message}).to_string();
    (status, body)
}

fn answer(
    secrets: &HashMap<String, String>,
    log: &Mutex<Vec<Received>>,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, String) {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    log.lock().unwrap().push(Received {
        headers: headers.clone(),
        body: json.clone(),
    });
    if headers.get("x-amz-target").map(String::as_str) != Some("secretsmanager.GetSecretValue")
        || headers.get("content-type").map(String::as_str) != Some("application/x-amz-json-1.1")
    {
        return error(StatusCode::BAD_REQUEST, "UnknownOperationException", "");
    }
    if let Err(why) = check_signature(&headers, body) {
        return error(StatusCode::FORBIDDEN, "InvalidSignatureException", &why);
    }
    let id = json["SecretId"].as_str().unwrap_or("");
    match secrets.get(id) {
        Some(value) => (
            StatusCode::OK,
            json!({"ARN": id, "Name": "k", "SecretString": value, "VersionId": "v1",
                   "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.7e9})
            .to_string(),
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    }
}

/// Recomputes the request's signature from the headers it signed, at the time it names, with
/// the stand-in's credentials, and compares.
fn check_signature(headers: &HashMap<String, String>, body: &[u8]) -> Result<(), String> {
    let h = |k: &str| headers.get(k).map(String::as_str).unwrap_or("");
    let auth = h("authorization");
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or("not SigV4")?;
    let (credential, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or("no SignedHeaders")?;
    let (signed, signature) = rest.split_once(", Signature=").ok_or("no Signature")?;
    let date = h("x-amz-date");
    let expected_scope = format!(
        "{ACCESS_KEY}/{}/{REGION}/secretsmanager/aws4_request",
        &date[..8.min(date.len())]
    );
    if credential != expected_scope {
        return Err(format!("credential scope {credential}"));
    }
    if signed != "content-type;host;x-amz-date;x-amz-security-token;x-amz-target" {
        return Err(format!("signed headers {signed}"));
    }
    if h("x-amz-security-token") != SESSION_TOKEN {
        return Err("session token".into());
    }
    let time = parse_amz_date(date).ok_or("bad x-amz-date")?;
    let identity = Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some(SESSION_TOKEN.into()),
        None,
        "t",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("secretsmanager")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://{}/", h("host"));
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        [
            ("content-type", h("content-type")),
            ("x-amz-target", h("x-amz-target")),
        ]
        .into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (_, expected) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    if expected != signature {
        return Err("signature does not match".into());
    }
    Ok(())
}

/// `20261204T213000Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || &s[8..9] != "T" || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}
