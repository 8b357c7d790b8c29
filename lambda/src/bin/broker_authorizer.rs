//! The broker authorizer Lambda: AWS IoT Core's custom authorizer for the realtime MQTT
//! connections. It verifies the same tokens as the REST API's authorizer (from the same
//! environment, [`cubewalk_lambda::verifier_from_env`]), refuses banned players (the ban flags
//! are in Redis, as the blocks function keeps them) and answers the policy of
//! `cubewalk_server::handlers::broker_authorizer`: connect, subscribe to and receive the
//! change topics of the token's worlds, never publish. `CUBEWALK_IOT_ARN_PREFIX`
//! (`arn:aws:iot:<region>:<account>`) names the resources.

use aws_lambda_events::event::iot::IoTCoreCustomAuthorizerRequest;
use cubewalk_server::handlers::broker_authorizer::authorize_broker;
use cubewalk_server::store::{ChunkStore, RedisStore};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let verifier = cubewalk_lambda::verifier_from_env().await?;
    let arn_prefix = std::env::var("CUBEWALK_IOT_ARN_PREFIX")
        .map_err(|_| "CUBEWALK_IOT_ARN_PREFIX is not set")?;
    let config = cubewalk_lambda::redis_config().await?;
    let store: Arc<dyn ChunkStore> = Arc::new(RedisStore::open(&config).await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<IoTCoreCustomAuthorizerRequest>| {
            let (verifier, store, arn_prefix) =
                (verifier.clone(), store.clone(), arn_prefix.clone());
            async move {
                // A store that cannot be read fails the invocation: IoT Core refuses this
                // connection and the client retries later.
                let answer =
                    authorize_broker(&event.payload, &verifier, Some(store.as_ref()), &arn_prefix)
                        .await?;
                tracing::info!(
                    principal = %answer.principal_id,
                    allowed = answer.is_authenticated,
                    "broker connection"
                );
                Ok::<_, Error>(answer)
            }
        },
    ))
    .await
}
