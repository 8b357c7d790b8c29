//! The blocks Lambda: `GET`/`PUT /cubewalkblocks` on Redis. The Redis connection is made once
//! per process (outside the handler) and re-established after it breaks; configuration from
//! `CUBEWALK_REDIS_URL`, `CUBEWALK_REDIS_CLUSTER`, `CUBEWALK_REDIS_CA_FILE`,
//! `CUBEWALK_REDIS_TIMEOUT_MS`, and the password from the Secrets Manager secret named by
//! `CUBEWALK_REDIS_PASSWORD_SECRET` (read once at start; never in the environment). Realtime publishing from the deployed stack (a
//! change stream read by a publisher to AWS IoT Core) is not built yet: puts here notify no
//! one. Each player's
//! limits come from `CUBEWALK_LIMIT_*` (see `PlayerLimits::from_env`).

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use cubewalk_server::handlers::blocks;
use cubewalk_server::store::{ChunkStore, PlayerLimits, RedisStore};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let config = cubewalk_lambda::redis_config().await?;
    let limits = PlayerLimits::from_env()?;
    tracing::info!(?config, "blocks starting");
    let redis = Arc::new(RedisStore::open(&config).await?);
    let store: Arc<dyn ChunkStore> = redis;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| {
            let store = store.clone();
            async move {
                let r =
                    blocks::handle_notifying(&event.payload, store.as_ref(), None, &limits).await;
                Ok::<_, Error>(r)
            }
        },
    ))
    .await
}
