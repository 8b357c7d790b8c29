//! The publisher Lambda: reads the Redis change feed the blocks function's puts append to,
//! coalesces it per region per 100 ms tick and publishes to AWS IoT Core's data endpoint
//! (`CUBEWALK_IOT_ENDPOINT`, SigV4-signed HTTPS through the IoT data VPC endpoint). One
//! schedule per publisher group starts it every minute with the group in its input
//! (`{"group": g, "groups": G}`, read by [`cubewalk_lambda::publisher_group`]; none means the
//! whole feed) and each run lasts `CUBEWALK_PUBLISHER_RUN_SECS` (default 90, kept inside the
//! function's timeout). A run publishes only the shards of its group whose lease it holds; a
//! run started while the group's previous one still holds them takes over each shard the
//! moment that one lets go, so each shard always has one publisher and no change is published
//! twice. An invalid group fails the invocation with a message saying what is wrong. Each run
//! ends by printing its metrics (change messages published and dropped) as one CloudWatch EMF
//! line.

use cubewalk_server::metrics;
use cubewalk_server::realtime::{run_feed_publisher, IotDataConfig, IotDataPublisher, Publish};
use cubewalk_server::store::RedisStore;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use std::time::Duration;

/// Stops this long before the function's deadline, whatever the configured run time.
const MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    cubewalk_lambda::init_logging();
    let config = cubewalk_lambda::redis_config().await?;
    let store = Arc::new(RedisStore::open(&config).await?);
    let out: Arc<dyn Publish> = Arc::new(IotDataPublisher::new(&IotDataConfig::from_env()?));
    let run_for = Duration::from_secs(
        std::env::var("CUBEWALK_PUBLISHER_RUN_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(90),
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (store, out) = (store.clone(), out.clone());
        async move {
            let group = cubewalk_lambda::publisher_group(&event.payload)?;
            let left = event
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(MARGIN);
            let until = tokio::time::Instant::now() + run_for.min(left);
            let holder = &event.context.request_id;
            let report = run_feed_publisher(&store, out, holder, group, until, None).await;
            // Printed whether or not the run ended in a store error: what it published counts.
            cubewalk_lambda::emit_metrics(metrics::PUBLISHER_FUNCTION);
            let report = report?;
            tracing::info!(?report, %group, "publisher run");
            Ok::<_, Error>(serde_json::json!({
                "group": group.index(),
                "groups": group.count(),
                "held": report.held,
                "ticks": report.ticks,
                "taken": report.taken,
                "lost": report.lost,
                "changes": report.changes,
                "published": report.published,
                "failed": report.failed,
            }))
        }
    }))
    .await
}
