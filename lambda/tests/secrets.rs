//! The Secrets Manager reader against a local stand-in that checks what AWS would: the AWS JSON
//! 1.1 call (`X-Amz-Target: secretsmanager.GetSecretValue`, its content type, the JSON body)
//! and the SigV4 signature, recomputed from the bytes that arrived. Only AWS itself can show
//! that the real service accepts the call.

mod common;

use aws_credential_types::Credentials;
use common::{SecretsManagerStandIn, ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN};
use cubewalk_lambda::secrets::{SecretsError, SecretsManager};
use serde_json::json;

fn client(endpoint: &str, secret_key: &str) -> SecretsManager {
    let credentials = Credentials::new(
        ACCESS_KEY,
        secret_key,
        Some(SESSION_TOKEN.into()),
        None,
        "test",
    );
    SecretsManager::new(REGION, credentials, Some(endpoint.to_owned())).unwrap()
}

#[test]
fn a_signed_get_secret_value_reads_the_secret_string() {
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:login-key-AbCdEf";
    let sm = SecretsManagerStandIn::start(&[(arn, "-----BEGIN PRIVATE KEY-----\n...")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let value = rt
        .block_on(client(&sm.endpoint, SECRET_KEY).secret_string(arn))
        .unwrap();
    assert_eq!(value, "-----BEGIN PRIVATE KEY-----\n...");

    let received = sm.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.body, json!({ "SecretId": arn }));
    assert_eq!(r.headers["x-amz-target"], "secretsmanager.GetSecretValue");
    assert_eq!(r.headers["content-type"], "application/x-amz-json-1.1");
    assert_eq!(r.headers["x-amz-security-token"], SESSION_TOKEN);
    let auth = &r.headers["authorization"];
    let date = &r.headers["x-amz-date"];
    assert_eq!(date.len(), 16, "{date}");
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{}/{REGION}/secretsmanager/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=",
        &date[..8]
    );
    let signature = auth
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{auth}"));
    assert_eq!(signature.len(), 64);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!auth.contains(SECRET_KEY));
}

#[test]
fn refusals_and_an_unreachable_endpoint_are_errors() {
    let sm = SecretsManagerStandIn::start(&[("known", "v")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Signed with the wrong secret key: the stand-in's recomputed signature differs.
    match rt.block_on(client(&sm.endpoint, "not-the-secret-key").secret_string("known")) {
        Err(SecretsError::Refused { status, kind, .. }) => {
            assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"))
        }
        other => panic!("{other:?}"),
    }
    match rt.block_on(client(&sm.endpoint, SECRET_KEY).secret_string("unknown")) {
        Err(SecretsError::Refused { status, kind, .. }) => {
            assert_eq!((status, kind.as_str()), (400, "ResourceNotFoundException"))
        }
        other => panic!("{other:?}"),
    }
    let closed = format!("http://127.0.0.1:{}", cubewalk_testkit::free_port());
    assert!(matches!(
        rt.block_on(client(&closed, SECRET_KEY).secret_string("known")),
        Err(SecretsError::Unreachable(_))
    ));
}
