//! The authorizer Lambda: the REST API's TOKEN authorizer and the WebSocket API's `$connect`
//! REQUEST authorizer (both read the `token` header). Accepted tokens come from
//! `CUBEWALK_TOKENS` (comma-separated, set from a NoEcho template parameter); several at once
//! allow rotation without downtime.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use cubewalk_server::handlers::authorizer::{authorize_any, AuthorizerError, TokenSet};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let list = std::env::var("CUBEWALK_TOKENS").map_err(|_| "CUBEWALK_TOKENS is not set")?;
    let tokens = Arc::new(TokenSet::from_list(&list));
    if tokens.is_empty() {
        return Err("CUBEWALK_TOKENS holds no token".into());
    }
    tracing::info!(tokens = tokens.len(), "authorizer ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let tokens = tokens.clone();
        async move { handle(event.payload, &tokens) }
    }))
    .await
}

/// Returns the policy, or the error whose message `Unauthorized` API Gateway turns into 401.
fn handle(
    event: serde_json::Value,
    tokens: &TokenSet,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    match authorize_any(event, tokens) {
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
