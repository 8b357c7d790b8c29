//! The authorizer Lambda: the REST API's TOKEN authorizer and the WebSocket API's `$connect`
//! REQUEST authorizer (both read the `token` header). It accepts player tokens signed by one
//! of the public keys in `CUBEWALK_PUBLIC_KEYS` (a JWK Set: several keys at once, chosen by
//! `kid`, for rotation) and, for development only, static tokens (`token[:player[:role]]`,
//! comma-separated) read at start from the Secrets Manager secret named by
//! `CUBEWALK_TOKENS_SECRET` (the template's way: no token in the environment) or, outside AWS,
//! from `CUBEWALK_TOKENS`. With `CUBEWALK_OIDC_ISSUER` (and `CUBEWALK_OIDC_*`, see
//! `OidcConfig::from_env`) it also accepts that OpenID Connect issuer's tokens, fetching its
//! keys from its discovery document. It holds no private key.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use cubewalk_lambda::secrets::SecretsManager;
use cubewalk_server::handlers::authorizer::{authorize_any, AuthorizerError};
use cubewalk_server::identity::{OidcConfig, OidcIssuer, PublicKeys, TokenSet, Verifier};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let keys = match var("CUBEWALK_PUBLIC_KEYS") {
        Some(jwks) => {
            PublicKeys::from_jwks(&jwks).map_err(|e| format!("CUBEWALK_PUBLIC_KEYS: {e}"))?
        }
        None => PublicKeys::new(),
    };
    let list = match var("CUBEWALK_TOKENS_SECRET") {
        Some(secret_id) => Some(
            SecretsManager::from_env()?
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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let verifier = verifier.clone();
        async move { handle(event.payload, &verifier).await }
    }))
    .await
}

/// Returns the policy, or the error whose message `Unauthorized` API Gateway turns into 401.
async fn handle(
    event: serde_json::Value,
    verifier: &Verifier,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    match authorize_any(event, verifier).await {
        Ok(response) => {
            tracing::info!(
                principal = response.principal_id.as_deref().unwrap_or(""),
                "allow"
            );
            Ok(response)
        }
        Err(AuthorizerError::Unauthorized) => {
            tracing::info!("unauthorized");
            Err(Box::new(AuthorizerError::Unauthorized))
        }
        Err(e) => {
            tracing::error!(error = %e, "bad authorizer event");
            Err(Box::new(e))
        }
    }
}
