//! The blocks Lambda: `GET`/`PUT /cubewalkblocks` on Redis. The Redis connection is made once
//! per process (outside the handler) and re-established after it breaks; configuration from
//! `CUBEWALK_REDIS_URL`, `CUBEWALK_REDIS_CLUSTER`, `CUBEWALK_REDIS_CA_FILE`,
//! `CUBEWALK_REDIS_TIMEOUT_MS`.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use cubewalk_server::handlers::blocks;
use cubewalk_server::store::{ChunkStore, RedisStore, RedisStoreConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let config = RedisStoreConfig::from_env()?;
    tracing::info!(?config, "blocks starting");
    let store: Arc<dyn ChunkStore> = Arc::new(RedisStore::open(&config).await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| {
            let store = store.clone();
            async move { Ok::<_, Error>(blocks::handle(&event.payload, store.as_ref()).await) }
        },
    ))
    .await
}
