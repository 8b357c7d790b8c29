//! Shared set-up of the Lambda binaries (`authorizer`, `broker_authorizer`, `blocks`,
//! `publisher`, `login`), and the Secrets Manager reader ([`secrets`]) a function uses to read
//! a secret at start.

pub mod secrets;

use cubewalk_server::identity::{OidcConfig, OidcIssuer, PublicKeys, TokenSet, Verifier};
use cubewalk_server::store::{FeedGroup, RedisStoreConfig};
use secrets::SecretsManager;
use std::sync::Arc;

/// Names the Secrets Manager secret holding the function's Redis password, so the password is
/// in no environment variable: the template's generated secret (JSON with a `password` field,
/// as `GenerateSecretString` writes it) or a secret whose whole string is the password.
pub const REDIS_PASSWORD_SECRET_ENV: &str = "CUBEWALK_REDIS_PASSWORD_SECRET";

/// The Redis settings from the environment ([`RedisStoreConfig::from_env`]) and, when
/// [`REDIS_PASSWORD_SECRET_ENV`] names a secret, the password read from it once, at start.
pub async fn redis_config() -> Result<RedisStoreConfig, String> {
    let mut config = RedisStoreConfig::from_env()?;
    let Some(secret_id) = std::env::var(REDIS_PASSWORD_SECRET_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(config);
    };
    let value = SecretsManager::from_env()
        .map_err(|e| e.to_string())?
        .secret_string(secret_id.trim())
        .await
        .map_err(|e| format!("reading the Redis password from {secret_id}: {e}"))?;
    config.password = Some(password_of(&value).map_err(|e| format!("{secret_id}: {e}"))?);
    Ok(config)
}

/// The password in a secret's string: the `password` field of a JSON object, or the whole
/// string when it is not JSON.
fn password_of(secret: &str) -> Result<String, &'static str> {
    let password = match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(serde_json::Value::Object(fields)) => fields
            .get("password")
            .and_then(|p| p.as_str())
            .ok_or("the secret's JSON has no string field \"password\"")?
            .to_owned(),
        _ => secret.trim().to_owned(),
    };
    if password.is_empty() {
        return Err("the secret's password is empty");
    }
    Ok(password)
}

/// What the token authorizers accept, from their environment: player tokens signed by one of
/// the public keys in `CUBEWALK_PUBLIC_KEYS` (a JWK Set: several keys at once, chosen by
/// `kid`, for rotation); for development only, static tokens (`token[:player[:role]]`,
/// comma-separated) read from the Secrets Manager secret named by `CUBEWALK_TOKENS_SECRET`
/// (the template's way: no token in the environment) or, outside AWS, from `CUBEWALK_TOKENS`;
/// and with `CUBEWALK_OIDC_ISSUER` (see `OidcConfig::from_env`) that OpenID Connect issuer's
/// tokens. Fails when nothing would be accepted.
pub async fn verifier_from_env() -> Result<Arc<Verifier>, String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let keys = match var("CUBEWALK_PUBLIC_KEYS") {
        Some(jwks) => {
            PublicKeys::from_jwks(&jwks).map_err(|e| format!("CUBEWALK_PUBLIC_KEYS: {e}"))?
        }
        None => PublicKeys::new(),
    };
    let list = match var("CUBEWALK_TOKENS_SECRET") {
        Some(secret_id) => Some(
            SecretsManager::from_env()
                .map_err(|e| e.to_string())?
                .secret_string(secret_id.trim())
                .await
                .map_err(|e| format!("reading the static tokens from {secret_id}: {e}"))?,
        ),
        None => var("CUBEWALK_TOKENS"),
    };
    let static_tokens = match list {
        // The error names the entry's position, never the token.
        Some(list) => TokenSet::parse(&list).map_err(|e| format!("static tokens: {e}"))?,
        None => TokenSet::default(),
    };
    let issuer = match OidcConfig::from_env()? {
        Some(config) => {
            let issuer = OidcIssuer::new(config)?;
            // Fetched now so the first players wait for nothing; a failure is not fatal (the
            // first token tries again), so an issuer outage does not stop our own tokens.
            match issuer.refresh().await {
                Ok(n) => {
                    tracing::info!(issuer = %issuer.config().issuer, keys = n, "issuer trusted")
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer.config().issuer, error = %e, "issuer keys not fetched yet")
                }
            }
            Some(Arc::new(issuer))
        }
        None => None,
    };
    let verifier = Arc::new(Verifier {
        keys,
        static_tokens,
        issuer,
    });
    if verifier.is_empty() {
        return Err("no CUBEWALK_PUBLIC_KEYS, CUBEWALK_OIDC_ISSUER or static tokens: no token would be accepted".into());
    }
    tracing::info!(
        keys = verifier.keys.len(),
        static_tokens = verifier.static_tokens.len(),
        "authorizer ready"
    );
    Ok(verifier)
}

