//! The blocks Lambda: `GET`/`PUT /cubewalkblocks` on Redis. The Redis connection is made once
//! per process (outside the handler) and re-established after it breaks; configuration from
//! `CUBEWALK_REDIS_URL`, `CUBEWALK_REDIS_CLUSTER`, `CUBEWALK_REDIS_CA_FILE`,
//! `CUBEWALK_REDIS_TIMEOUT_MS`, and the password from the Secrets Manager secret named by
//! `CUBEWALK_REDIS_PASSWORD_SECRET` (read once at start; never in the environment). With `CUBEWALK_REALTIME=on` a put that changed
//! chunks appends its changes to the Redis change feed (one more command after the store's
//! atomic step), which the publisher function sends to AWS IoT Core. Each player's
//! limits come from `CUBEWALK_LIMIT_*` (see `PlayerLimits::from_env`), the worlds, their
//! bounds and budgets from `CUBEWALK_WORLDS` (see `Worlds`), the replicas a write must reach
//! from `CUBEWALK_REDIS_WAIT_REPLICAS`. After each invocation it prints the invocation's
//! metrics as one CloudWatch EMF line.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use cubewalk_server::handlers::blocks;
use cubewalk_server::metrics;
use cubewalk_server::realtime::{Notifier, RedisSink};
use cubewalk_server::store::{ChunkStore, RedisStore};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let config = cubewalk_lambda::redis_config().await?;
    let rules = Arc::new(blocks::Rules::from_env()?);
    tracing::info!(?config, "blocks starting");
    let redis = Arc::new(RedisStore::open(&config).await?);
    let notifier = (std::env::var("CUBEWALK_REALTIME").as_deref() == Ok("on")).then(|| {
        tracing::info!("publishing changes to the realtime feed");
        Notifier {
            sink: Arc::new(RedisSink(redis.clone())),
            sessions: None,
        }
    });
    let store: Arc<dyn ChunkStore> = redis;
    let notifier = Arc::new(notifier);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| {
            let (store, notifier, rules) = (store.clone(), notifier.clone(), rules.clone());
            async move {
                let r = blocks::handle_notifying(
                    &event.payload,
                    store.as_ref(),
                    notifier.as_ref().as_ref(),
                    &rules,
                )
                .await;
                cubewalk_lambda::emit_metrics(metrics::BLOCKS_FUNCTION);
                Ok::<_, Error>(r)
            }
        },
    ))
    .await
}
