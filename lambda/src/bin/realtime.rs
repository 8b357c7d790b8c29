//! The realtime Lambda: the WebSocket API's routes (`$connect`, `$disconnect`, `subscribe`,
//! `unsubscribe`, `$default`), keeping the subscription index in the same Redis as the chunks
//! (configured like the blocks Lambda: `CUBEWALK_REDIS_URL`, ...).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use cubewalk_server::realtime::{handler, Subscriptions};
use cubewalk_server::store::{RedisStore, RedisStoreConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let config = RedisStoreConfig::from_env()?;
    tracing::info!(?config, "realtime starting");
    let index: Arc<dyn Subscriptions> = Arc::new(RedisStore::open(&config).await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let index = index.clone();
            async move { Ok::<_, Error>(handler::handle(&event.payload, index.as_ref()).await) }
        },
    ))
    .await
}
