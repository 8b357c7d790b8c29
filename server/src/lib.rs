//! CubeWalk Net backend.
//!
//! - [`admin`]: history, rollback and bans, for the REST admin API and the `admin` commands.
//! - [`store`]: chunk storage (embedded memory store and Redis) behind one trait.
//! - [`identity`]: player tokens (issue, verify), static development tokens, roles, worlds.
//! - [`handlers`]: the TOKEN authorizer, the blocks handler and the guest login as plain
//!   functions of (request, store/config), in `aws_lambda_events` types, so the Lambda mains
//!   and the local gateway are thin shells around the same code.
//! - [`metrics`]: operational counts and latencies, printed by the Lambda functions as
//!   CloudWatch Embedded Metric Format lines (alarms and the dashboard read them).
//! - [`https`]: the small HTTPS client of the few outgoing calls (Secrets Manager, an OpenID
//!   Connect issuer's keys).
//! - [`realtime`]: changes published to followers through an MQTT broker, coalesced per region
//!   per tick, off the put path (AWS IoT Core deployed; an embedded broker in `serve`).
//! - [`worlds`]: which worlds a deployment has, their bounds and their share of the store.
//! - [`sigv4`]: AWS API calls signed with SigV4 over [`https`], without an AWS SDK client.
//! - `gateway` and `broker` (feature `local-gateway`, on by default): a local API Gateway (REST)
//!   and an MQTT broker behind a gate that acts as IoT Core's, running every handler in one
//!   process. The Lambda binaries build without them. `background` runs the broker, the gate's
//!   sessions and the publisher at a lower CPU priority than the put path.

pub mod admin;
#[cfg(feature = "local-gateway")]
pub mod background;
#[cfg(feature = "local-gateway")]
pub mod broker;
#[cfg(feature = "local-gateway")]
pub mod gateway;
pub mod handlers;
pub mod https;
pub mod identity;
pub mod metrics;
pub mod realtime;
pub mod seed;
pub mod sigv4;
pub mod store;
pub mod worlds;
