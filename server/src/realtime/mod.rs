//! Realtime: the WebSocket API's handler, the subscription index (memory and Redis), and the
//! change notifications a put sends to the connections following the chunks it changed.
//!
//! - [`handler`]: the WebSocket routes (`$connect`, `$disconnect`, `subscribe`,
//!   `unsubscribe`, `$default`) as a plain function of (event, index).
//! - [`Subscriptions`]: who follows which chunks ([`MemorySubscriptions`], and
//!   [`crate::store::RedisStore`] beside the chunks).
//! - [`Notifier`]: after a put, one message per (follower, changed chunk) through a
//!   [`Delivery`] ([`ManagementApi`] in AWS and behind the local gateway), bounded in time.

pub mod handler;
mod index;
mod management;
mod notify;
mod redis_index;

pub use index::{ConnectionId, MemorySubscriptions, Subscriptions};
pub use management::{ManagementApi, ManagementConfig};
pub use notify::{changes, Delivery, DeliveryError, Notified, Notifier, NotifyLimits};
pub use redis_index::SUBSCRIPTION_TTL;
