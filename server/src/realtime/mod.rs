//! Realtime: what a put changed reaches the players following it through an MQTT broker (AWS
//! IoT Core when deployed, an embedded broker in `serve`), off the put path.
//!
//! - [`Notifier`]: the put path's side. After the store's atomic step a put hands its changes
//!   to a [`ChangeSink`] (an in-process queue in `serve`; in AWS, [`RedisSink`]: the Redis
//!   change feed) and answers; it never waits for a follower.
//! - [`Coalescer`] and [`run_publisher`]: the publishing side. Every tick (100 ms) the changes
//!   queued since the last one are merged per chunk and sent as one message per region topic
//!   ([`cubewalk_protocol::realtime`]) through a [`Publish`]: the broker's MQTT connection
//!   locally ([`MqttPublisher`]), IoT Core's HTTPS data endpoint in AWS ([`IotDataPublisher`],
//!   driven by [`run_feed_publisher`] in the publisher Lambda: one run per
//!   [`crate::store::FeedGroup`] of the feed's shards, each shard under its own lease).
//! - [`Sessions`]: the players' open broker sessions, so a ban closes them.

mod coalesce;
mod iot_data;
#[cfg(feature = "local-gateway")]
mod mqtt_publish;
mod notify;
mod publish;
mod redis_feed;

pub use coalesce::Coalescer;
pub use iot_data::{IotDataConfig, IotDataPublisher};
#[cfg(feature = "local-gateway")]
pub use mqtt_publish::{BrokerAddress, MqttPublisher};
pub use notify::{changes, channel, ChangeSink, ChannelSink, Notifier, Sessions, CHANNEL_CAPACITY};
pub use publish::{run_publisher, Publish, PublishStats, PUBLISH_CONCURRENCY};
pub use redis_feed::{run_feed_publisher, FeedReport, RedisSink, LEASE_TTL};