/// The Lambda runtime's own logging set-up, so the console's logging controls work: the level
/// from `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else `INFO`) and JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON` (the template sets it, as CloudWatch Logs Insights reads
/// them). Handlers never log tokens or request headers.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Prints what `function` recorded since the last call (the server's `metrics`) as one
/// CloudWatch Embedded Metric Format line on stdout, where Lambda sends it to CloudWatch Logs,
/// which turns it into metrics; prints nothing when nothing was recorded. Called after each
/// invocation, so the metrics come with the invocation's logs and one line never holds more
/// than one invocation's samples.
pub fn emit_metrics(function: &str) {
    if let Some(line) = cubewalk_server::metrics::flush(function) {
        use std::io::Write;
        // One write of the whole line: the log lines the tracing subscriber writes to stdout
        // from other tasks cannot land inside it.
        let _ = std::io::stdout()
            .lock()
            .write_all(format!("{line}\n").as_bytes());
    }
}

/// The feed group a publisher run serves, read from its invocation's input: `{"group": g,
/// "groups": G}`, as the template's schedules send it. Neither field (a scheduled event
/// without input, a test invocation with `{}`) means the whole feed ([`FeedGroup::ALL`]);
/// other fields are ignored. Refused, with a message naming what is wrong: input that is no
/// JSON object, one field without the other, a value that is no whole number, and a group the
/// feed cannot be split into ([`FeedGroup::new`]).
pub fn publisher_group(input: &serde_json::Value) -> Result<FeedGroup, String> {
    let fields = input.as_object().ok_or_else(|| {
        format!(r#"publisher input must be a JSON object such as {{"group": 0, "groups": 2}}, got {input}"#)
    })?;
    let number = |name: &str| {
        fields
            .get(name)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(r#"publisher input: "{name}" must be a whole number, got {v}"#)
                    })
            })
            .transpose()
    };
    match (number("group")?, number("groups")?) {
        (None, None) => Ok(FeedGroup::ALL),
        (Some(group), Some(groups)) => {
            FeedGroup::new(group, groups).map_err(|e| format!("publisher input: {e}"))
        }
        // Half a group is most likely a mistake in the schedule's input: publishing the whole
        // feed, or group 0 of it, would publish shards another run also holds or leave some
        // unpublished.
        (Some(_), None) => Err(r#"publisher input: "group" given without "groups""#.into()),
        (None, Some(_)) => Err(r#"publisher input: "groups" given without "group""#.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{password_of, publisher_group};
    use cubewalk_server::store::FeedGroup;
    use serde_json::json;

    #[test]
    fn a_publisher_reads_its_group_from_the_schedules_input() {
        assert_eq!(publisher_group(&json!({})).unwrap(), FeedGroup::ALL);
        // A scheduled event without input: EventBridge's own fields, no group.
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(publisher_group(&scheduled).unwrap(), FeedGroup::ALL);
        assert_eq!(
            publisher_group(&json!({"group": 3, "groups": 4})).unwrap(),
            FeedGroup::new(3, 4).unwrap()
        );
    }

    #[test]
    fn invalid_publisher_input_is_refused_with_what_is_wrong() {
        for (input, message) in [
            (json!({"group": 2, "groups": 2}), "publisher input: publisher group 2 of 2: groups are numbered 0 to 1"),
            (json!({"group": 0, "groups": 3}), "publisher input: 3 publisher groups: the count must divide the feed's 16 shards (1, 2, 4, 8, 16)"),
            (json!({"group": 0, "groups": 0}), "publisher input: 0 publisher groups: the count must divide the feed's 16 shards (1, 2, 4, 8, 16)"),
            (json!({"group": 1}), r#"publisher input: "group" given without "groups""#),
            (json!({"groups": 2}), r#"publisher input: "groups" given without "group""#),
            (json!({"group": "1", "groups": 2}), r#"publisher input: "group" must be a whole number, got "1""#),
            (json!({"group": 0, "groups": -2}), r#"publisher input: "groups" must be a whole number, got -2"#),
            (json!({"group": 0.5, "groups": 2}), r#"publisher input: "group" must be a whole number, got 0.5"#),
            (json!({"group": null, "groups": 2}), r#"publisher input: "group" must be a whole number, got null"#),
            (json!([0, 2]), r#"publisher input must be a JSON object such as {"group": 0, "groups": 2}, got [0,2]"#),
        ] {
            assert_eq!(publisher_group(&input).unwrap_err(), message, "{input}");
        }
    }

    #[test]
    fn a_password_is_read_from_generated_json_or_a_plain_string() {
        let generated = r#"{"username":"cubewalk-blocks","password":"Qx7pLm2ZrT9vWc4NbH8sKd3F"}"#;
        assert_eq!(password_of(generated).unwrap(), "Qx7pLm2ZrT9vWc4NbH8sKd3F");
        assert_eq!(password_of("plain-password\n").unwrap(), "plain-password");
        assert!(password_of(r#"{"username":"u"}"#).is_err());
        assert!(password_of(r#"{"password":""}"#).is_err());
        assert!(password_of("  ").is_err());
    }
}
