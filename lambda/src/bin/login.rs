//! The guest login Lambda: `POST /cubewalklogin` (no authorizer) answers an editor player
//! token for the device secret's guest id. Its Ed25519 signing key (PKCS#8 PEM) is read once
//! at start from the Secrets Manager secret named by `CUBEWALK_LOGIN_KEY_SECRET`, the one
//! secret this function's role may read; `CUBEWALK_LOGIN_TTL_SECS` sets the tokens' lifetime
//! (3600 s when unset). The authorizer trusts the key's public half (`PlayerPublicKeys`).

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use cubewalk_lambda::secrets::SecretsManager;
use cubewalk_server::handlers::login::{self, LoginConfig, GUEST_TTL_SECS};
use cubewalk_server::identity::SigningKey;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let secret_id =
        var("CUBEWALK_LOGIN_KEY_SECRET").ok_or("CUBEWALK_LOGIN_KEY_SECRET is not set")?;
    let ttl_secs = match var("CUBEWALK_LOGIN_TTL_SECS") {
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|t| GUEST_TTL_SECS.contains(t))
            .ok_or_else(|| {
                format!("CUBEWALK_LOGIN_TTL_SECS must be seconds in {GUEST_TTL_SECS:?}")
            })?,
        None => login::DEFAULT_GUEST_TTL_SECS,
    };
    let pem = SecretsManager::from_env()?
        .secret_string(&secret_id)
        .await
        .map_err(|e| format!("reading the signing key from {secret_id}: {e}"))?;
    let key = SigningKey::from_pem(pem.trim()).map_err(|e| {
        format!("{secret_id}: {e} (put the key with `aws secretsmanager put-secret-value`)")
    })?;
    tracing::info!(kid = key.kid(), ttl_secs, "login ready");
    let config = Arc::new(LoginConfig { key, ttl_secs });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| {
            let config = config.clone();
            async move { Ok::<_, Error>(login::handle(&event.payload, &config)) }
        },
    ))
    .await
}
