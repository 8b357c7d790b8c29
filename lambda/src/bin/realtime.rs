//! The realtime Lambda: the WebSocket API's routes (`$connect`, `$disconnect`, `subscribe`,
//! `unsubscribe`, `$default`), keeping the subscription index in the same Redis as the chunks
//! (configured like the blocks Lambda: `CUBEWALK_REDIS_URL`, ..., the password from the secret
//! named by `CUBEWALK_REDIS_PASSWORD_SECRET`; `CUBEWALK_LIMIT_CONNECTIONS` per player).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use cubewalk_server::realtime::{handler, Subscriptions};
use cubewalk_server::store::{PlayerLimits, RedisStore};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let config = cubewalk_lambda::redis_config().await?;
    let limits = PlayerLimits::from_env()?;
    tracing::info!(?config, "realtime starting");
    // One connection serves the index and the ban flags (both live in the same Redis).
    let redis = Arc::new(RedisStore::open(&config).await?);
    let index: Arc<dyn Subscriptions> = redis.clone();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let (index, bans) = (index.clone(), redis.clone());
            async move {
                let answer =
                    handler::handle(&event.payload, index.as_ref(), bans.as_ref(), &limits).await;
                Ok::<_, Error>(answer)
            }
        },
    ))
    .await
}
