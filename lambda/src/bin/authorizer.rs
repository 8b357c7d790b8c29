//! The authorizer Lambda: the REST API's TOKEN authorizer (it reads the `token` header). What
//! it accepts is read from its environment ([`cubewalk_lambda::verifier_from_env`]); it holds
//! no private key.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use cubewalk_server::handlers::authorizer::{authorize_any, AuthorizerError};
use cubewalk_server::identity::Verifier;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let verifier = cubewalk_lambda::verifier_from_env().await?;
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
